"""Every data kind of :data:`part.data.kinds.DATA_KINDS`, end to end on tiny data written here in its real
format: a run folder pretrains, is cut off, resumes from its checkpoint, and loads back (``load_run``); its ``data.json``
says which samples it read when the kind keeps records. The sleep kinds' configs spell ``normalize`` and the
split as runs made before the one 1D vocabulary did (``true`` / ``false``, ``pretrain``), so those folders are
the old ones. A kind added to the table without a case here fails :func:`test_every_kind_has_a_case`."""

import json

import numpy as np
import pytest

import part
from part.config import load_config
from part.data.kinds import DATA_KINDS
from part.data.sleep import make_synthetic_sleep
from part.engine import build_dataset, load_run

from ..data.sleep.test_dataset import physionet_folder, write_edf_pair
from ..data.test_images import cifar10_batches, make_idx_split, write_cifar_folder, write_image

pytestmark = pytest.mark.slow  # several short runs each

IMAGE_MODEL = {"arch": "custom", "embed_dim": 16, "depth": 1, "num_heads": 2, "img_size": 8, "patch_size": 4}


def _signal_model(length: int, patch: int, chans: int) -> dict:
    return {"arch": "vit1d_custom", "embed_dim": 16, "depth": 1, "num_heads": 2, "img_size": length,
            "patch_size": patch, "in_chans": chans}


def _idx(tmp):
    make_idx_split(tmp / "idx", "train", n=12)
    return {"kind": "idx", "root": str(tmp / "idx")}, {**IMAGE_MODEL, "in_chans": 1}


def _fashion_mnist(tmp):
    make_idx_split(tmp / "fm", "train", n=12)
    return {"kind": "fashion_mnist", "root": str(tmp / "fm")}, {**IMAGE_MODEL, "in_chans": 1}


def _cifar(tmp):
    write_cifar_folder(tmp / "cifar-10-batches-py", cifar10_batches(n=3))
    return {"kind": "cifar", "root": str(tmp / "cifar-10-batches-py")}, {**IMAGE_MODEL, "in_chans": 3}


def _imagefolder(tmp):
    rng = np.random.default_rng(0)
    for i in range(12):
        write_image(tmp / "folder" / "train" / f"c{i % 2}" / f"{i}.png", rng.integers(0, 256, (9, 7, 3), dtype=np.uint8))
    return {"kind": "imagefolder", "root": str(tmp / "folder")}, {**IMAGE_MODEL, "in_chans": 3}


def _npz(tmp):
    rng = np.random.default_rng(0)
    np.savez(tmp / "train.npz", x=rng.integers(0, 256, (12, 8, 8), dtype=np.uint8), y=np.arange(12) % 3)
    return {"kind": "npz", "root": str(tmp / "train.npz")}, {**IMAGE_MODEL, "in_chans": 1}


def _wds(tmp):
    from part.data.wds import write_shards

    pytest.importorskip("webdataset")
    rng = np.random.default_rng(0)
    np.savez(tmp / "d.npz", x=rng.integers(0, 256, (16, 8, 8), dtype=np.uint8), y=np.arange(16))
    write_shards(tmp / "d.npz", tmp / "shards", shard_size=8)
    return {"kind": "wds", "root": str(tmp / "shards")}, {**IMAGE_MODEL, "in_chans": 1}


def _signal_npz(tmp):
    rng = np.random.default_rng(0)
    np.savez(tmp / "s.npz", x=rng.normal(size=(12, 2, 40)).astype(np.float32), y=np.arange(12) % 2,
             group=np.repeat(["a", "b", "c"], 4))
    data = {"kind": "signal_npz", "root": str(tmp / "s.npz"),
            "options": {"split_by": "group", "test_groups": ["c"], "normalize": "dataset"}}
    return data, _signal_model(40, 8, 2)


SYN = {"n_subjects": 5, "epochs_per_subject": 4, "channels": 2, "fs": 50, "window_s": 4, "n_finetune": 2,
       "n_test": 1}


def _sleep_synthetic(tmp):
    data = {"kind": "sleep_synthetic", "split": "pretrain", "options": {**SYN, "normalize": True}}
    return data, _signal_model(200, 20, 2)


def _sleep_npz(tmp):
    rec = make_synthetic_sleep(5, 4, channels=2, fs=50.0, window_s=4.0, seed=0, normalize=False)
    rec.save_npz(tmp / "nights.npz")
    data = {"kind": "sleep_npz", "root": str(tmp / "nights.npz"), "split": "pretrain",
            "options": {"n_finetune": 2, "n_test": 1, "normalize": True}}
    return data, _signal_model(200, 20, 2)


def _physionet2018(tmp):
    pytest.importorskip("wfdb")
    root = physionet_folder(tmp, n=3)
    data = {"kind": "physionet2018", "root": str(root), "split": "pretrain",
            "options": {"n_finetune": 1, "n_test": 1, "cache_dir": str(tmp / "cache"), "normalize": True}}
    return data, _signal_model(3000, 100, 6)


def _sleep_edf(tmp):
    pytest.importorskip("pyedflib")
    hyp = [(0, 60, "Sleep stage W"), (60, 60, "Sleep stage 2"), (120, 60, "Sleep stage R")]
    for stem in ("SC4001", "SC4011", "SC4021"):
        write_edf_pair(tmp / "edf", stem, "C", hyp, 180)
    data = {"kind": "sleep_edf", "root": str(tmp / "edf"), "split": "pretrain",
            "options": {"n_finetune": 1, "n_test": 1, "cache_dir": str(tmp / "cache"), "normalize": False}}
    return data, _signal_model(3000, 100, 2)


CASES = {"idx": _idx, "fashion_mnist": _fashion_mnist, "cifar": _cifar, "imagefolder": _imagefolder, "npz": _npz,
         "wds": _wds, "signal_npz": _signal_npz, "sleep_synthetic": _sleep_synthetic, "sleep_npz": _sleep_npz,
         "physionet2018": _physionet2018, "sleep_edf": _sleep_edf}


def test_every_kind_has_a_case():
    assert sorted(CASES) == sorted(DATA_KINDS)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_a_run_of_every_kind_pretrains_resumes_and_loads(kind, tmp_path):
    data, model = CASES[kind](tmp_path)
    if DATA_KINDS[kind].dims == 1:
        data["rrc_scale"] = None
    raw = {"model": model, "objective": {"name": "part", "num_pairs": 6}, "data": data,
           "optim": {"lr": 1e-3, "warmup_steps": 1},
           "train": {"max_steps": 2, "batch_size": 4, "log_every": 1, "ckpt_every": 1, "keep_last": 1,
                     "device": "cpu", "amp": "none"}}
    run = tmp_path / "run"
    first = part.pretrain(raw, out=run, progress=False)
    assert first.step == 2 and (run / "checkpoints").is_dir()
    for name in ("summary.json", "weights.safetensors"):  # as a run cut off after its step-2 checkpoint
        (run / name).unlink()
    resumed = part.pretrain(None, out=run, overrides=["train.max_steps=3"], resume=True, progress=False)
    assert resumed.step == 3
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    objective, cfg = load_run(run)
    assert cfg.data.kind == kind and cfg.data.options == raw["data"].get("options", {})  # as written
    assert objective.backbone.patch_embed.proj.weight.shape[1] == model["in_chans"]
    if DATA_KINDS[kind].records:
        record = json.loads((run / "data.json").read_text())
        assert record["kind"] == kind and list(record["splits"]) == [cfg.data.split]
        assert record["splits"][cfg.data.split]["num_samples"] >= 4
    else:
        assert not (run / "data.json").exists()
    if not DATA_KINDS[kind].stream:  # what the run read is what its config builds again
        again = build_dataset(load_config(run / "config.yaml"), train=False)
        assert len(again) == len(build_dataset(cfg, train=False))

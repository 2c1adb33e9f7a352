"""data.kind wds (streamed tar shards) and part shards: shards written from an npz / image folder, the
stream split over ranks and workers, deterministic order, exact resume, and its bad inputs."""

import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from part.cli import main
from part.config import load_config

wds = pytest.importorskip("webdataset")

from part.data.wds import WdsStream, resolve_shards, write_shards  # noqa: E402
from part.engine.builders import build_dataset  # noqa: E402
from part.engine.loader import ResumableSampler, epoch_loader  # noqa: E402

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"


@pytest.fixture
def shards(tmp_path):
    """64 8x8 grayscale images whose label is their index, in 8 shards of 8."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 256, (64, 8, 8), dtype=np.uint8), y=np.arange(64))
    write_shards(tmp_path / "d.npz", tmp_path / "shards", shard_size=8)
    return tmp_path / "shards"


def _raw(shards, **data):
    return {"model": {"arch": "custom", "embed_dim": 16, "depth": 1, "num_heads": 2, "img_size": 8, "patch_size": 4,
                      "in_chans": 1, "drop_path_rate": 0.0},
            "objective": {"name": "part", "num_pairs": 6},
            "data": {"kind": "wds", "root": None if shards is None else str(shards), "rrc_scale": [0.5, 1.0], "options": {"shuffle_buffer": 16},
                     **data},
            "optim": {"lr": 1e-3, "warmup_steps": 2},
            "train": {"max_steps": 12, "batch_size": 8, "log_every": 1, "ckpt_every": 3, "seed": 0, "device": "cpu",
                      "threads": 1}}


def _cfg(tmp_path, shards, name="c.yaml", train=None, **data):
    raw = _raw(shards, **data)
    raw["train"].update(train or {})
    p = tmp_path / name
    p.write_text(yaml.safe_dump(raw))
    return p


def _epoch(stream, per_rank=8, workers=0, start=0, epoch=0, rank=0, world=1, seed=0):
    """The batches (labels, images) of one rank's epoch from batch ``start`` through the trainer's loader."""
    sampler = ResumableSampler(len(stream), per_rank, seed, True, rank, world)
    it = iter(epoch_loader(stream, sampler, epoch, start, per_rank, workers, False, seed))
    return [next(it) for _ in range(sampler.batches_per_epoch - start)]


def test_shards_from_npz_hold_every_sample_once(shards):
    info = json.loads((shards / "_info.json").read_text())["splits"]["train"]
    assert info["num_samples"] == 64 and info["shard_lengths"] == [8] * 8 and len(info["filenames"]) == 8
    keys, labels = [], []
    for name in info["filenames"]:
        with tarfile.open(shards / name) as tar:
            names = tar.getnames()
            keys += sorted({n.split(".")[0] for n in names})
            labels += [int(tar.extractfile(n).read()) for n in names if n.endswith(".cls")]
    assert sorted(labels) == list(range(64)) and sorted(keys) == [f"{i:08d}" for i in range(64)]
    assert labels != sorted(labels)  # written in a seeded permutation, not the source order


def test_shards_from_an_image_folder_keep_the_file_bytes(tmp_path):
    from PIL import Image

    for c in ("cat", "dog"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / "imgs" / c / f"{i}.jpg")
    res = main(["shards", "--from", str(tmp_path / "imgs"), "--out", str(tmp_path / "s"), "--shard-size", "4",
                "--in-order"])
    assert res == 0
    with tarfile.open(tmp_path / "s" / "train-000000.tar") as tar:
        assert tar.extractfile("00000000.jpg").read() == (tmp_path / "imgs" / "cat" / "0.jpg").read_bytes()
        assert tar.extractfile("00000003.cls").read() == b"1"  # dog
    info = json.loads((tmp_path / "s" / "_info.json").read_text())
    assert info["classes"] == ["cat", "dog"] and info["splits"]["train"]["shard_lengths"] == [4, 2]


def test_same_seed_same_order_other_seed_other_order(tmp_path, shards):
    cfg = load_config(_cfg(tmp_path, shards))
    a = _epoch(build_dataset(cfg))
    b = _epoch(build_dataset(cfg))
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))  # images too (augmentation)
    cfg.train.seed = 1
    c = _epoch(build_dataset(cfg), seed=1)
    assert [x[1].tolist() for x in a] != [x[1].tolist() for x in c]
    assert sorted(sum((x[1].tolist() for x in a), [])) == list(range(64))  # one rank: the whole epoch
    e1 = _epoch(build_dataset(load_config(_cfg(tmp_path, shards))), epoch=1)
    assert [x[1].tolist() for x in a] != [x[1].tolist() for x in e1]  # each epoch its own shard order


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_epoch_continues_the_same_batches(tmp_path, shards, workers):
    cfg = load_config(_cfg(tmp_path, shards, num_workers=workers))
    full = _epoch(build_dataset(cfg), per_rank=4, workers=workers)
    for start in (1, 5):
        rest = _epoch(build_dataset(cfg), per_rank=4, workers=workers, start=start)
        assert len(rest) == len(full) - start
        for (x, y), (fx, fy) in zip(rest, full[start:]):
            assert torch.equal(y, fy) and torch.equal(x, fx)


@pytest.mark.slow
def test_two_ranks_two_workers_read_disjoint_samples_covering_the_epoch(tmp_path, shards):
    cfg = _cfg(tmp_path, shards, num_workers=2, train={"batch_size": 8})
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "labels.json"
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(HERE / "wds_ranks.py"), str(cfg), str(out)], env=env, capture_output=True, text=True,
                         timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    ranks = json.loads(out.read_text())
    seen = [sorted(sum(r, [])) for r in ranks]
    assert len(seen[0]) == len(seen[1]) == 32 and not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(64))
    assert all(len(b) == 4 for r in ranks for b in r)  # per-rank batch = global 8 / 2 ranks


@pytest.mark.slow
def test_kill_9_then_resume_is_bit_identical(tmp_path, shards):
    from tests.reliability.helpers import env, part_cmd, run_cli, same_end_state, wait_for_lines

    cfg = _cfg(tmp_path, shards, num_workers=2, train={"max_steps": 20, "ckpt_every": 3})
    ref = run_cli("pretrain", "--config", str(cfg), "--out", str(tmp_path / "ref"), "--no-progress")
    assert ref.returncode == 0, ref.stderr
    run = tmp_path / "run"
    cmd = part_cmd("pretrain", "--config", str(cfg), "--out", str(run), "--resume", "auto", "--no-progress")
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert wait_for_lines(run, 11, proc)  # mid-epoch (8 steps an epoch), past the checkpoint of step 9
    proc.kill()
    assert proc.wait(60) != 0
    for _ in range(60):  # the killed run's loader workers hold its lock until they notice (a few seconds)
        again = run_cli(*cmd[3:])
        if "in use by another part process" not in again.stderr:
            break
        time.sleep(0.5)
    assert again.returncode == 0, again.stderr
    same_end_state(tmp_path / "ref", run)


def test_pipe_urls_pass_through_to_webdataset(tmp_path, shards):
    pattern = f"pipe:cat {shards}/train-{{000000..000007}}.tar"
    cfg = load_config(_cfg(tmp_path, pattern, options={"epoch_size": 64, "shuffle_buffer": 16}))
    got = _epoch(build_dataset(cfg))
    local = _epoch(build_dataset(load_config(_cfg(tmp_path, shards, name="local.yaml"))))
    assert [y.tolist() for _, y in got] == [y.tolist() for _, y in local]  # same shards, same order


def test_a_list_of_shards(tmp_path, shards):
    listed = [str(shards / "train-{000000..000003}.tar"), f"pipe:cat {shards}/train-000004.tar",
              str(shards / "train-00000{5,6,7}.tar")]
    cfg = load_config(_cfg(tmp_path, None, options={"shards": listed, "shuffle_buffer": 16}))
    stream = build_dataset(cfg)
    assert len(stream.shards) == 8 and len(stream) == 64  # epoch size from the _info.json beside them
    assert sorted(sum((y.tolist() for _, y in _epoch(stream)), [])) == list(range(64))


def test_signal_shards(tmp_path):
    x = np.random.default_rng(0).normal(size=(12, 2, 50)).astype(np.float32)
    np.savez(tmp_path / "s.npz", x=x, y=np.arange(12))
    write_shards(tmp_path / "s.npz", tmp_path / "sh", shard_size=4, signals=True)
    raw = _raw(tmp_path / "sh")
    raw["model"] = {"arch": "vit1d_tiny", "img_size": 50, "patch_size": 10, "in_chans": 2}
    raw["data"].pop("rrc_scale")
    cfg = load_config(None, base=raw)
    batches = _epoch(build_dataset(cfg), per_rank=4)
    for xb, yb in batches:
        assert xb.shape == (4, 2, 50)
        for xi, yi in zip(xb, yb):
            assert torch.equal(xi, torch.from_numpy(x[int(yi)]))


# --- bad inputs: one line, exit 2 ----------------------------------------------------------------------
def _one_line_error(capsys, argv, expected):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and expected in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.bad_input
def test_corrupt_member_names_shard_and_member(tmp_path, shards, capsys):
    name = shards / "train-000003.tar"
    with tarfile.open(name) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    victim = next(m.name for m, _ in members if m.name.endswith(".png"))
    with tarfile.open(name, "w") as tar:
        for m, data in members:
            data = b"not a png" if m.name == victim else data
            m.size = len(data)
            tar.addfile(m, io.BytesIO(data))
    cfg = _cfg(tmp_path, shards, options={"shuffle_buffer": 0}, train={"max_steps": 8})
    _one_line_error(capsys, ["pretrain", "--config", str(cfg), "--out", str(tmp_path / "r"), "--no-progress"],
                    f"{name}: member {victim}: cannot decode image")


@pytest.mark.bad_input
def test_truncated_shard_is_one_line_naming_it(tmp_path, shards, capsys):
    name = shards / "train-000002.tar"
    name.write_bytes(name.read_bytes()[:3000])  # cut inside a member
    cfg = _cfg(tmp_path, shards, options={"shuffle_buffer": 0}, train={"max_steps": 8})
    _one_line_error(capsys, ["pretrain", "--config", str(cfg), "--out", str(tmp_path / "r"), "--no-progress"],
                    str(name))


def test_skip_corrupt_skips_the_bad_member(tmp_path, shards):
    name = shards / "train-000000.tar"
    with tarfile.open(name) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    victim = next(m.name for m, _ in members if m.name.endswith(".png"))
    with tarfile.open(name, "w") as tar:
        for m, data in members:
            data = b"junk" if m.name == victim else data
            m.size = len(data)
            tar.addfile(m, io.BytesIO(data))
    cfg = load_config(_cfg(tmp_path, shards, skip_corrupt=True, options={"shuffle_buffer": 0}))
    with pytest.warns(UserWarning, match="skipped a corrupt sample"):
        labels = sum((y.tolist() for _, y in _epoch(build_dataset(cfg), per_rank=7)), [])
    assert len(labels) == 63 and len(set(labels)) == 63  # 9 batches of 7 from the 63 good samples


@pytest.mark.bad_input
def test_missing_shard_is_one_line_before_training(tmp_path, shards, capsys):
    (shards / "train-000005.tar").unlink()
    cfg = _cfg(tmp_path, shards)
    _one_line_error(capsys, ["pretrain", "--config", str(cfg), "--out", str(tmp_path / "r"), "--no-progress"],
                    f"shard does not exist: {shards / 'train-000005.tar'}")
    assert not (tmp_path / "r" / "metrics.jsonl").exists()


@pytest.mark.bad_input
@pytest.mark.parametrize("data,expected", [
    ({"options": {"epoch_sise": 10}}, "unknown option data.options.epoch_sise for data.kind wds"),
    ({"options": {"epoch_size": 0}}, "data.options.epoch_size must be a positive integer"),
    ({"options": {"shuffle_buffer": -1}}, "data.options.shuffle_buffer must be an integer >= 0"),
    ({"max_samples": 10}, "data.max_samples must be null for data.kind wds"),
    ({"repeated_aug": 3}, "data.repeated_aug must be 1 for data.kind wds"),
    ({"label_fraction": 0.1}, "data.label_fraction must be null for data.kind wds"),
    ({"num_workers": 9}, "8 shards cannot feed 1 ranks x 9 loader workers"),
    ({"root": "/nonexistent/shards"}, "shard does not exist: /nonexistent/shards"),
    ({"options": {"shards": "a.tar"}}, "data.options.shards must be a non-empty list"),
    ({"options": {"shards": ["/nowhere/a-{0..1}.tar"]}}, "shard does not exist: /nowhere/a-0.tar; 2 of 2 shards are missing"),
])
def test_bad_wds_inputs(tmp_path, shards, capsys, data, expected):
    cfg = _cfg(tmp_path, shards, **data)
    _one_line_error(capsys, ["pretrain", "--config", str(cfg), "--out", str(tmp_path / "r"), "--no-progress"], expected)


@pytest.mark.bad_input
def test_no_epoch_size_is_one_line(tmp_path, shards, capsys):
    (shards / "_info.json").unlink()
    cfg = _cfg(tmp_path, shards)
    _one_line_error(capsys, ["pretrain", "--config", str(cfg), "--out", str(tmp_path / "r"), "--no-progress"],
                    "the epoch size is unknown; set data.options.epoch_size")


@pytest.mark.bad_input
@pytest.mark.parametrize("args,expected", [
    (["--from", "nowhere.npz"], "--from folder or npz file does not exist: nowhere.npz"),
    (["--shard-size", "0"], "--shard-size must be a positive integer"),
    (["--split", "a/b"], "--split must be a simple name"),
    (["--signals"], "signals must be x (N, C, T)"),
])
def test_bad_shards_inputs(tmp_path, capsys, args, expected, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2, 2, 2, 2), np.uint8))
    argv = ["shards", "--from", "d.npz", "--out", "s", *args]
    _one_line_error(capsys, argv, expected)


@pytest.mark.bad_input
def test_without_webdataset_is_one_line(tmp_path, shards, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "webdataset", None)
    cfg = _cfg(tmp_path, shards)
    _one_line_error(capsys, ["pretrain", "--config", str(cfg), "--out", str(tmp_path / "r"), "--no-progress"],
                    "pip install 'part[wds]'")


def test_evaluation_on_a_stream_is_refused(tmp_path, shards):
    with pytest.raises(ValueError, match="streams shards for pretraining"):
        build_dataset(load_config(_cfg(tmp_path, shards)), train=False)

"""Bounded inputs (issue 25, item 4): a small file must not make ``part`` eat the machine, and every parsing
failure is one line naming the key or file with exit code 2. YAML anchors and aliases are refused in
configs and run folders; an export's ``config.json`` is checked (keys, types, shapes against the weights'
safetensors header) before a model is built from it; a label implies at most ``MAX_CLASSES`` classes
unless the data names them; image kinds name a bad ``data.options`` key; image folders follow no symlink
loop; 16-bit images are scaled, not clipped at 255.

Cases that a broken build would answer by growing without bound run in a subprocess under a 3 GB
address-space limit and a timeout, so a regression fails the test instead of the machine."""

from __future__ import annotations

import json
import resource
import subprocess
from pathlib import Path

import numpy as np
import pytest

from part.cli import main

from .helpers import env, finished_run, part_cmd, snapshot, tiny_raw, write_config, write_data

bad_input = pytest.mark.bad_input

LAUGHS = "".join(f"x{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else ', '.join(['lol'] * 9)}]\n"
                 for i in range(10))  # 9**10 strings once expanded


def _bounded_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``part ARGS`` in a subprocess limited to 3 GB of address space and ``timeout`` seconds."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    return subprocess.run(part_cmd(*args), env=env(), capture_output=True, text=True, timeout=timeout,
                          preexec_fn=limit)


def _one_line_exit_2(res_or_rc, err=None, words=()):
    rc, lines = (res_or_rc.returncode, res_or_rc.stderr) if err is None else (res_or_rc, err)
    lines = [ln for ln in lines.strip().splitlines() if not ln.startswith(("warning:", "note:"))]
    assert rc == 2, (rc, lines)
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A finished tiny run and its export."""
    tmp = tmp_path_factory.mktemp("bounded")
    data, cfg, run = finished_run(tmp)
    return {"tmp": tmp, "data": data, "cfg": cfg, "run": run}


# --- YAML anchors and aliases -------------------------------------------------------------------------
@bad_input
def test_yaml_alias_chain_in_a_config_is_refused(ws):
    path = ws["tmp"] / "laughs.yaml"
    path.write_text(LAUGHS)
    res = _bounded_cli("pretrain", "--config", str(path), "--out", str(ws["tmp"] / "never"), "--no-progress")
    _one_line_exit_2(res, words=["laughs.yaml", "anchors"])
    assert not (ws["tmp"] / "never").exists()


@bad_input
def test_yaml_alias_chain_in_a_run_folder_is_refused_by_info_and_resume(ws, tmp_path):
    import shutil

    run = tmp_path / "aliased"
    shutil.copytree(ws["run"], run)
    (run / "summary.json").unlink()  # a run --resume would continue
    (run / "config.yaml").write_text(LAUGHS + (run / "config.yaml").read_text())
    before = snapshot(run)
    _one_line_exit_2(_bounded_cli("info", str(run)), words=["config.yaml", "anchors"])
    _one_line_exit_2(_bounded_cli("pretrain", "--out", str(run), "--resume", "--no-progress"),
                     words=["config.yaml", "anchors"])
    assert snapshot(run) == before


@bad_input
def test_yaml_alias_in_a_set_value_is_refused(ws, capsys):
    rc = main(["pretrain", "--config", str(ws["cfg"]), "--out", str(ws["tmp"] / "never2"), "--no-progress",
               "--set", "data.rrc_scale=&a [0.5, 1.0]"])
    _one_line_exit_2(rc, capsys.readouterr().err, ["data.rrc_scale", "anchors"])


# --- an export's config.json --------------------------------------------------------------------------
def _edited_export(ws, tmp_path, edit) -> Path:
    import shutil

    exp = tmp_path / "export"
    shutil.copytree(ws["run"] / "export", exp)
    config = json.loads((exp / "config.json").read_text())
    edit(config)
    (exp / "config.json").write_text(json.dumps(config))
    return exp


@bad_input
def test_export_claiming_depth_100000_is_refused_before_building(ws, tmp_path):
    exp = _edited_export(ws, tmp_path, lambda c: c["part_config"].update(depth=100_000))
    res = _bounded_cli("probe", "--run", str(exp), "--config", str(ws["cfg"]), "--out", str(tmp_path / "p.json"))
    _one_line_exit_2(res, words=["config.json", "depth=100000", "1 blocks"])


@bad_input
@pytest.mark.parametrize("edit, words", [
    (lambda c: c["part_config"].update(flash=True), ["part_config.flash"]),
    (lambda c: c["part_config"].update(depth="deep"), ["part_config.depth", "deep"]),
    (lambda c: c["part_config"].update(num_classes=10 ** 9), ["num_classes=1000000000"]),
    (lambda c: c["part_config"].update(embed_dim=4096), ["embed_dim=4096"]),
], ids=["unknown key", "depth a string", "num_classes 1e9", "embed_dim"])
def test_export_config_json_errors_name_the_key(ws, tmp_path, capsys, edit, words):
    exp = _edited_export(ws, tmp_path, edit)
    rc = main(["probe", "--run", str(exp), "--config", str(ws["cfg"]), "--out", str(tmp_path / "p.json")])
    _one_line_exit_2(rc, capsys.readouterr().err, ["config.json", *words])


@bad_input
def test_run_folder_config_claiming_another_depth_is_refused_before_building(ws, tmp_path, capsys):
    import shutil

    import yaml

    run = tmp_path / "deep"
    shutil.copytree(ws["run"], run)
    raw = yaml.safe_load((run / "config.yaml").read_text())
    raw["model"]["depth"] = 100_000
    (run / "config.yaml").write_text(yaml.safe_dump(raw))
    rc = main(["export", "--run", str(run), "--out", str(tmp_path / "e")])
    _one_line_exit_2(rc, capsys.readouterr().err, ["config.yaml", "depth=100000"])


# --- class counts --------------------------------------------------------------------------------------
def _signal_data(folder: Path, y) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(y), 2, 32)).astype(np.float32)
    np.savez(folder / "train.npz", x=x, y=np.asarray(y, dtype=np.int64))
    return folder


@bad_input
def test_one_signal_label_of_1e9_is_one_line_not_a_256_gb_tensor(tmp_path):
    root = _signal_data(tmp_path / "sig", [0, 1] * 15 + [10 ** 9, 1])
    raw = {"model": {"arch": "vit1d_custom", "embed_dim": 16, "depth": 1, "num_heads": 2, "img_size": 32,
                     "patch_size": 8, "in_chans": 2},
           "objective": {"name": "supervised", "options": {}},
           "data": {"kind": "signal_npz", "root": str(root)},
           "train": {"max_steps": 1, "batch_size": 8, "device": "cpu"}}
    cfg = write_config(tmp_path / "sig.yaml", raw)
    res = _bounded_cli("finetune", "--config", str(cfg), "--init", "none", "--out", str(tmp_path / "r"),
                       "--no-progress")
    _one_line_exit_2(res, words=["train.npz", "1000000000", "class"])


@bad_input
def test_one_image_label_of_1e9_is_one_line(tmp_path, capsys):
    """An npz image set whose labels imply 1e9 classes is refused when it is read."""
    data = write_data(tmp_path / "d")
    arrays = dict(np.load(data))
    arrays["y"][5] = 10 ** 9
    np.savez(data, **arrays)
    cfg = write_config(tmp_path / "c.yaml", tiny_raw(data, max_steps=1))
    rc = main(["pretrain", "--config", str(cfg), "--out", str(tmp_path / "r"), "--no-progress"])
    _one_line_exit_2(rc, capsys.readouterr().err, ["tiny.npz", "1000000000", "class"])


# --- data.options of image kinds -------------------------------------------------------------------------
@bad_input
@pytest.mark.parametrize("opts, words", [
    ("{colour: true}", ["data.options.colour", "npz"]),
    ("{x_key: 5}", ["data.options.x_key", "5"]),
], ids=["unknown key", "wrong type"])
def test_bad_image_options_name_the_key(ws, tmp_path, capsys, opts, words):
    rc = main(["pretrain", "--config", str(ws["cfg"]), "--out", str(tmp_path / "r"), "--no-progress",
               "--set", f"data.options={opts}"])
    _one_line_exit_2(rc, capsys.readouterr().err, words)
    assert not (tmp_path / "r").exists()


# --- image folders ------------------------------------------------------------------------------------
@bad_input
def test_symlink_loop_in_an_image_folder_does_not_multiply_the_dataset(tmp_path):
    from PIL import Image

    from part.data.images import ImageFolderDataset

    for cls in ("a", "b"):
        (tmp_path / cls / "sub").mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(tmp_path / cls / "sub" / f"{i}.png")
    (tmp_path / "a" / "sub" / "loop").symlink_to(tmp_path / "a")  # a/sub/loop -> a
    (tmp_path / "b" / "again").symlink_to(tmp_path / "b" / "sub")  # a second link to a folder already read
    with pytest.warns(UserWarning, match="symlink"):
        ds = ImageFolderDataset(tmp_path, channels=1)
    assert len(ds) == 6
    assert len({p.resolve() for p, _ in ds.samples}) == 6


@bad_input
def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    from PIL import Image

    from part.data.images import ImageFolderDataset, read_image

    (tmp_path / "c").mkdir()
    ramp = np.array([[0, 255, 256, 4096, 32768, 65535]], dtype=np.uint16).repeat(2, axis=0)
    Image.fromarray(ramp).save(tmp_path / "c" / "wide.png")
    with Image.open(tmp_path / "c" / "wide.png") as im:
        assert im.mode.startswith("I")  # a real 16-bit PNG
    for mode in ("L", "RGB"):
        img = read_image(tmp_path / "c" / "wide.png", mode)
        got = img.float()
        assert got.shape[0] == (1 if mode == "L" else 3)
        np.testing.assert_allclose(got[0, 0].numpy(), ramp[0] / 65535.0, atol=1e-6)
    x, _ = ImageFolderDataset(tmp_path, channels=1)[0]
    np.testing.assert_allclose(x[0, 0].numpy(), ramp[0] / 65535.0, atol=1e-6)

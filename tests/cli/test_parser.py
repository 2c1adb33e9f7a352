"""CLI behaviour users expect from other tools: --version, the subcommand's usage on a bad flag, rank 0 alone
printing under torchrun, ``part info``."""

from __future__ import annotations

import json

import pytest

import part
from part.cli import build_parser, main

from ..engine.conftest import tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import numpy as np

    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    np.savez(root / "tiny.npz", x=rng.integers(0, 256, (32, 8, 8), dtype=np.uint8), y=rng.integers(0, 4, 32))
    return part.pretrain(tiny_config(root / "tiny.npz", max_steps=2), out=root / "run", progress=False).run_dir


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"part {part.__version__}"


@pytest.mark.parametrize("argv,usage", [
    (["pretrain", "--config", "x.yaml", "--bogus"], "usage: part pretrain"),
    (["probe", "--run", "r", "--max-trian", "5"], "usage: part probe"),
    (["export", "--run", "r", "--outt", "x"], "usage: part export"),
    (["info", "r", "--verbose"], "usage: part info"),
    (["ablate", "--config", "a.yaml", "--dryrun"], "usage: part ablate"),
])
def test_bad_flag_prints_the_subcommands_usage(argv, usage, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    bad = argv[-1] if argv[-1].startswith("--") else argv[-2]
    assert e.value.code == 2 and err.startswith(usage), err
    assert f"part {argv[0]}: error: unrecognized arguments: {bad}" in err


def test_bad_flag_before_the_subcommand_prints_top_level_usage(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--bogus", "info", "r"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("usage: part [-h] [--version]") and "--bogus" in err


def test_only_rank_0_prints(run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RANK", "1")
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "e1")]) == 0
    assert capsys.readouterr().out == ""  # rank 1 did the work silently
    assert (tmp_path / "e1" / "model.safetensors").is_file()
    monkeypatch.setenv("RANK", "0")
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "e0")]) == 0
    assert capsys.readouterr().out.strip() == f"wrote export (config.json, model.safetensors, README.md) to {tmp_path / 'e0'}"
    # errors still reach stderr on every rank
    monkeypatch.setenv("RANK", "1")
    assert main(["info", str(tmp_path / "nope")]) == 2
    assert "run folder not found" in capsys.readouterr().err


def test_every_subcommand_is_wrapped():
    parser = build_parser()
    assert {"pretrain", "finetune", "probe", "evaluate", "export", "ablate", "visualize", "info"} <= set(parser.subcommands)
    for p in parser.subcommands.values():
        func = p.get_default("func")
        assert func.__wrapped__ is not func and func.__code__.co_name == "run"  # the rank-0 wrapper


def test_info_screen(run, capsys):
    assert main(["info", str(run)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"run          {run}  (finished)" and out[-1] == f"read {run}"
    text = "\n".join(out)
    for words in ("objective  part (head cross_attention_paper, 6 pairs)", "model      custom 16/1/2, img 8, patch 4, 1 ch",
                  "schedule   2 steps", "logging    jsonl, tensorboard", "steps        2 of 2", "last metrics loss ",
                  "checkpoints  step 2 (in", "export       " + str(run / "export") + ": vit_base_patch16_224"):
        assert words in text, words
    assert len(out) <= 24  # one screen


def test_info_json_and_python_twin(run, capsys):
    assert main(["info", str(run), "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    got = json.loads("\n".join(lines[:-1]))
    ri = part.info(run)
    assert got == ri.to_dict()
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert ri.steps == 2 and ri.total_steps == 2 and ri.finished and ri.metrics == last
    assert [s for s, _ in ri.checkpoints] == [2] and ri.export["files"] == ["README.md", "config.json", "model.safetensors"]


def test_info_of_an_unfinished_run(run, tmp_path):
    import shutil

    copy = tmp_path / "half"
    shutil.copytree(run, copy)
    shutil.rmtree(copy / "export")
    (copy / "summary.json").unlink()
    with open(copy / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "lo')  # a line being written
    ri = part.info(copy)
    assert not ri.finished and ri.steps == 2 and ri.export is None
    from part.engine.info import format_info

    text = format_info(ri)
    assert "(unfinished)" in text and "export       none (part export)" in text


def test_info_errors(tmp_path, capsys):
    assert main(["info", str(tmp_path)]) == 2
    assert "is not a part run folder (no config.yaml)" in capsys.readouterr().err

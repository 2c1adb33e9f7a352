"""docs/signals.md's five commands, run as written (plus a tiny training budget), on arrays of the test's own:
a new user's path from x / y to a fine-tuned, evaluated, exported 1D model."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from part.cli import main

pytestmark = pytest.mark.slow  # end to end: several runs of the CLI or a benchmark script

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--set", "train.max_steps=2", "--set", "train.batch_size=8", "--set", "train.device=cpu"]

MY_ARRAYS = '''
import numpy as np
rng = np.random.default_rng(0)
def make(n):
    y = np.arange(n) % 2
    x = rng.normal(size=(n, 4, 500)) + 3.0 * y[:, None, None]
    return x.astype(np.float32), y
x_train, y_train = make(24)
x_test, y_test = make(10)
'''


def doc_commands() -> list[str]:
    text = (ROOT / "docs" / "signals.md").read_text()
    block = re.search(r"<!-- five-commands.*?```bash\n(.*?)```", text, re.S)
    assert block, "docs/signals.md lost its five-commands block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_five_commands_of_the_docs(tmp_path, monkeypatch, capsys):
    commands = doc_commands()
    assert len(commands) == 5 and commands[0].startswith("python -c")
    (tmp_path / "my_arrays.py").write_text(MY_ARRAYS)
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    monkeypatch.chdir(tmp_path)
    py = shlex.split(commands[0])
    subprocess.run([sys.executable] + py[1:], check=True, cwd=tmp_path)
    for line in commands[1:]:
        argv = shlex.split(line)
        assert argv[0] == "part"
        extra = TINY if argv[1] in ("pretrain", "finetune") else []
        assert main(argv[1:] + extra + (["--no-progress"] if extra else [])) == 0, line
    out = capsys.readouterr().out
    assert out.count("wrote") >= 4
    res = json.loads((tmp_path / "runs" / "my-ft" / "results.json").read_text())
    assert res["class_names"] == ["rest", "move"] and res["num_samples"] == 10 and "top5" not in res
    side = json.loads((tmp_path / "runs" / "my-model" / "config.json").read_text())
    x = np.load(tmp_path / "mydata" / "train.npz")["x"]
    assert np.allclose(side["preprocessing"]["mean"], x.mean(axis=(0, 2)), atol=1e-4)
    assert (tmp_path / "runs" / "my-model" / "model.safetensors").is_file()
    # "Using the exported model": the load-back block as written, on the test signals
    block = re.search(r"<!-- load-back.*?```python\n(.*?)```", (ROOT / "docs" / "signals.md").read_text(), re.S)
    assert block, "docs/signals.md lost its load-back block"
    x_test = np.load(tmp_path / "mydata" / "test.npz")["x"]
    scope = {"x_new": x_test}
    exec(block.group(1), scope)
    from part.engine import load_run

    objective, _ = load_run(tmp_path / "runs" / "my-ft")
    assert scope["scores"].shape == (10, 2) and scope["features"].shape[0] == 10
    torch.testing.assert_close(scope["scores"], objective.logits(scope["x"]))
    assert scope["model"].class_names == ["rest", "move"] and scope["model"].pool == side["global_pool"]

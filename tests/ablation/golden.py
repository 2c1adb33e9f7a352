"""The two tiny ablation grids of the tests and their recorded results (``fixtures/*.csv``, ``*.md``).

The fixtures were written by ``python -m tests.ablation.golden`` on the single-module implementation
(``src/part/ablate.py``) before it became the :mod:`part.ablation` package; ``test_golden.py`` asserts the
package reproduces them bit for bit (every CSV value, every table cell), apart from wall-clock seconds.
Regenerate only for a deliberate change of results, and say so in the commit message.

They were recorded under the PART defaults of then, head ``cross_attention`` and continuous positions; the
grids name both (:data:`RECORDED_HEADS`, :data:`RECORDED_PART`), so a change of default (issue 18) does not
change what they run.
"""

from __future__ import annotations

import csv
import io
import math
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).parent / "fixtures"
NUM_CLASSES = 4
TIME_COLUMNS = ("pretrain_s", "pretext_s", "probe_s", "finetune_s", "wall_s")  # wall clock: not reproducible
TIME_HEADER = "time (s)"
RECORDED_HEADS = ["cross_attention"]  # the head the fixtures were recorded with (the default until issue 18)
RECORDED_PART = {"pretrain": {"objective": {"positions": "continuous"}}}  # likewise the 2D positions


def write_splits(folder: Path) -> Path:
    """``train.npz`` (40) / ``test.npz`` (16): 8x8 uint8 images, class c = noise + brightness 60 c."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 16)):
        y = np.arange(n) % NUM_CLASSES
        rng.shuffle(y)
        x = rng.integers(0, 50, (n, 8, 8)) + 60 * y[:, None, None]
        np.savez(folder / f"{split}.npz", x=x.astype(np.uint8), y=y.astype(np.int64))
    return folder


def tiny(root, **top) -> dict:
    """2 objectives (part, mp3) x 2 #pairs x 2 seeds, 2 steps each, 4 patches of 4x4 per 8x8 image."""
    cfg = {
        "name": "tiny",
        "pretrain": {
            "model": {"arch": "custom", "embed_dim": 16, "depth": 1, "num_heads": 2, "img_size": 8, "patch_size": 4,
                      "in_chans": 1},
            "objective": {"name": "part", "num_pairs": 4},
            "data": {"kind": "npz", "root": str(root), "rrc_scale": [0.5, 1.0]},
            "optim": {"lr": 1e-3, "warmup_steps": 1},
            "train": {"max_steps": 2, "batch_size": 8, "log_every": 1, "ckpt_every": 100, "device": "cpu"},
        },
        "grid": {"objectives": ["part", "mp3"], "heads": RECORDED_HEADS, "num_pairs": [4, 8], "seeds": [0, 1]},
        "objectives": {"part": RECORDED_PART},
        "pretext": {"max_samples": 8},
        "probe": {"epochs": 5},
    }
    cfg.update(top)
    return cfg


def finetune_grid(root) -> dict:
    """part / mae / supervised without position embeddings, one seed, 2-step fine-tunes (every stage)."""
    return tiny(
        root,
        grid={"objectives": ["part", "mae", "supervised_nopos"], "heads": RECORDED_HEADS, "num_pairs": [4],
              "seeds": [0]},
        objectives={"part": RECORDED_PART,
                    "supervised_nopos": {"objective": "supervised", "options": {"pos_embed": False}}},
        finetune={"num_classes": NUM_CLASSES, "options": {"label_smoothing": 0.1}, "train": {"max_steps": 2}},
    )


GRIDS = {"tiny": tiny, "tiny_finetune": finetune_grid}


def comparable_csv(text: str) -> str:
    """``results.csv`` with the wall-clock columns emptied (everything else as written)."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    out = io.StringIO(newline="")
    w = csv.DictWriter(out, fieldnames=list(reader.fieldnames), lineterminator="\n")
    w.writeheader()
    for r in reader:
        w.writerow({k: ("" if k in TIME_COLUMNS else v) for k, v in r.items()})
    return out.getvalue()


def comparable_table(text: str) -> str:
    """``table.md`` without its ``time (s)`` column (the last one)."""
    lines, drop = [], False
    for line in text.splitlines():
        cells = line.split("|")[1:-1] if line.startswith("|") else []
        drop = bool(cells) and (drop or cells[-1].strip() == TIME_HEADER)
        lines.append("|" + "|".join(cells[:-1]) + "|" if drop else line)
    return "\n".join(lines) + "\n"


def _num(text: str):
    try:
        return float(text)
    except ValueError:
        return None


def same_csv(got: str, want: str, rel: float = 1e-6) -> None:
    """Assert two ``results.csv`` texts agree: same rows and columns, text cells equal, numbers within ``rel``."""
    g, w = (list(csv.reader(io.StringIO(t))) for t in (got, want))
    assert len(g) == len(w) and g[0] == w[0], f"rows or columns differ:\n{got}\n!=\n{want}"
    for rg, rw in zip(g[1:], w[1:]):
        for col, a, b in zip(w[0], rg, rw):
            x, y = _num(a), _num(b)
            ok = a == b or (x is not None and y is not None and math.isclose(x, y, rel_tol=rel, abs_tol=1e-12))
            assert ok, f"{col}: {a} != {b} (row {rw[0]})"


def same_table(got: str, want: str) -> None:
    """Assert two ``table.md`` texts agree: same lines and words, each printed number within one unit of its last
    digit (a value on a rounding boundary may print either way on another CPU)."""
    gl, wl = got.splitlines(), want.splitlines()
    assert len(gl) == len(wl), f"line counts differ:\n{got}\n!=\n{want}"
    for a, b in zip(gl, wl):
        ta, tb = re.split(r"(-?\d+\.\d+)", a), re.split(r"(-?\d+\.\d+)", b)
        assert len(ta) == len(tb), f"{a!r} != {b!r}"
        for x, y in zip(ta, tb):
            if x == y:
                continue
            unit = 10.0 ** -len(y.split(".")[1]) if "." in y else 0.0
            assert _num(x) is not None and _num(y) is not None and abs(float(x) - float(y)) <= unit * 1.0001, \
                f"{a!r} != {b!r}"


def main(folder: Path = FIXTURES) -> None:
    import torch

    import part

    torch.set_num_threads(1)  # as tests/conftest.py
    with tempfile.TemporaryDirectory() as tmp:
        root = write_splits(Path(tmp) / "data")
        for name, make in GRIDS.items():
            res = part.ablate(make(root), out=Path(tmp) / name, verbose=False)
            (folder / f"{name}_results.csv").write_text(comparable_csv((res.out / "results.csv").read_text()))
            (folder / f"{name}_table.md").write_text(comparable_table((res.out / "table.md").read_text()))
            print(f"wrote {name}_results.csv and {name}_table.md to {folder}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else FIXTURES)

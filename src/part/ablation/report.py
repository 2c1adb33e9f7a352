"""Rows, aggregation and the written reports of an ablation: ``results.csv`` (one row per cell) and
``table.md`` (mean ± sample std over seeds per (objective, head, #pairs), paper Tab. 2-7 style)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Iterable

from ..io import atomic_write
from ..evaluation.metrics import format_table
from .plan import Cell

CSV_COLUMNS = [
    "cell", "objective", "method", "head", "num_pairs", "seed", "status",
    "pretrain_steps", "train_loss", "pretext_loss", "err_x", "err_y", "err_euclid", "err_w", "err_h", "pretext_acc",
    "probe_top1", "probe_top5", "knn_top1", "finetune_top1", "finetune_top5",
    "pretrain_s", "pretext_s", "probe_s", "finetune_s", "wall_s",
]
METRICS = ["probe_top1", "knn_top1", "finetune_top1", "err_x", "err_y", "err_euclid", "err_w", "err_h",
           "pretext_loss", "pretext_acc", "train_loss", "pretrain_s", "wall_s"]
TABLE_METRICS = [m for m in METRICS if m not in ("train_loss", "pretrain_s")]  # the CSV has every one
ACCURACIES = ["probe_top1", "knn_top1", "finetune_top1"]
LABELS = {
    "probe_top1": "linear probe top-1 (%)", "knn_top1": "kNN top-1 (%)", "finetune_top1": "fine-tune top-1 (%)",
    "err_x": "err_x", "err_y": "err_y", "err_euclid": "err_euclid", "err_w": "err_w", "err_h": "err_h",
    "pretext_loss": "pretext loss", "pretext_acc": "pretext acc (%)", "train_loss": "train loss",
    "pretrain_s": "pretrain s", "wall_s": "time (s)",
}
STAGES = ("pretrain", "pretext", "probe", "finetune")


def cell_row(cell: Cell, stages: dict) -> dict:
    """The CSV row of a cell from its ``stages`` record (per stage: ``metrics``, ``seconds``; ``error``)."""
    pre = stages.get("pretrain", {}).get("metrics", {})
    pt = stages.get("pretext", {}).get("metrics", {})
    pr = stages.get("probe", {}).get("metrics", {})
    ft = stages.get("finetune", {}).get("metrics", {})
    sec = {s: v["seconds"] for s, v in stages.items() if isinstance(v, dict) and "seconds" in v}
    return {
        "cell": cell.name, "objective": cell.label, "method": cell.method, "head": cell.head,
        "num_pairs": cell.num_pairs, "seed": cell.seed, "status": stages.get("error", "ok"),
        "pretrain_steps": pre.get("step"), "train_loss": pre.get("loss"),
        "pretext_loss": pt.get("loss"), "err_x": pt.get("err_x"), "err_y": pt.get("err_y"),
        "err_euclid": pt.get("err_euclid"), "err_w": pt.get("err_w"), "err_h": pt.get("err_h"),
        "pretext_acc": pt.get("acc"),
        "probe_top1": pr.get("probe_top1"), "probe_top5": pr.get("probe_top5"), "knn_top1": pr.get("knn_top1"),
        "finetune_top1": ft.get("finetune_top1"), "finetune_top5": ft.get("finetune_top5"),
        "pretrain_s": sec.get("pretrain"), "pretext_s": sec.get("pretext"), "probe_s": sec.get("probe"),
        "finetune_s": sec.get("finetune"), "wall_s": sum(sec.values()) if sec else None,
    }


def _num(v) -> float | None:
    if v is None or v == "":
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def mean_std(values: Iterable) -> tuple[float | None, float | None, int]:
    """``(mean, sample std (n - 1), n)`` of the non-missing values; std is None for fewer than 2."""
    xs = [f for f in (_num(v) for v in values) if f is not None]
    if not xs:
        return None, None, 0
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, None, len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)), len(xs)


def aggregate(rows: list[dict]) -> list[dict]:
    """Group rows by (objective, head, num_pairs) in first-seen order; for every metric of
    :data:`METRICS` give ``<metric>_mean``, ``<metric>_std`` (over seeds) and ``seeds`` (rows)."""
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["objective"], r["head"], r["num_pairs"]), []).append(r)
    out = []
    for (label, head, pairs), rs in groups.items():
        g = {"objective": label, "method": rs[0].get("method"), "head": head, "num_pairs": pairs,
             "seeds": len(rs), "failed": sum(1 for r in rs if r.get("status", "ok") != "ok")}
        for m in METRICS:
            g[f"{m}_mean"], g[f"{m}_std"], g[f"{m}_n"] = mean_std(r.get(m) for r in rs)
        out.append(g)
    return out


def _pm(mean, std, scale: float = 1.0, digits: int = 2, sig: bool = False) -> str:
    if mean is None:
        return ""
    if sig:
        s = f"{mean:.4g}"
        return s if std is None else f"{s} ± {std:.2g}"
    s = f"{mean * scale:.{digits}f}"
    return s if std is None else f"{s} ± {std * scale:.{digits}f}"


def format_markdown(groups: list[dict]) -> str:
    """The Markdown table of :func:`aggregate`'s groups: accuracies in % (2 decimals), pretext errors and
    losses with 4 significant digits, seconds rounded; columns without any value are left out."""
    rows = []
    for g in groups:
        r = {"objective": g["objective"], "head": g["head"] or "",
             "#pairs": "" if g["num_pairs"] is None else str(g["num_pairs"]),
             "seeds": g["seeds"] - g["failed"] if not g["failed"] else f"{g['seeds'] - g['failed']} (+{g['failed']} failed)"}
        for m in TABLE_METRICS:
            mean, std = g[f"{m}_mean"], g[f"{m}_std"]
            if m in ACCURACIES or m == "pretext_acc":
                r[LABELS[m]] = _pm(mean, std, 100.0, 2)
            elif m.endswith("_s"):
                r[LABELS[m]] = _pm(mean, std, 1.0, 0)
            else:
                r[LABELS[m]] = _pm(mean, std, sig=True)
        rows.append(r)
    cols = ["objective", "head", "#pairs", "seeds"] + [LABELS[m] for m in TABLE_METRICS if any(r[LABELS[m]] for r in rows)]
    if not any(r["head"] for r in rows):
        cols.remove("head")
    if not any(r["#pairs"] for r in rows):
        cols.remove("#pairs")
    return format_table(rows, cols)


def write_table(table: str, num_rows: int, path: Path, name: str) -> Path:
    """``table.md``: a title, how to read it, and :func:`format_markdown`'s ``table``."""
    header = (f"# Ablation {name}\n\nmean ± std over seeds (sample std; a single seed shows its value). "
              f"Accuracies in %. {num_rows} cells; see results.csv.\n\n")
    atomic_write(path, lambda tmp: tmp.write_text(header + table + "\n"))
    return path


def write_csv(rows: list[dict], path: Path) -> Path:
    """``results.csv``: one row per cell, columns :data:`CSV_COLUMNS` (missing values empty)."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_COLUMNS})

    atomic_write(path, write)
    return path


def read_csv(path: str | Path) -> list[dict]:
    """Rows of a ``results.csv`` (strings; numbers stay strings, empty cells are ``""``)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


__all__ = ["CSV_COLUMNS", "METRICS", "TABLE_METRICS", "ACCURACIES", "LABELS", "cell_row", "mean_std", "aggregate",
           "format_markdown", "write_table", "write_csv", "read_csv"]

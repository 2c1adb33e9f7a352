"""Paired differences of an ablation (``paired:``): every row against a baseline row, run by run.

Two rows of the grid (``label[-head][-p#pairs]``, e.g. ``part-cross_attention-p256`` and ``supervised``) that
ran on the same fold with the same seeds form *pairs*: their difference cancels what the fold and the seed do to
both (a hard fold, a lucky label subset), so it is measured far more precisely than the difference of two means.

A run is one fine-tune (``finetune_top1``, ``val_top1``) or one probe (``probe_top1``, ``knn_top1``,
``val_probe_top1``, ``val_knn_top1``) of a cell. Runs pair when they share the fold, the label fraction, the
fine-tune seed and the pretraining seed; when one of the two rows has no pretraining (``supervised``), the
pretraining seed is left out of the match (its fine-tunes do not depend on it) and the first of several equal
runs is taken. Per (row, fraction, metric): ``n`` pairs, both means, the mean difference row - baseline with its
standard error ``sd / sqrt(n)`` and its 95 % Student t interval (``t(n - 1) * se``), and the mean difference
per fold. Written to ``<out>/paired.md`` after every run of ``part ablate``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from ..io import atomic_write, read_json
from .page import t95

__all__ = ["PairedSettings", "PAIRED_METRICS", "parse_paired", "row_name", "check_baseline", "paired_differences",
           "format_paired", "write_paired"]

PROBE_METRICS = ("probe_top1", "knn_top1", "val_probe_top1", "val_knn_top1")
PAIRED_METRICS = ("finetune_top1", "val_top1") + PROBE_METRICS


@dataclass(frozen=True)
class PairedSettings:
    """``baseline``: the row every other row is compared with; ``metrics``: of :data:`PAIRED_METRICS`."""

    baseline: str
    metrics: tuple = ("finetune_top1",)

    def to_dict(self) -> dict:
        return asdict(self)


def parse_paired(value) -> PairedSettings | None:
    """``paired``: null, a row name (the baseline), or ``{baseline: ROW, metrics: [...]}``."""
    if value is None or value is False:
        return None
    if isinstance(value, PairedSettings):
        return value
    if isinstance(value, str):
        value = {"baseline": value}
    if not isinstance(value, dict) or "baseline" not in value:
        raise ValueError(f"ablation config paired must be a row name or {{baseline: ROW, metrics: [...]}}, got {value!r}")
    unknown = sorted(set(value) - {"baseline", "metrics"})
    if unknown:
        raise ValueError(f"unknown key paired.{unknown[0]}; valid keys: ['baseline', 'metrics']")
    metrics = value.get("metrics") or ["finetune_top1"]
    metrics = [metrics] if isinstance(metrics, str) else metrics
    for m in metrics:
        if m not in PAIRED_METRICS:
            raise ValueError(f"paired.metrics: {m!r} is not one of {list(PAIRED_METRICS)}")
    if not isinstance(value["baseline"], str) or not value["baseline"]:
        raise ValueError(f"paired.baseline must be a row name (label[-head][-p#pairs]), got {value['baseline']!r}")
    return PairedSettings(value["baseline"], tuple(metrics))


def row_name(cell) -> str:
    """The row of ``cell``: its name without fold and seed (``part-cross_attention-p256``, ``supervised``)."""
    parts = [cell.label] + ([str(cell.head)] if cell.head is not None else [])
    return "-".join(parts + ([f"p{cell.num_pairs}"] if cell.num_pairs is not None else []))


def check_baseline(cells: list, settings: PairedSettings | None) -> None:
    """``ValueError`` naming the rows when ``paired.baseline`` is not a row of the plan."""
    if settings is None:
        return
    rows = list(dict.fromkeys(row_name(c) for c in cells))
    if settings.baseline not in rows:
        raise ValueError(f"paired.baseline: {settings.baseline!r} is not a row of the grid; its rows: {rows} "
                         "(to run part of the grid without it: --set paired=null)")


def _units(cell, stages: dict, metric: str, with_pretrain_seed: bool) -> dict:
    """``{(fraction, key): value}`` of one cell: ``key`` = (fold, fine-tune seed[, pretraining seed])."""
    out = {}
    pseed = (cell.seed,) if with_pretrain_seed else ()
    if metric in PROBE_METRICS:
        value = (stages.get("probe") or {}).get("metrics", {}).get(metric)
        if value is not None:
            out[(None, (cell.fold, None) + pseed)] = value
        return out
    for r in cell.finetunes:
        value = (stages.get(r.key) or {}).get("metrics", {}).get(metric)
        if value is not None:
            out.setdefault((r.fraction, (cell.fold, r.seed) + pseed), value)
    return out


def _stages(cell, out: Path, summaries, valid) -> dict:
    """The finished stages of ``cell`` whose spec ``valid(cell, stage, spec)`` accepts (today's): from
    ``<out>/cells/<cell>/stages.json``, else from its committed summaries (only these when ``out`` is None)."""
    stored = (read_json(Path(out) / "cells" / cell.name / "stages.json") or {}) if out is not None else {}
    stages = {}
    for stage in ["probe"] + [r.key for r in cell.finetunes]:
        for found in (stored.get(stage), summaries.read(cell.name, stage) if summaries is not None else None):
            if isinstance(found, dict) and "metrics" in found and (valid is None or valid(cell, stage, found.get("spec"))):
                stages[stage] = found
                break
    return stages


def _summary(diffs: list[float]) -> tuple[float, float, float]:
    n = len(diffs)
    mean = sum(diffs) / n
    if n < 2:
        return mean, math.nan, math.nan
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) / math.sqrt(n)
    return mean, se, t95(n - 1) * se


def paired_differences(cells: list, settings: PairedSettings, out: Path | None, summaries=None, valid=None) -> list[dict]:
    """One dict per (row, fraction, metric) with pairs: ``row``, ``baseline``, ``fraction``, ``metric``,
    ``n``, ``row_mean``, ``baseline_mean``, ``diff`` (row - baseline), ``se``, ``half`` (95 % t half-width;
    NaN with one pair), ``folds`` (``{fold: mean difference}`` with folds). Stage records are read from the
    cells' ``stages.json`` under ``out`` (None: none), else from ``summaries``, when ``valid(cell, stage, spec)`` (None:
    any) accepts their spec."""
    stages = {c.name: _stages(c, out, summaries, valid) for c in cells}
    rows: dict[str, list] = {}
    for c in cells:
        rows.setdefault(row_name(c), []).append(c)
    base_cells = rows.get(settings.baseline, [])
    results = []
    for row, members in rows.items():
        if row == settings.baseline:
            continue
        both = all(c.pretrain is not None for c in members + base_cells)
        for metric in settings.metrics:
            base, mine = {}, {}
            for c in sorted(base_cells, key=lambda c: c.seed):
                for k, v in _units(c, stages[c.name], metric, both).items():
                    base.setdefault(k, v)
            for c in sorted(members, key=lambda c: c.seed):
                for k, v in _units(c, stages[c.name], metric, both).items():
                    mine.setdefault(k, v)
            for fraction in sorted({f for f, _ in mine}, key=lambda f: (f is None, f or 0)):
                keys = sorted((k for f, k in mine if f == fraction and (f, k) in base), key=str)
                if not keys:
                    continue
                diffs = [mine[(fraction, k)] - base[(fraction, k)] for k in keys]
                mean, se, half = _summary(diffs)
                folds: dict = {}
                for k, d in zip(keys, diffs):
                    folds.setdefault(k[0], []).append(d)
                results.append({
                    "row": row, "baseline": settings.baseline, "fraction": fraction, "metric": metric,
                    "n": len(keys), "row_mean": sum(mine[(fraction, k)] for k in keys) / len(keys),
                    "baseline_mean": sum(base[(fraction, k)] for k in keys) / len(keys),
                    "diff": mean, "se": se, "half": half,
                    "folds": {f: sum(v) / len(v) for f, v in folds.items()} if any(f is not None for f in folds) else {},
                })
    return results


def _pts(v: float) -> str:
    return "—" if math.isnan(v) else f"{100 * v:.2f}"


def format_paired(results: list[dict]) -> str:
    """Markdown table of :func:`paired_differences` (points, i.e. accuracy x 100)."""
    lines = ["| row | baseline | metric | n pairs | row | baseline | row - baseline (95 % CI) | SE | per fold |",
             "| --- | --- | --- | ---: | ---: | ---: | --- | ---: | --- |"]
    for r in results:
        at = "" if r["fraction"] is None else f"@{r['fraction']:g}"
        ci = f"{100 * r['diff']:+.2f}" + ("" if math.isnan(r["half"]) else f" ± {100 * r['half']:.2f}")
        folds = ", ".join(f"k{f}: {100 * d:+.2f}" for f, d in r["folds"].items())
        lines.append(f"| {r['row']}{at} | {r['baseline']}{at} | {r['metric']} | {r['n']} | {_pts(r['row_mean'])} | "
                     f"{_pts(r['baseline_mean'])} | {ci} | {_pts(r['se'])} | {folds} |")
    return "\n".join(lines)


def write_paired(results: list[dict], path: Path, name: str) -> Path:
    """``paired.md``: a title, how to read it, and :func:`format_paired`'s table."""
    header = (f"# Ablation {name}: paired differences\n\nEach row minus the baseline, paired run by run (same fold, "
              "label fraction and seeds), in points; ± is the 95 % Student t interval of the mean difference.\n\n")
    text = header + (format_paired(results) if results else "No pairs yet (no run of a row and its baseline).")
    atomic_write(path, lambda tmp: tmp.write_text(text + "\n"))
    return path

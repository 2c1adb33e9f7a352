"""Figures of an ablation: accuracy vs #pairs (paper Fig. 8), accuracy per objective, PART pretext errors
(Tab. 5 style). Written with matplotlib's Agg backend; panels only for metrics that have values."""

from __future__ import annotations

from pathlib import Path

from ..targets import max_pairs
from .plan import Cell
from .report import ACCURACIES, LABELS
from .settings import PART_OBJECTIVES


def pairs_value(num_pairs, num_patches: int | None, self_pairs: bool = False) -> float | None:
    """#pairs as a number: ``"all"`` is ``N (N - 1)`` (``N^2`` with self-pairs) for the ``num_patches`` N of
    the cell's sampler."""
    if isinstance(num_pairs, (int, float)) and not isinstance(num_pairs, bool):
        return float(num_pairs)
    if num_pairs == "all" and num_patches is not None:
        return float(max_pairs(num_patches, self_pairs))
    return None


def group_label(g: dict) -> str:
    """``part / cross_attention / #128``: a row of the table as an axis label."""
    parts = [g["objective"]]
    if g["head"]:
        parts.append(g["head"])
    if g["num_pairs"] is not None:
        parts.append(f"#{g['num_pairs']}")
    return " / ".join(parts)


def make_plots(rows: list[dict], groups: list[dict], cells: list[Cell], folder: Path, title: str) -> list[Path]:
    """``accuracy_vs_pairs.png`` (Fig. 8 style: one line per PART objective/head, error bars = std over
    seeds, other objectives as dashed horizontal lines), ``accuracy_by_objective.png`` (a bar per
    (objective, head, #pairs), one panel per accuracy) and ``pretext_errors.png`` (PART rows, Tab. 5 style).
    Panels only for metrics that have values; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    accs = [m for m in ACCURACIES if any(g[f"{m}_mean"] is not None for g in groups)]
    part_groups = [g for g in groups if g["method"] in PART_OBJECTIVES and g["num_pairs"] is not None]
    patches_of = {c.key(): (c.num_patches, bool(c.pretrain is not None and c.pretrain.objective.self_pairs))
                  for c in cells}
    written = []
    if accs and part_groups:
        written.append(_accuracy_vs_pairs(plt, colors, accs, groups, part_groups, patches_of, folder, title))
    if accs:
        written.append(_accuracy_by_objective(plt, colors, accs, groups, folder, title))
    errs = [e for e in ("err_x", "err_y", "err_euclid") if any(g[f"{e}_mean"] is not None for g in part_groups)]
    if errs:
        written.append(_pretext_errors(plt, colors, errs, part_groups, folder, title))
    return written


def _accuracy_vs_pairs(plt, colors, accs, groups, part_groups, patches_of, folder: Path, title: str) -> Path:
    fig, axes = plt.subplots(1, len(accs), figsize=(5.2 * len(accs), 4.0), squeeze=False, constrained_layout=True)
    for ax, m in zip(axes[0], accs):
        lines: dict = {}
        for g in part_groups:
            if g[f"{m}_mean"] is None:
                continue
            x = pairs_value(g["num_pairs"], *patches_of.get((g["objective"], g["head"], g["num_pairs"]), (None, False)))
            if x is not None:
                lines.setdefault((g["objective"], g["head"]), []).append((x, g[f"{m}_mean"], g[f"{m}_std"] or 0.0, g["num_pairs"]))
        ticks = {}
        for j, ((label, head), pts) in enumerate(lines.items()):
            pts.sort()
            ax.errorbar([p[0] for p in pts], [100 * p[1] for p in pts], yerr=[100 * p[2] for p in pts],
                        marker="o", capsize=3, color=colors[j % len(colors)], label=f"{label} / {head}")
            ticks.update({p[0]: (str(p[3]) if p[3] != "all" else f"all\n({int(p[0])})") for p in pts})
        k = len(lines)
        for g in groups:
            if g["method"] in PART_OBJECTIVES or g[f"{m}_mean"] is None:
                continue
            ax.axhline(100 * g[f"{m}_mean"], ls="--", lw=1, color=colors[k % len(colors)], label=g["objective"])
            k += 1
        ax.set_xscale("log", base=2)
        if ticks:
            ax.set_xticks(sorted(ticks), [ticks[t] for t in sorted(ticks)])
            ax.minorticks_off()
        ax.set(xlabel="#pairs per image", ylabel=LABELS[m], title=LABELS[m].replace(" (%)", ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{title}: accuracy vs #pairs (mean ± std over seeds)")
    return _save(plt, fig, folder / "accuracy_vs_pairs.png")


def _accuracy_by_objective(plt, colors, accs, groups, folder: Path, title: str) -> Path:
    names = [group_label(g) for g in groups]
    order = list(dict.fromkeys(g["objective"] for g in groups))
    col = [colors[order.index(g["objective"]) % len(colors)] for g in groups]
    width = max(5.0, 0.5 * len(groups) + 1.5)  # one panel per accuracy, stacked
    fig, axes = plt.subplots(len(accs), 1, figsize=(width, 1.2 + 3.6 * len(accs)), squeeze=False,
                             constrained_layout=True)
    for ax, m in zip(axes[:, 0], accs):
        means = [100 * (g[f"{m}_mean"] or 0.0) for g in groups]
        stds = [100 * (g[f"{m}_std"] or 0.0) for g in groups]
        bars = ax.bar(range(len(groups)), means, yerr=stds, capsize=3, color=col)
        have = [(mm, sd) for mm, sd, g in zip(means, stds, groups) if g[f"{m}_mean"] is not None]
        if have:  # zoom on the values (differences are often a few points), error bars included
            lo, hi = min(mm - sd for mm, sd in have), max(mm + sd for mm, sd in have)
            pad = max(0.12 * (hi - lo), 1.0)
            ax.set_ylim(max(0.0, lo - pad), min(100.0, hi + pad))
        for b, g, mm in zip(bars, groups, means):
            ax.annotate("n/a" if g[f"{m}_mean"] is None else f"{mm:.1f}", (b.get_x() + b.get_width() / 2,
                        ax.get_ylim()[0]), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=7)
        ax.set_xticks(range(len(groups)), names, rotation=60, ha="right", fontsize=7)
        ax.set(ylabel=LABELS[m], title=LABELS[m].replace(" (%)", "") + " by objective")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{title}: accuracy per objective (mean ± std over seeds)")
    return _save(plt, fig, folder / "accuracy_by_objective.png")


def _pretext_errors(plt, colors, errs, part_groups, folder: Path, title: str) -> Path:
    pg = [g for g in part_groups if any(g[f"{e}_mean"] is not None for e in errs)]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * len(pg) * len(errs) + 2), 4.0), constrained_layout=True)
    width = 0.8 / len(errs)
    for j, e in enumerate(errs):
        ax.bar([i + (j - (len(errs) - 1) / 2) * width for i in range(len(pg))],
               [g[f"{e}_mean"] or 0.0 for g in pg], width, yerr=[g[f"{e}_std"] or 0.0 for g in pg], capsize=2,
               label=e, color=colors[j % len(colors)])
    ax.set_xticks(range(len(pg)), [group_label(g) for g in pg], rotation=60, ha="right", fontsize=7)
    ax.set(ylabel="error on the held-out split", title=f"{title}: PART pretext errors (mean ± std over seeds)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return _save(plt, fig, folder / "pretext_errors.png")


def _save(plt, fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["make_plots", "pairs_value", "group_label"]

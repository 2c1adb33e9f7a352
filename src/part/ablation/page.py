"""The results page: ``docs/results.md`` written from the committed stage summaries alone (issue 24).

Every number on the page comes from ``<summaries>/<cell>/<stage>.json`` (:mod:`part.ablation.summaries`), so
the page can be rewritten on any machine (``part ablate --config ... --report-only``) and always says which
stages are still missing. Tables give mean ± 95 % confidence interval (Student t over the runs: pretraining
seeds for the probes, (pretraining seed, fine-tune seed) runs for fine-tunes). Claims compare two rows with
Welch's t interval of the difference of means: *reproduced* when the whole interval is on the claimed side
(above ``-margin`` for "within margin" claims), *contradicted* when the whole interval is on the other side,
*inconclusive* otherwise; *not run yet* while a side has no run, *too few runs* while a side has one.

Which split: ``finetune_top1``, ``probe_top1``, ``knn_top1`` are from the **test** split, read once per final
setting; ``val_*`` numbers are from the validation carve of the train split, on which every choice is made.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..io import atomic_write
from .summaries import Summaries

__all__ = ["t95", "mean_ci", "welch_ci", "judge", "write_page", "row_of"]

_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000}


def t95(df: float) -> float:
    """Two-sided 95 % Student t quantile for ``df`` degrees of freedom (table, the next lower df between
    entries: conservative; 1.96 beyond 60)."""
    if df < 1:
        return math.inf
    keys = [k for k in sorted(_T95) if k <= df]
    return _T95[keys[-1]] if df <= 60 else 1.96


def mean_ci(xs: list[float]) -> tuple[float | None, float | None, int]:
    """``(mean, half-width of the 95 % CI, n)``; the half-width is None for fewer than 2 values."""
    xs = [float(x) for x in xs if x is not None]
    n = len(xs)
    if not n:
        return None, None, 0
    m = sum(xs) / n
    if n < 2:
        return m, None, n
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    return m, t95(n - 1) * sd / math.sqrt(n), n


def welch_ci(a: list[float], b: list[float]) -> tuple[float | None, float | None]:
    """``(mean(a) - mean(b), half-width of its 95 % Welch interval)``; half-width None with < 2 per side."""
    if not a or not b:
        return None, None
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    if len(a) < 2 or len(b) < 2:
        return ma - mb, None
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1) / len(a)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return ma - mb, 0.0
    df = (va + vb) ** 2 / ((va ** 2 / (len(a) - 1) if va else 0) + (vb ** 2 / (len(b) - 1) if vb else 0))
    return ma - mb, t95(df) * se


def judge(diff: float | None, half: float | None, margin: float = 0.0) -> str:
    """``reproduced`` / ``contradicted`` / ``inconclusive`` for the claim "better - worse > -margin" (points
    and fractions alike: pass both in the same unit)."""
    if diff is None or half is None:
        return "inconclusive"
    if diff - half > -margin:
        return "reproduced"
    if diff + half < -margin:
        return "contradicted"
    return "inconclusive"


def row_of(summary: dict) -> str:
    """The page row of a summary: the cell's name without its seed, ``@fraction`` for fine-tunes."""
    row = summary.get("row") or summary["cell"].rsplit("-s", 1)[0]
    if summary["stage"].startswith("finetune") and summary.get("fraction") is not None:
        row += f"@{summary['fraction']:g}"
    return row


def _pct(m, h) -> str:
    if m is None:
        return "—"
    return f"{100 * m:.2f}" + (f" ± {100 * h:.2f}" if h is not None else "")


def _values(summaries: list[dict], metric: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for s in summaries:
        v = s["metrics"].get(metric)
        if v is not None:
            out.setdefault(row_of(s), []).append(float(v))
    return out


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _finetune_table(ft: list[dict], metric: str) -> str:
    vals = _values(ft, metric)
    rows: dict[str, dict] = {}
    fractions = sorted({s.get("fraction") or 1.0 for s in ft})
    for s in ft:
        base = s.get("row") or s["cell"].rsplit("-s", 1)[0]
        rows.setdefault(base, {})
    body = []
    for base in rows:
        cells = []
        for f in fractions:
            key = f"{base}@{f:g}" if any(row_of(s) == f"{base}@{f:g}" for s in ft) else base
            m, h, n = mean_ci(vals.get(key, []))
            cells.append(f"{_pct(m, h)} ({_runs(ft, key, n)})" if n else "—")
        body.append([base] + cells)
    return _table(["method"] + [f"{100 * f:g} % labels" for f in fractions], body)


def _claims(acfg, by_stage: dict[str, list[dict]]) -> str:
    rows = []
    for c in acfg.claims:
        metric = c["metric"]
        pool = by_stage["finetune"] if metric == "finetune_top1" else by_stage["probe"]
        vals = _values(pool, metric)
        names = [w.strip() for w in c["worse"].split("|")]  # "a|b|c": the best of them
        present = [w for w in names if vals.get(w)]
        best = max(present, key=lambda w: sum(vals[w]) / len(vals[w])) if present else names[0]
        a, b = vals.get(c["better"], []), vals.get(best, [])
        diff, half = welch_ci(a, b)
        verdict = ("not run yet" if not a or not b else "too few runs for an interval (n < 2)" if half is None
                   else judge(diff, half, c["margin"] / 100.0))
        shown = "—" if diff is None else f"{100 * diff:+.2f}" + (f" ± {100 * half:.2f}" if half is not None else "")
        rows.append([c["name"], f"{c['better']} ({_runs(pool, c['better'], len(a))})",
                     f"{best} ({_runs(pool, best, len(b))})", metric, shown, f"{c['margin']:g}", verdict])
    return _table(["claim", "better", "worse", "metric (test)", "difference, points (95 % CI)", "margin",
                   "verdict"], rows) + (
        "\n\nn counts runs. For a pretrained row it also says from how many pretrainings (pretraining seeds) its "
        "runs come: runs of one pretraining measure the spread of the fine-tune seeds, not of the pretraining.")


def _runs(pool: list[dict], row: str, n: int) -> str:
    """``n=3`` (a row without pretraining) or ``n=3 from 1 pretraining``: how many runs, and of how many
    pretraining seeds."""
    seeds = {s["seeds"].get("pretrain") for s in pool if row_of(s) == row} - {None}
    return f"n={n}" + (f" from {len(seeds)} pretraining{'s' if len(seeds) != 1 else ''}" if seeds else "")


def _pairs_key(num_pairs) -> float:
    """Sort key of a ``num_pairs`` value: a count, ``"all"`` last."""
    return math.inf if num_pairs == "all" else float(num_pairs)


def _pairs_sweeps(by_stage: dict[str, list[dict]]) -> dict[tuple, dict]:
    """The #pairs sweeps among the summaries (paper Fig. 8): ``{(label, head): {num_pairs: [summaries of its
    probe and fine-tune stages]}}`` for every (label, head) pretrained with two or more ``num_pairs`` values,
    ``num_pairs`` in sweep order ("all" last)."""
    groups: dict[tuple, dict] = {}
    for s in by_stage["probe"] + by_stage["finetune"]:
        if s.get("num_pairs") is not None:
            key = (s.get("label") or s["method"], s.get("head"))
            groups.setdefault(key, {}).setdefault(s["num_pairs"], []).append(s)
    return {k: dict(sorted(v.items(), key=lambda kv: _pairs_key(kv[0]))) for k, v in groups.items() if len(v) > 1}


def _sweep_values(ss: list[dict], metric: str, fraction: float | None) -> list[float]:
    """``metric`` of the summaries ``ss`` of one #pairs value: of the probe (``fraction`` None), else of the
    fine-tunes at ``fraction``."""
    return [s["metrics"][metric] for s in ss if s["metrics"].get(metric) is not None
            and (s["stage"] == "probe" if fraction is None
                 else s["stage"].startswith("finetune") and (s.get("fraction") or 1.0) == fraction)]


def _sweep_fractions(by_pairs: dict) -> list[float]:
    """The fine-tune label fractions of a #pairs sweep."""
    return sorted({s.get("fraction") or 1.0 for ss in by_pairs.values() for s in ss
                   if s["stage"].startswith("finetune")})


_PAIRS_COLUMNS = ((None, "probe_top1", "probe test"), (None, "val_probe_top1", "probe val"),
                  (None, "knn_top1", "kNN test"))


def _pairs_section(sweeps: dict[tuple, dict]) -> list[str]:
    """One table per #pairs sweep: probe, kNN and every fine-tune fraction (test, then val) by ``num_pairs``."""
    out = []
    for (label, head), by_pairs in sweeps.items():
        columns = list(_PAIRS_COLUMNS) + [(f, m, f"{100 * f:g} % fine-tune {split}") for f in _sweep_fractions(by_pairs)
                                          for m, split in (("finetune_top1", "test"), ("val_top1", "val"))]
        body = []
        for num_pairs, ss in by_pairs.items():
            row = [str(num_pairs)]
            for fraction, metric, _ in columns:
                m, h, n = mean_ci(_sweep_values(ss, metric, fraction))
                row.append(f"{_pct(m, h)} (n={n})" if n else "—")
            body.append(row)
        out += ["", f"{label}, head {head}:", "", _table(["#pairs"] + [c[2] for c in columns], body)]
    return out


def _finish_axes(ax, xlabel: str, ylabel: str, legend_size: int) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plots(by_stage: dict[str, list[dict]], sweeps: dict[tuple, dict], folder: Path) -> list[Path]:
    """The page's figures (``sweeps``: :func:`_pairs_sweeps` of ``by_stage``, as the page's table has them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    curves = [s for s in by_stage["probe_curve"] if s.get("curve")]
    if curves:
        fig, ax = plt.subplots(figsize=(6, 4))
        for s in curves:
            key = "val_probe_top1" if "val_probe_top1" in s["curve"][0] else "probe_top1"
            ax.plot([c["epoch"] for c in s["curve"]], [100 * c[key] for c in s["curve"]], marker="o",
                    label=s["cell"])
        _finish_axes(ax, "pretraining epoch", "linear probe top-1 (%), validation carve", 6)
        written.append(_save(fig, folder / "probe_vs_epoch.png"))
    ft = [s for s in by_stage["finetune"] if s.get("curve")]
    fractions = sorted({s.get("fraction") or 1.0 for s in ft})
    if ft:
        fig, axes = plt.subplots(1, len(fractions), figsize=(4.5 * len(fractions), 3.8), squeeze=False)
        for ax, f in zip(axes[0], fractions):
            for s in ft:
                if (s.get("fraction") or 1.0) == f:
                    ax.plot([c["epoch"] for c in s["curve"]], [100 * c["val_top1"] for c in s["curve"]],
                            lw=1, label=f"{s['cell']} s{s['seeds'].get('finetune')}")
            ax.set_title(f"{100 * f:g} % of the labels")
            _finish_axes(ax, "fine-tune epoch", "validation top-1 (%)", 5)
        written.append(_save(fig, folder / "finetune_val_curves.png"))
    for (label, head), by_pairs in sweeps.items():
        fig, ax = plt.subplots(figsize=(5, 3.8))
        xs = range(len(by_pairs))
        series = [(None, "val_probe_top1", "linear probe")] + [
            (f, "val_top1", f"{100 * f:g} % fine-tune") for f in _sweep_fractions(by_pairs)]
        for fraction, metric, name in series:
            ms = [mean_ci(_sweep_values(ss, metric, fraction)) for ss in by_pairs.values()]
            if sum(m is not None for m, _, _ in ms) < 2:
                continue  # one #pairs value has this series: no curve to draw (the table shows it)
            ax.errorbar(list(xs), [100 * m if m is not None else math.nan for m, _, _ in ms],
                        yerr=[100 * h if h is not None else 0 for _, h, _ in ms], marker="o", capsize=3, label=name)
        ax.set_xticks(list(xs), [str(k) for k in by_pairs])
        _finish_axes(ax, "#pairs per image", "validation top-1 (%)", 7)
        ax.set_title(f"{label}, head {head}")
        written.append(_save(fig, folder / f"num_pairs_{label}_{head}.png"))
    return written


def write_page(acfg, planned: list[tuple[str, str]], summaries: Summaries, path: Path,
               paired: str | None = None) -> Path:
    """Write the results page of ``acfg`` to ``path`` (figures beside it under ``images/results/<name>/``)
    from ``summaries``; ``planned`` (cell, stage) pairs tell which stages are still missing. ``paired``: the
    table of the paired differences of ``acfg.paired`` (:func:`part.ablation.paired.format_paired` of
    :func:`~part.ablation.paired.paired_differences` on the same summaries; "" while no run has a partner), a
    section of its own; None: the config has no ``paired:``."""
    found = summaries.all()
    by_stage: dict[str, list[dict]] = {"pretrain": [], "probe": [], "probe_curve": [], "finetune": [],
                                       "pretext": []}
    for s in found:
        by_stage["finetune" if s["stage"].startswith("finetune") else s["stage"]].append(s)
    have = {(s["cell"], s["stage"]) for s in found}
    missing = [p for p in planned if p not in have]

    cmd = f"part ablate --config configs/{acfg.name}.yaml"
    out = [f"# Results: {acfg.name}", "",
           f"Every table below was made by `{cmd}` (resumable; rerunning skips every stage whose summary is "
           f"committed) and written from the stage summaries in `{acfg.summaries}` by `{cmd} --report-only`; "
           "do not edit by hand.", "",
           "Splits: **fine-tune, linear-probe and kNN numbers in the tables are from the test split**, read once "
           "per final setting; `val` numbers are from the validation carve of the train split, on which every "
           "choice was made. Mean ± 95 % confidence interval (Student t) over runs; n = runs.", ""]
    out += [f"Stages finished: {len(have & set(planned))} of {len(planned)} planned."]
    if missing:
        out += ["", "**The protocol is not finished**; missing stages (the command continues them):", ""]
        out += [", ".join(f"`{c}/{st}`" for c, st in missing[:60]) + (" ..." if len(missing) > 60 else "")]
    if acfg.claims:
        out += ["", "## The paper's claims", "", _claims(acfg, by_stage)]
    if paired is not None:
        out += ["", f"## Paired differences against {acfg.paired.baseline} (points; descriptive, not claims)", "",
                "Every row minus the baseline, run by run: two runs pair when they share the label fraction, the "
                "fine-tune seed (so the same labelled subset) and, when both rows are pretrained, the pretraining "
                "seed; mean difference with its 95 % Student t interval over the pairs. Only runs with a partner "
                "count, so n can be below the tables' n. `val_*` metrics are from the validation carve, the others "
                "from the test split.", ""]
        out += [paired or "No pairs yet."]
    if by_stage["finetune"]:
        out += ["", "## Fine-tuning, test top-1 (%)", "", _finetune_table(by_stage["finetune"], "finetune_top1"),
                "", "## Fine-tuning, validation top-1 (%) (choices were made on these)", "",
                _finetune_table(by_stage["finetune"], "val_top1")]
    if by_stage["probe"]:
        rows = []
        for metric_rows in [_values(by_stage["probe"], m) for m in
                            ("probe_top1", "knn_top1", "val_probe_top1", "val_knn_top1")]:
            rows.append(metric_rows)
        names = list(dict.fromkeys(row_of(s) for s in by_stage["probe"]))
        body = [[n] + [(lambda m, h, k: f"{_pct(m, h)} (n={k})" if k else "—")(*mean_ci(r.get(n, [])))
                       for r in rows] for n in names]
        out += ["", "## Frozen features (linear probe, kNN)", "",
                _table(["method", "probe test", "kNN test", "probe val", "kNN val"], body)]
    sweeps = _pairs_sweeps(by_stage)
    if sweeps:
        out += ["", "## Number of pairs (paper Fig. 8)", "",
                "Rows pretrained with several `num_pairs` values (pairs per image in each step), the same budget "
                "otherwise; mean ± 95 % CI over runs (n), test split unless marked val. The figure below shows "
                "the validation numbers."]
        out += _pairs_section(sweeps)
    if by_stage["probe_curve"]:
        out += ["", "## Linear probe vs pretraining epoch (validation carve)", ""]
        body = []
        for s in by_stage["probe_curve"]:
            key = "val_probe_top1" if s["curve"] and "val_probe_top1" in s["curve"][0] else "probe_top1"
            body.append([s["cell"], ", ".join(f"{c['epoch']:g}: {100 * c[key]:.2f}" for c in s["curve"])])
        out += [_table(["pretraining", "epoch: probe top-1 (%)"], body)]
    img = path.parent / "images" / "results" / acfg.name
    for p in _plots(by_stage, sweeps, img):
        out += ["", f"![{p.stem}]({p.relative_to(path.parent).as_posix()})"]
    out += ["", "## Stages: wall time, code, machine", ""]
    body = [[s["cell"], s["stage"], f"{s['seconds'] / 60:.1f}", str(s.get("commit")),
             f"{s['machine'].get('cores')} × {s['machine'].get('cpu')}", str(s["machine"].get("load_avg")),
             s.get("finished", "")] for s in found]
    total = sum(s["seconds"] for s in found) / 3600
    out += [_table(["cell", "stage", "minutes", "commit", "machine", "load 1/5/15", "finished (UTC)"], body), "",
            f"Total: {total:.2f} hours of stage time."]
    text = "\n".join(out) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return path

"""Running an ablation: each cell ``pretrain -> pretext errors -> probe -> fine-tune`` through the Python API
(:func:`part.pretrain`, :func:`part.evaluation.evaluate`, :func:`part.evaluation.probe`,
:func:`part.evaluation.finetune`), resumable, then the reports and plots.

Resuming: every finished stage is recorded in ``<cell>/stages.json`` with its *spec* (:mod:`part.ablation.specs`:
its settings in a JSON-normal form, without those that change how a run executes, not what it computes); a finished
cell's ``result.json`` holds the specs of all its stages and its row. A stage whose stored spec equals today's
is not redone; a cell whose every spec is equal is skipped without loading a model. Specs written by an older
version are read in today's normal form (fields added since then take their defaults).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import yaml

from ..api import pretrain
from ..config import save_config
from ..engine import RunLock, TrainingDiverged, TrainingStopped, list_checkpoints
from ..engine.folders import check_folder, write_marker
from ..engine.info import last_record
from ..engine.runs import run_folder_config
from ..evaluation import evaluate, finetune
from ..evaluation.metrics import save_results_json
from ..io import atomic_write, read_json
from .folds import write_pretrain_data
from .paired import check_baseline, format_paired, paired_differences, write_paired
from .plan import Cell, plan_cells
from .page import write_page
from .stages import loss_curve, probe_curve, probe_stage, val_curve
from .specs import (canonical, cell_spec, filled_by_engine, first_difference, normal_form, planned_stages,
                    run_spec, same)
from .summaries import Summaries
from .plots import make_plots
from .report import aggregate, cell_row, format_markdown, write_csv, write_table
from .settings import AblationConfig, load_ablation_config


@dataclass
class AblationResult:
    """``out``: the ablation folder; ``rows``: one dict per cell (the CSV); ``groups``: the aggregated
    rows (mean/std per (objective, head, #pairs)); ``table``: Markdown; ``ran``/``skipped``: cell names
    run (entirely or partly) / skipped as finished in this call; ``plots``: PNG paths."""

    out: Path
    rows: list
    groups: list
    table: str
    csv_path: Path | None = None
    table_path: Path | None = None
    plots: list = field(default_factory=list)
    ran: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    cells: list = field(default_factory=list)
    page: Path | None = None
    paired: list = field(default_factory=list)  # paired differences (part.ablation.paired), paired.md


def _run_dir_state(run: Path, spec: dict, what: str, cell: str) -> tuple[bool, bool]:
    """``(resume, overwrite)`` for the engine on an existing run folder; a folder trained with other
    settings raises ``ValueError``."""
    cfg_path = run / "config.yaml"
    if not cfg_path.is_file():
        return False, run.exists() and any(run.iterdir())
    old = filled_by_engine(run_spec(run_folder_config(run).to_dict()), spec)
    if old != spec:
        raise ValueError(
            f"cell {cell}: {run} holds a {what} run with other settings ({first_difference(old, spec)}); "
            "use another --out, or resume=False (--no-resume) to rerun every cell")
    return (True, False) if list_checkpoints(run / "checkpoints") else (False, True)


# --------------------------------------------------------------------------------------------------
# one cell
# --------------------------------------------------------------------------------------------------
def run_cell(cell: Cell, cdir: Path, acfg: AblationConfig, spec: dict, progress: bool,
             log: Callable[[str], None], summaries: Summaries | None = None) -> dict:
    """Run the missing stages of one cell; returns ``stages`` (per stage: spec, metrics, seconds; ``error``
    when a training run diverged). A stage is finished when ``stages.json`` or its committed summary
    (:mod:`part.ablation.summaries`) holds today's spec; each stage finished here writes both."""
    summaries = summaries or Summaries(None)
    cdir.mkdir(parents=True, exist_ok=True)
    stages_path = cdir / "stages.json"
    stages = read_json(stages_path)

    def done(stage: str) -> bool:
        if stage in stages and same(stage, stages[stage].get("spec"), spec[stage]):
            return True
        summ = summaries.read(cell.name, stage)
        if summ is not None and same(stage, summ.get("spec"), spec[stage]):
            stages[stage] = {"spec": spec[stage], "metrics": summ["metrics"], "seconds": summ["seconds"],
                             "curve": summ.get("curve") or []}
            return True
        return False

    fractions = {r.key: r.fraction for r in cell.finetunes}

    def record(stage: str, metrics: dict, seconds: float, seed: int, curve: list | None = None,
               weights: dict | None = None) -> None:
        stages[stage] = {"spec": spec[stage], "metrics": metrics, "seconds": seconds, "curve": curve or []}
        save_results_json(stages_path, stages)
        meta = {"row": cell.name.rsplit("-s", 1)[0], "label": cell.label, "method": cell.method, "head": cell.head,
                "num_pairs": cell.num_pairs, "fraction": fractions.get(stage)}
        summaries.write(cell.name, stage, spec[stage], metrics, seconds,
                        {"pretrain": cell.seed if cell.pretrain is not None else None, **(
                            {"finetune": seed} if stage.startswith("finetune") else {})}, curve, meta, weights)

    run = cdir / "pretrain"
    if spec["pretrain"] is not None:
        error = _pretrain_stage(cell, run, spec, stages, done, record, summaries, progress, log)
        if error is not None:
            return {"error": error, **stages}

    if spec["pretext"] is not None and not done("pretext"):
        # every objective through part.evaluation: PART's translation errors, the others' loss and metrics
        p = acfg.pretext
        t0 = time.perf_counter()
        res = evaluate(run, split=p.split, out=cdir / "pretext.json", batch_size=p.batch_size,
                       max_samples=p.max_samples, seed=cell.seed, verbose=False)
        metrics = {k: v for k, v in res.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        record("pretext", metrics, time.perf_counter() - t0, cell.seed)
        log("  pretext: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "num_samples"))

    if spec["probe"] is not None and not done("probe"):
        t0 = time.perf_counter()
        metrics = probe_stage(run, cdir, acfg, cell.seed, cell.probe_data)
        record("probe", metrics, time.perf_counter() - t0, cell.seed)
        log(f"  probe: linear top1 {metrics['probe_top1']:.4f}, kNN top1 {metrics['knn_top1']:.4f}"
            + (f" (val: {metrics['val_probe_top1']:.4f}, {metrics['val_knn_top1']:.4f})"
               if "val_probe_top1" in metrics else ""))

    if spec["probe_curve"] is not None and not done("probe_curve"):
        t0 = time.perf_counter()
        curve = probe_curve(run, cdir, acfg, cell.seed, cell.probe_data)
        last = curve[-1] if curve else {}
        record("probe_curve", {k: v for k, v in last.items() if k != "epoch"}, time.perf_counter() - t0,
               cell.seed, curve)
        log("  probe vs epoch (val): " + ", ".join(f"{c['epoch']:g}: {c['val_probe_top1']:.4f}" for c in curve))

    for r in cell.finetunes:
        if done(r.key):
            continue
        error = _finetune_stage(cell, r, cdir, acfg, spec, stages, run, progress, log, record)
        if error is not None:
            return {"error": error, **stages}
    return stages


def _pretrain_stage(cell: Cell, run: Path, spec: dict, stages: dict, done: Callable[[str], bool], record,
                    summaries: Summaries, progress: bool, log) -> str | None:
    """Make sure ``run`` holds the cell's pretrained weights when a later stage still needs them: kept from an
    earlier call, restored from the committed summaries (:func:`_restore_pretrain`), or pretrained (again, with
    the same settings and seed). Returns an error line when the pretraining diverged."""
    later = [s for s in spec if s != "pretrain" and spec[s] is not None]
    if "pretrain" in stages and not done("pretrain"):
        diff = first_difference(canonical("pretrain", stages["pretrain"]["spec"]), spec["pretrain"])
        raise ValueError(f"cell {cell.name}: pretrained with other settings ({diff}); use another --out, "
                         "or resume=False (--no-resume) to rerun every cell")
    pending = [s for s in later if not done(s)]
    if done("pretrain") and (not pending or (run / "weights.safetensors").is_file()):
        return None
    if done("pretrain") and _restore_pretrain(cell, run, pending, summaries, log):
        return None
    resume, overwrite = _run_dir_state(run, spec["pretrain"], "pretraining", cell.name)
    for s in later:  # they read the weights being (re)made
        if s in stages and s not in pending:
            continue  # finished with a committed summary: kept (same settings, same seed)
        stages.pop(s, None)
    for r in cell.finetunes:
        if r.key in pending:
            shutil.rmtree(run.parent / r.key, ignore_errors=True)
    log(f"  pretrain {cell.method}" + (" (resuming)" if resume else ""))
    t0 = time.perf_counter()
    try:
        pretrain(cell.pretrain, out=run, resume=resume, overwrite=overwrite, progress=progress)
    except TrainingDiverged as exc:
        return f"diverged: {exc}"
    last = last_record(run / "metrics.jsonl")
    metrics = {k: v for k, v in last.items() if k not in ("epoch", "lr", "img_per_s", "data_wait")}
    record("pretrain", metrics, time.perf_counter() - t0, cell.seed, loss_curve(run / "metrics.jsonl"),
           summaries.keep_weights(cell.name, run / "weights.safetensors"))
    return None


def _restore_pretrain(cell: Cell, run: Path, pending: list[str], summaries: Summaries, log) -> bool:
    """A finished pretraining whose run folder is not on this machine: when every ``pending`` stage reads only
    its final weights (not the probe curve, which reads its checkpoints), make ``run`` from the weights kept
    with the committed summaries (:meth:`Summaries.verified_weights`: SHA-256 checked) and the cell's config.
    Returns whether it did; a folder already there (a pretraining again, half done) is left to resume."""
    if "probe_curve" in pending or check_folder(run, "run") != "new":
        return False
    weights, why = summaries.verified_weights(cell.name)
    if weights is None:
        log(f"  no kept weights to continue from ({why}): pretraining again")
        return False
    run.mkdir(parents=True, exist_ok=True)
    write_marker(run, "run")
    atomic_write(run / "config.yaml", lambda tmp: save_config(cell.pretrain, tmp))
    atomic_write(run / "weights.safetensors", lambda tmp: shutil.copyfile(weights, tmp))
    log(f"  pretrain: weights restored from {weights} (SHA-256 checked)")
    return True


def _training_spec(spec: dict) -> dict:
    """A fine-tune stage's spec without ``test`` (whether the test split is read after training): what its
    run folder trains."""
    return {k: v for k, v in spec.items() if k != "test"}


def _finetune_stage(cell: Cell, r, cdir: Path, acfg: AblationConfig, spec: dict, stages: dict, run: Path,
                    progress: bool, log, record) -> str | None:
    """One fine-tune run of ``cell`` into ``<cell>/<key>/``; returns an error line when it diverged."""
    ft_run = cdir / r.key
    if r.key in stages or (ft_run / "config.yaml").is_file():
        old = (canonical(r.key, stages[r.key]["spec"]) if r.key in stages
               else filled_by_engine(run_spec(run_folder_config(ft_run).to_dict()), spec[r.key]))
        new = _training_spec(spec[r.key])
        old = _training_spec(old)
        if old != new:  # a new fine-tune recipe on the same pretrained weights
            log(f"  {r.key} settings changed ({first_difference(old, new)}): fine-tuning again")
            shutil.rmtree(ft_run, ignore_errors=True)
            stages.pop(r.key, None)
    resume, overwrite = _run_dir_state(ft_run, _training_spec(spec[r.key]), "fine-tuning", cell.name)
    init = run if cell.pretrain is not None else None
    what = "" if r.fraction is None else f" at {r.fraction:g} of the labels, seed {r.seed}"
    log(f"  {r.key}: " + ("from scratch" if init is None else "from the pretrained backbone") + what
        + (" (resuming)" if resume else ""))
    t0 = time.perf_counter()
    try:
        res = finetune(r.config, init=None if resume else init, out=ft_run, resume=resume, overwrite=overwrite,
                       progress=progress, evaluate=acfg.finetune.test, eval_batch_size=acfg.finetune.eval_batch_size)
    except TrainingDiverged as exc:
        return f"{r.key} diverged: {exc}"
    metrics = {"finetune_steps": res.train.step}
    if acfg.finetune.test:
        metrics.update(finetune_top1=res.results["top1"], finetune_top5=res.results.get("top5"))
    val = res.results.get("val") or {}
    if val:
        metrics["val_top1"] = val["top1"]
    curve = val_curve(ft_run / "metrics.jsonl")
    record(r.key, metrics, time.perf_counter() - t0, r.seed, curve)
    log(f"  {r.key}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.endswith("top1")))
    return None


def _finished_row(result_path: Path, spec: dict) -> dict | None:
    """The stored row of a finished cell whose every stage spec equals ``spec``, else None."""
    if not result_path.is_file():
        return None
    old = read_json(result_path)
    stored = old.get("spec")
    if "row" in old and isinstance(stored, dict) and set(stored) == set(spec) and all(
            same(k, stored[k], spec[k]) for k in spec):
        return old["row"]
    return None


# --------------------------------------------------------------------------------------------------
# the grid
# --------------------------------------------------------------------------------------------------
def ablate(
    config: str | Path | dict | AblationConfig,
    out: str | Path | None = None,
    resume: bool = True,
    overrides: Iterable[str] = (),
    progress: bool = True,
    dry_run: bool = False,
    verbose: bool = True,
    report_only: bool = False,
    shard: tuple[int, int] | None = None,
    fractions: Iterable[float] | None = None,
) -> AblationResult:
    """Run an ablation grid: every cell pretrain -> pretext errors -> probe -> fine-tune, then the
    CSV, the mean ± std table and the plots (paper Tab. 2-7, Fig. 8).

    Args:
        config: ablation YAML path (``configs/ablate_*.yaml``), mapping or :class:`AblationConfig`.
        out: the ablation folder (default ``runs/<config name>``).
        resume: continue in ``out``: skip finished cells, resume half-finished training runs from their
            checkpoints. ``False``: delete ``<out>/cells`` and rerun every cell.
        overrides: dotted ``key=value`` strings on the ablation config (``pretrain.train.max_steps=50``,
            ``grid.seeds=[0]``, ``grid.0.num_pairs=[64]``, ``probe.max_train=2000``, ...).
        progress: progress bars of the training runs (shown when stderr is a terminal).
        dry_run: plan and validate the cells, run nothing, write nothing (``cells`` lists them).
        verbose: print one line per stage, and the table and the folder at the end.
        report_only: run nothing; write the results page (``page``) from the committed stage summaries
            (``summaries``) alone.
        shard: ``(k, n)``: run only the cells ``k, k + n, k + 2n, ...`` of the plan (0-based), so ``n``
            processes with their own ``out`` share the CPU cores; their stage summaries meet in ``summaries``.
        fractions: run only the fine-tunes at these label fractions (of ``finetune.fractions``) this time; the
            others stay missing for a later call. A priority pass (``make results`` runs the 1 % and 10 %
            fine-tunes of every cell before any 100 % one); nothing of a stage's spec changes.
    Returns:
        :class:`AblationResult`.
    """
    acfg = load_ablation_config(config, overrides)
    out = Path(out) if out is not None else Path("runs") / acfg.name
    all_cells = plan_cells(acfg, out)
    check_baseline(all_cells, acfg.paired)
    cells = select_cells(all_cells, shard, fractions)
    log = (lambda msg: print(msg, flush=True)) if verbose else (lambda msg: None)
    if dry_run:
        for c in cells:
            log(c.name)
        log(f"{len(cells)} cells")
        return AblationResult(out, [], [], "", cells=cells)
    summaries = Summaries(acfg.summaries)
    if report_only:
        if acfg.page is None or acfg.summaries is None:
            raise ValueError("report_only (--report-only) needs page: and summaries: in the ablation config")
        paired = _paired(all_cells, acfg, None, summaries)
        page = _write_page(acfg, all_cells, summaries, paired)
        log(f"results page written from {acfg.summaries}: {page}")
        return AblationResult(out, [], [], "", cells=cells, page=page, paired=paired)
    check_folder(out, "ablation")  # a folder part did not make is refused before the lock creates anything
    with RunLock(out):  # one writer per ablation folder (the cells' runs are locked by the engine too)
        write_marker(out, "ablation")
        if not resume and (out / "cells").exists():
            shutil.rmtree(out / "cells")
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "ablation.yaml",
                     lambda tmp: Path(tmp).write_text(yaml.safe_dump(normal_form(acfg.to_dict()), sort_keys=False)))
        for source in dict.fromkeys(c.pretrain_data for c in cells if c.pretrain_data is not None):
            write_pretrain_data(source)  # pretrain_on: train+test (part.ablation.folds)
        t_all = time.perf_counter()
        try:
            rows, ran, skipped = _run_cells(cells, out, acfg, progress, log, summaries)
        except TrainingStopped as exc:  # a cell's run stopped on a signal: the ablation continues, not that run
            raise exc.continued_by(f"the same part ablate command on --out {out} (finished stages are skipped, "
                                   "this run resumes from its checkpoint)") from None
        res = _write_results(rows, ran, skipped, cells, all_cells, acfg, out, summaries, log)
        if verbose:
            print(res.table)
            print(f"ablation '{acfg.name}': {len(ran)} cells run, {len(skipped)} skipped, "
                  f"{time.perf_counter() - t_all:.0f} s; results in {out}")
        return res


def _write_results(rows: list, ran: list, skipped: list, cells: list[Cell], all_cells: list[Cell],
                   acfg: AblationConfig, out: Path, summaries: Summaries, log) -> AblationResult:
    """The ablation's outputs from its rows (``ran`` / ``skipped``: the cells this call ran / found finished):
    ``results.csv``, ``table.md``, the plots, the results page (from the stage summaries of the whole plan) and
    the paired differences."""
    groups = aggregate(rows)
    table = format_markdown(groups)
    csv_path = write_csv(rows, out / "results.csv")
    table_path = write_table(table, len(rows), out / "table.md", acfg.name)
    plots = make_plots(rows, groups, cells, out / "plots", acfg.name)
    paired = _paired(all_cells, acfg, out, summaries)
    page = _write_page(acfg, all_cells, summaries, paired) if acfg.page and acfg.summaries else None
    if page is not None:
        log(f"results page: {page}")
    if acfg.paired is not None:
        write_paired(paired, out / "paired.md", acfg.name)
        log(format_paired(paired) if paired else "paired: no pairs yet")
    return AblationResult(out, rows, groups, table, csv_path, table_path, plots, ran, skipped, cells, page, paired)


def _write_page(acfg: AblationConfig, all_cells: list[Cell], summaries: Summaries, paired: list) -> Path:
    """The results page from the stage summaries of the whole plan, with the paired table when ``paired:``."""
    table = None if acfg.paired is None else format_paired(paired) if paired else ""
    return write_page(acfg, planned_stages(all_cells, acfg), summaries, Path(acfg.page), table)


def _paired(cells: list[Cell], acfg: AblationConfig, out: Path | None, summaries: Summaries) -> list:
    """``paired:``: the paired differences against the baseline row (:mod:`part.ablation.paired`), from the
    stages that hold today's spec (under ``out``, else in the committed summaries; ``out`` None: the summaries
    alone); ``[]`` without ``paired:``."""
    if acfg.paired is None:
        return []
    specs = {c.name: cell_spec(c, acfg) for c in cells}
    return paired_differences(cells, acfg.paired, out, summaries,
                              valid=lambda c, st, sp: specs[c.name].get(st) is not None and same(st, sp, specs[c.name][st]))


def select_cells(cells: list[Cell], shard: tuple[int, int] | None = None,
                 fractions: Iterable[float] | None = None) -> list[Cell]:
    """The cells one call runs: every ``n``-th from the ``k``-th for ``shard=(k, n)``, and of each only the
    fine-tunes at ``fractions`` (None: all). A fraction no cell fine-tunes at is a ``ValueError`` naming it."""
    if shard is not None:
        k, n = shard
        if not (isinstance(k, int) and isinstance(n, int) and n >= 1 and 0 <= k < n):
            raise ValueError(f"shard must be K/N with 0 <= K < N, got {k}/{n}")
        cells = cells[k::n]
    if fractions is None:
        return cells
    wanted = [float(f) for f in fractions]
    known = sorted({r.fraction for c in cells for r in c.finetunes if r.fraction is not None})
    unknown = [f for f in wanted if f not in known]
    if unknown or not wanted:
        raise ValueError(f"fractions: {unknown or wanted} not among the label fractions of this plan {known}")
    return [dataclasses.replace(c, finetunes=[r for r in c.finetunes if r.fraction in wanted]) for c in cells]


def _run_cells(cells: list[Cell], out: Path, acfg: AblationConfig, progress: bool, log: Callable[[str], None],
               summaries: Summaries) -> tuple[list, list, list]:
    """Run (or skip, when finished earlier) every cell in ``<out>/cells``; returns ``(rows, ran, skipped)``."""
    rows, ran, skipped = [], [], []
    for i, cell in enumerate(cells, 1):
        cdir = out / "cells" / cell.name
        spec = cell_spec(cell, acfg)
        row = _finished_row(cdir / "result.json", spec)
        if row is not None:
            rows.append(row)
            skipped.append(cell.name)
            log(f"[{i}/{len(cells)}] {cell.name}: finished earlier, skipped")
            continue
        log(f"[{i}/{len(cells)}] {cell.name}")
        t0 = time.perf_counter()
        stages = run_cell(cell, cdir, acfg, spec, progress, log, summaries)
        row = cell_row(cell, stages)
        rows.append(row)
        ran.append(cell.name)
        if "error" in stages:
            log(f"  {stages['error']}")
        else:
            save_results_json(cdir / "result.json", {"spec": spec, "row": row})
        # this call's time; the stages' recorded times include those finished earlier or on another machine
        log(f"  done in {time.perf_counter() - t0:.1f} s (its stages: {row['wall_s'] or 0:.1f} s in all)")
    return rows, ran, skipped

__all__ = ["ablate", "AblationResult", "select_cells", "run_cell"]

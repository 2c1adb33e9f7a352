"""Supervised fine-tuning of a pretrained backbone, and the from-scratch baseline (paper §4, App. 8.1).

Paper §4 "Supervised finetuning": "we eliminate the relative encoder and substitute it with a linear
classification [...] head after the [CLS] token [...]. Unlike pretraining, we incorporate randomly
initialized learnable position embeddings and apply fixed grid sampling instead of random sampling and
masking." Appendix 8.1: fine-tuning "adhere[s] strictly to the supervised training protocols recommended in
DeiT" (CIFAR-100: 400 epochs, lr 5e-4; ``configs/cifar100_vits_finetune.yaml``); for the 1D sleep task
"we randomly mask out 20% of the position embeddings" (the 1D backbone does this in training mode).

``finetune(config, init=...)``:

1. the config names ``objective.name: supervised`` with ``objective.options`` (``num_classes``,
   ``label_smoothing``, ``mixup``, ``cutmix``, ``layer_decay``, ``global_pool`` ``token``/``avg``,
   ``pos_embed``); the supervised objective builds the classifier and the position embeddings;
2. ``init`` (a pretrain run folder or weights file) fills the encoder (:func:`load_backbone_weights`:
   PART's relative encoder is dropped, the position embeddings and the head stay freshly initialised);
   ``init="none"`` (or None) trains from scratch — the "Supervised (w/ Pos Embed)" rows of Tab. 3/6/7;
3. training is :func:`part.engine.train` (AdamW, warmup + cosine, AMP, DDP, checkpoints, exact resume);
4. the test split is evaluated (:func:`part.evaluation.heldout.evaluate_classifier`) into
   ``<run>/results.json`` and printed.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import torch

from ..engine.runfolder import check_recorded_init, check_resume_init
from ..io import read_json
from . import metrics as M
from .heldout import evaluate_classifier, summary_row
from ..engine.resolve import load_backbone_weights, resolve_weights_path
from .features import EVAL_BATCH_SIZE, check_dataset_labels


@dataclass
class FinetuneResult:
    """``run_dir``; ``train``: the engine's :class:`~part.engine.TrainResult`; ``results``: test metrics
    (empty when not evaluated); ``init``: what was loaded (``source``, ``loaded``, ``fresh``, ``dropped``)."""

    run_dir: Path
    train: object
    results: dict = field(default_factory=dict)
    init: dict | None = None


def _num_classes(cfg) -> int:
    if cfg.objective.name != "supervised":
        raise ValueError(f"finetune needs objective.name: supervised in the config, got {cfg.objective.name!r}")
    n = cfg.objective.options.get("num_classes")
    if n is None:  # signal_npz fills it from the data (part.engine.complete_config)
        raise ValueError(f"finetune needs objective.options.num_classes (the number of classes) for data.kind="
                         f"{cfg.data.kind}")
    return int(n)


def _init_source(run: Path, report: dict | None) -> str:
    """What initialised the encoder: this call's report, else (resume) the run's ``init.json``."""
    if report is not None:
        return report["source"]
    path = run / "init.json"
    return read_json(path).get("source") or "none"


def finetune(
    config=None,
    init: str | Path | None = None,
    out: str | Path | None = None,
    overrides: Iterable[str] = (),
    resume: bool | str = False,
    overwrite: bool = False,
    progress: bool = True,
    evaluate: bool = True,
    eval_batch_size: int = EVAL_BATCH_SIZE,
    validate: bool = True,
    allow_data_change: bool = False,
) -> FinetuneResult:
    """Fine-tune (or train from scratch) a classifier and evaluate it on the test split.

    Args:
        config: YAML path / mapping / :class:`~part.config.Config` with ``objective.name: supervised``.
        init: pretrain run folder or ``.safetensors`` weights (objective weights or an export) for the
            encoder; ``None`` or ``"none"``: from scratch.
        out: run folder (default ``runs/<config name>``).
        overrides: dotted ``key=value`` strings.
        resume: ``True``: continue the run in ``out`` from its newest verified checkpoint (``init`` must not
            be given); ``"auto"``: continue when ``out`` holds a run (``init`` must then be the one it
            started from), else start it.
        overwrite: replace an existing run in ``out``.
        evaluate: evaluate the test split after training (``<run>/results.json``).
        validate: when the data has a validation split (``data.val_carve``, or a ``signal_npz`` set with
            ``val_groups``), evaluate it every ``train.val_every`` epochs (``val_top1`` ... in
            ``metrics.jsonl``: the learning curve) and after training (``results.json`` ``val``). Every choice
            (epochs, learning rate) is made on these numbers, never on the test split's.
        allow_data_change: let ``resume`` continue on data other than the run trained on (refused
            otherwise); the change is recorded with its step in ``<run>/data_changes.jsonl``.
    Returns:
        :class:`FinetuneResult`.
    """
    from ..engine.runs import resolve_run
    from ..engine import build_objective, train
    from ..engine.datainfo import write_data_record

    from_scratch = init is None or str(init).lower() == "none"
    check_resume_init(resume, None if from_scratch else init)
    run, cfg = resolve_run(config, out, overrides, resume, init=None if from_scratch or resume is True else init)
    num_classes = _num_classes(cfg)
    if resume == "auto" and (run / "config.yaml").is_file():
        resume = True  # continuing: the run's own weights, not --init (checked against its init.json below)
        check_recorded_init(run, None if from_scratch else resolve_weights_path(init, "--init"))
        from_scratch = True
    elif resume == "auto":
        resume = False  # nothing to continue: a new run, from --init when given
    if not from_scratch and not resume:
        resolve_weights_path(init, "--init")  # a missing path fails before any data is read

    train_data, test_data, val_data = _splits(cfg, num_classes, evaluate, validate)
    # the classifier and position embeddings are initialised from a known RNG state
    torch.manual_seed(cfg.train.seed)
    objective = build_objective(cfg)
    report = None if from_scratch or resume else _load_init(objective.backbone, init)
    res = train(cfg, run, resume=resume, overwrite=overwrite, init=None, progress=progress,
                objective=objective, dataset=train_data,
                provenance=report or {"source": None, "from_scratch": True},
                validate=None if val_data is None else _val_fn(val_data, eval_batch_size),
                allow_data_change=allow_data_change)
    is_main = int(os.environ.get("RANK", "0")) == 0
    if not res.finished_before:  # which samples (groups, subjects) it trained and is tested on
        write_data_record(run, cfg, [cfg.data.split] + (["test"] if evaluate else []))
    results: dict = {}
    if (evaluate or val_data is not None) and is_main:
        results = _results(run, cfg, objective, res, _init_source(run, report), test_data, val_data, eval_batch_size)
    return FinetuneResult(run, res, results, report)


def _splits(cfg, num_classes: int, evaluate: bool, validate: bool) -> tuple:
    """``(train, test or None, val or None)`` datasets of a fine-tune; the labels of train and test are checked
    against ``num_classes`` before anything trains."""
    from ..engine import build_dataset

    train_data = build_dataset(cfg, train=True)
    check_dataset_labels(train_data, num_classes, f"training split of {cfg.data.kind} ({cfg.data.root})")
    test_data = None
    if evaluate:
        test_data = build_dataset(cfg, train=False, split="test")
        check_dataset_labels(test_data, num_classes, f"test split of {cfg.data.kind} ({cfg.data.root})")
    return train_data, test_data, validation_split(cfg) if validate else None


def _load_init(backbone, init) -> dict:
    """Load ``init``'s encoder into ``backbone`` (:func:`load_backbone_weights`) and say on stderr what was
    loaded, kept fresh, dropped and resampled; returns the report."""
    report = load_backbone_weights(backbone, init, what="--init")
    print(f"--init {report['source']}: loaded {len(report['loaded'])} backbone tensors; fresh: "
          f"{report['fresh']}; dropped {len(report['dropped'])} (e.g. {report['dropped'][:3]})"
          + (f"; resampled to the {backbone.grid_size} grid: {report['resampled']}" if report["resampled"] else ""),
          file=sys.stderr)
    return report


def _results(run: Path, cfg, objective, res, init: str | None, test_data, val_data, batch_size: int) -> dict:
    """``results.json`` of a fine-tune (test split, and the validation split when there is one), written with
    the run's export (its model card then shows them) and printed; a finished run's are read, not rewritten."""
    from ..engine import RunLock, load_state_dict_checked, load_weights, write_run_export

    if res.finished_before and (run / "results.json").is_file():
        return json.loads((run / "results.json").read_text())  # a finished run is read-only to --resume
    with RunLock(run):
        if res.finished_before:  # finished, but killed before its results were written
            load_state_dict_checked(objective, load_weights(run / "weights.safetensors"),
                                    what=str(run / "weights.safetensors"))
        scores = {}
        if test_data is not None:
            scores = evaluate_classifier(objective, test_data, batch_size, what=f"test split of {cfg.data.kind}")
        results = {"task": "classification", "run": str(run), "split": "test" if test_data is not None else "val",
                   "objective": "supervised", "init": init, "step": res.step, **scores}
        if val_data is not None:
            results["val"] = evaluate_classifier(objective, val_data, batch_size,
                                                 what=f"validation split of {cfg.data.kind}")
            if test_data is None:
                results.update({k: v for k, v in results["val"].items() if k in ("top1", "top5", "kappa", "macro_f1")})
        M.save_results_json(run / "results.json", results)
        write_run_export(run, cfg, objective)  # the export's model card gains the test results and labels
    print(M.format_table([summary_row(run.name, {k: results[k] for k in ("top1", "top5", "kappa", "macro_f1")
                                                 if k in results})]))
    return results


def validation_split(cfg):
    """The validation split of ``cfg.data`` (eval transform), or None when it has none: the carve of
    ``data.val_carve`` (:mod:`part.data.subsets`), or a ``signal_npz`` set's ``val_groups``."""
    from ..data.kinds import data_kind, data_options
    from ..engine import build_dataset

    d = cfg.data
    if d.val_carve is None and not data_kind(d.kind).own_val(data_options(d)):
        return None
    return build_dataset(cfg, train=False, split="val")


def _val_fn(val_data, batch_size: int):
    """The trainer's ``validate``: top-1 (and kappa, macro F1) of the objective on ``val_data``."""
    def validate(objective) -> dict:
        rep = evaluate_classifier(objective, val_data, batch_size, what="validation split")
        return {k: rep[k] for k in ("top1", "kappa", "macro_f1") if k in rep}

    return validate


__all__ = ["finetune", "FinetuneResult", "validation_split"]

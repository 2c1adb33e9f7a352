"""Ablation grids: the paper's comparisons, apples to apples, at any scale (issue 7; paper Tab. 2-7, Fig. 8).

An *ablation config* (YAML; ``configs/ablate_*.yaml``) is a base experiment plus a grid:

* ``pretrain``: a pretraining config (the schema of ``configs/*.yaml``), optionally on top of a ``base``
  file; every cell pretrains with it, changing only the objective, its head / #pairs and the seed;
* ``pretext`` / ``probe`` / ``finetune``: how each pretrained backbone is evaluated: pretext errors on a
  held-out split (:func:`part.evaluation.evaluate`), linear probe + kNN on frozen features
  (:func:`part.evaluation.probe`), short end-to-end fine-tune (:func:`part.evaluation.finetune`, paper §4
  "Supervised finetuning": the relative encoder is replaced by a linear head on [CLS], random learnable
  position embeddings);
* ``grid``: one block (or a list of blocks, whose cells are united) of ``objectives`` x ``heads`` x
  ``num_pairs`` x ``seeds``. Heads and #pairs only vary for the PART objectives (``part``, ``part_grid``,
  ``part_scale``: the relative-encoder heads of Tab. 5 and the #pairs of Fig. 8); every other objective
  gets one cell per seed. ``supervised`` has no pretraining: its cell is the from-scratch fine-tune row
  ("Supervised (w/ Pos Embed)" of Tab. 3/6/7);
* ``objectives``: per-objective settings under a label: ``objective`` (the registry name, default the
  label, so ``supervised_nopos: {objective: supervised, options: {pos_embed: false}}`` adds a variant),
  ``options`` (constructor options), ``pretrain`` / ``finetune`` (sections merged onto the base ones,
  e.g. MAE's own learning rate), ``heads`` / ``num_pairs`` (restrict the block's lists; PART only).

Each cell runs ``pretrain -> pretext errors -> probe -> fine-tune`` into ``<out>/cells/<cell>/``:
``pretrain/`` (a run folder), ``pretext.json``, ``probe.json``, ``finetune/`` (a run folder with
``results.json``), ``stages.json`` (per finished stage: its settings, metrics, seconds) and, when all
stages are done, ``result.json`` (the cell's row). Re-running continues where it stopped: a cell whose
``result.json`` holds the same settings is skipped; a finished stage is not redone; a training run
with checkpoints is resumed exactly (``resume=True`` of the engine). A pretraining whose stored settings
differ from the config raises ``ValueError`` (choose another ``out`` or ``resume=False``); the stages
after it (pretext, probe, fine-tune) are redone when their own settings change.

Outputs: ``<out>/results.csv`` (one row per cell), ``<out>/table.md`` (mean ± std over seeds per
(objective, head, #pairs)), ``<out>/plots/accuracy_vs_pairs.png`` (Fig. 8 style) and
``<out>/plots/accuracy_by_objective.png`` (+ ``pretext_errors.png`` for PART rows, Tab. 5 style),
``<out>/ablation.yaml`` (the resolved ablation config).

Modules: :mod:`~part.ablation.settings` (the ablation config on :mod:`part.config`),
:mod:`~part.ablation.plan` (grid -> cells), :mod:`~part.ablation.run` (running, resuming: :func:`ablate`),
:mod:`~part.ablation.report` (CSV, Markdown table), :mod:`~part.ablation.plots` (figures),
:mod:`~part.ablation.folds` (``folds:`` cross-validation over held-out groups, ``pretrain_on: train+test``),
:mod:`~part.ablation.paired` (``paired:`` differences against a baseline row, run by run),
:mod:`~part.ablation.commands` (``part ablate``).

    import part
    res = part.ablate("configs/ablate_fmnist_cpu.yaml", out="runs/ablate_fmnist")   # = part.ablation.ablate
    print(res.table)
"""

from .plan import Cell, cell_name, plan_cells
from .plots import make_plots
from .report import CSV_COLUMNS, aggregate, format_markdown, mean_std, read_csv, write_csv
from .run import AblationResult, ablate
from .settings import PART_OBJECTIVES, AblationConfig, load_ablation_config

__all__ = [
    "ablate", "AblationResult", "AblationConfig", "load_ablation_config", "plan_cells", "Cell", "cell_name",
    "aggregate", "mean_std", "format_markdown", "write_csv", "read_csv", "make_plots", "CSV_COLUMNS",
    "PART_OBJECTIVES",
]

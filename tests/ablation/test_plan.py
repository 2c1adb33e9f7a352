"""Grid -> cells: the shipped grids plan; a PART cell's N comes from its objective's sampler."""

from __future__ import annotations

from pathlib import Path

from part.ablation.plan import plan_cells
from part.ablation.plots import pairs_value
from part.ablation.settings import load_ablation_config
from tests.ablation.golden import tiny

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_shipped_configs_plan():
    """The shipped grids load and every cell's configs resolve and build (without any data or training)."""
    cells = plan_cells(load_ablation_config(CONFIGS / "ablate_fmnist_cpu.yaml"))
    assert len(cells) == 24 and len({c.key() for c in cells}) == 12 and {c.seed for c in cells} == {0, 1}
    rows = {(c.label, c.head, c.num_pairs) for c in cells}
    assert {("part", "cross_attention", p) for p in (32, 64, 128, "all")} <= rows
    assert {("part", "pairwise_mlp", 128), ("part", "mlp", 128), ("part_grid", "cross_attention", 128)} <= rows
    assert {("mp3", None, None), ("droppos", None, None), ("mae", None, None)} <= rows
    sup = [c for c in cells if c.method == "supervised"]
    assert len(sup) == 4 and all(c.pretrain is None for c in sup)
    assert {c.finetune.objective.options["pos_embed"] for c in sup} == {True, False}
    assert all(c.finetune.train.max_steps == 150 for c in cells)
    assert {c.num_patches for c in cells if c.method.startswith("part")} == {16}  # 28 / 7 = 4 x 4
    assert {c.num_patches for c in cells if not c.method.startswith("part")} == {None}
    heads = plan_cells(load_ablation_config(CONFIGS / "ablate_cifar100_heads.yaml"))
    assert [(c.head, c.num_pairs) for c in heads] == [(h, 2048) for h in ("cross_attention_paper", "cross_attention", "pairwise_linear", "mlp")]
    assert heads[0].pretrain.model.arch == "vit_small" and heads[0].pretrain.train.epochs == 1000
    assert heads[0].finetune.train.epochs == 400 and heads[0].finetune.optim.lr == 5e-4
    pairs = plan_cells(load_ablation_config(CONFIGS / "ablate_cifar100_pairs.yaml"))
    assert [c.num_pairs for c in pairs] == [512, 1024, 2048, 4096]  # fractions of N^2 = 64^2 (self-pairs)
    assert pairs[-1].num_patches == 64 and pairs[-1].pretrain.objective.self_pairs
    assert pairs_value("all", 64, self_pairs=True) == 64 * 64 and pairs_value("all", 64) == 64 * 63


def test_all_pairs_count_comes_from_the_sampler(root):
    """``"all"`` on the plots' #pairs axis is N (N - 1) for the N the objective samples: the typed
    ``num_patches`` option in 2D, the 1D sampler's own default (40 windows, not T // L = 30) in 1D."""
    cfg = tiny(root, grid={"objectives": ["part", "part_grid"], "num_pairs": ["all"], "seeds": [0]},
               objectives={"part": {"options": {"num_patches": 3}}})
    cells = {c.label: c for c in plan_cells(load_ablation_config(cfg))}
    assert cells["part"].num_patches == 3 and cells["part"].pretrain.objective.num_patches == 3
    assert cells["part_grid"].num_patches == 4  # the 2 x 2 grid of an 8 x 8 image in 4 x 4 patches
    assert pairs_value("all", cells["part"].num_patches) == 6.0 and pairs_value(8, None) == 8.0
    assert pairs_value("all", None) is None

    one_d = tiny(root, grid={"objectives": ["part"], "num_pairs": ["all"], "seeds": [0]})
    one_d["pretrain"]["model"] = {"arch": "vit1d_custom", "embed_dim": 16, "depth": 1, "num_heads": 2,
                                  "img_size": 3000, "patch_size": 100, "in_chans": 2}
    (cell,) = plan_cells(load_ablation_config(one_d))
    assert cell.num_patches == 30 and pairs_value("all", cell.num_patches) == 30 * 29  # the grid count T // L

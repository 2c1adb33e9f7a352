import pytest
import torch

from part.objectives import PARTModel
from part.objectives.droppos import DropPosObjective
from part.objectives.mae import MAEObjective
from part.objectives.mp3 import MP3Objective
from part.objectives.registry import build_objective, objective_names, objective_options
from part.objectives.supervised import SupervisedObjective
from part.sampling import GridSampler, OffGridSampler, ScaleAspectSampler

from .helpers import tiny_backbone

NAMES = ["part", "part_grid", "part_scale", "mp3", "droppos", "mae", "supervised"]


def test_names():
    assert objective_names() == NAMES


@pytest.mark.parametrize(
    "name,cls,sampler",
    [("part", PARTModel, OffGridSampler), ("part_grid", PARTModel, GridSampler),
     ("part_scale", PARTModel, ScaleAspectSampler), ("mp3", MP3Objective, None),
     ("droppos", DropPosObjective, None), ("mae", MAEObjective, None), ("supervised", SupervisedObjective, None)],
)
def test_builds_each_objective_and_steps(name, cls, sampler):
    bb = tiny_backbone()
    cfg = {"num_classes": 5} if name == "supervised" else {"num_pairs": 20} if name.startswith("part") else {}
    obj = build_objective(name, bb, **cfg)
    assert type(obj) is cls and obj.backbone is bb
    if sampler is not None:
        assert type(obj.sampler) is sampler
    x, gen = torch.rand(2, 3, 16, 16), torch.Generator().manual_seed(0)
    out = obj(x, torch.tensor([1, 4]), gen) if getattr(obj, "uses_labels", False) else obj(x, gen)
    out.loss.backward()
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert out.metrics and all(v.dim() == 0 and not v.requires_grad for v in out.metrics.values())


@pytest.mark.parametrize("head", ["cross_attention", "pairwise_mlp", "mlp"])
def test_part_heads_selectable(head):
    obj = build_objective("part_grid", tiny_backbone(), head=head, num_pairs=10)
    assert obj(torch.rand(1, 3, 16, 16)).pred.shape == (1, 10, 2)


def test_options_forwarded():
    obj = build_objective("mp3", tiny_backbone(), mask_ratio=0.5, attention="mask")
    assert obj.num_context == 8 and obj.attention == "mask"
    obj = build_objective("droppos", tiny_backbone(), pos_mask_ratio=0.5, sigma=0.0, attentive=False)
    assert obj.num_pos_keep == 2 and obj.sigma == 0.0
    assert "mask_ratio" in objective_options("mae") and "sampler" not in objective_options("part")


def test_registry_errors():
    with pytest.raises(ValueError, match="objective.*'byol'.*'part'.*'part_grid'"):
        build_objective("byol", tiny_backbone())
    with pytest.raises(ValueError, match="option.*'mask_ration'.*objective.*'mae'"):
        build_objective("mae", tiny_backbone(), mask_ration=0.5)
    with pytest.raises(ValueError, match="objective.*'part_grid'.*sampler='grid'.*'sampler'"):
        build_objective("part_grid", tiny_backbone(), sampler="offgrid")
    with pytest.raises(ValueError, match="unknown head 'transformer'"):
        build_objective("part", tiny_backbone(), head="transformer", num_pairs=10)
    with pytest.raises(ValueError, match="objective.*'supervised'.*option.*'num_classes'"):
        build_objective("supervised", tiny_backbone())


# --- the objective table and the typed config section (issue 17) ----------------------------------
import dataclasses  # noqa: E402
import inspect  # noqa: E402

from part.config import ObjectiveConfig, load_config  # noqa: E402
from part.objectives.registry import (  # noqa: E402
    PART_FIELDS,
    objective_sampler,
    part_defaults,
    part_objectives,
    resolve_objective_config,
)


def test_one_table_of_objectives_and_samplers():
    assert part_objectives() == ["part", "part_grid", "part_scale"]
    assert [objective_sampler(n) for n in part_objectives()] == ["offgrid", "grid", "scale"]
    assert objective_sampler("mae") is None


def test_config_fields_are_partmodel_keywords():
    """Config fields and PARTModel keyword arguments share their names (the CLI mirrors the Python API)."""
    typed = {f.name for f in dataclasses.fields(ObjectiveConfig)} - {"name", "options"}
    assert typed == set(PART_FIELDS)
    assert set(PART_FIELDS) <= set(inspect.signature(PARTModel.__init__).parameters)


@pytest.mark.parametrize(
    "overrides,words",
    [(["objective.name=mae", "objective.head=pairwise_mlp", "objective.num_pairs=7", "objective.box_size=3"],
      ["objective.head", "pairwise_mlp", "'mae'"]),
     (["objective.name=mp3", "objective.self_pairs=true"], ["objective.self_pairs", "'mp3'"]),
     (["objective.name=supervised", "objective.positions=integer", "objective.options={num_classes: 3}"],
      ["objective.positions", "'integer'"]),
     (["objective.options={num_pairs: 5}"], ["objective.options.num_pairs", "objective.num_pairs"]),
     (["objective.name=mae", "objective.options={mask_raito: 0.5}"], ["objective.options.mask_raito", "'mae'"]),
     (["objective.name=byol"], ["objective.name", "'byol'"])],
)
def test_config_rejects_what_the_objective_does_not_use(overrides, words):
    with pytest.raises(ValueError) as info:
        load_config(None, overrides)
    msg = str(info.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_part_defaults_are_filled_and_recorded():
    cfg = load_config(None, ["objective.name=part_scale"])
    o = cfg.objective
    assert (o.head, o.num_pairs, o.self_pairs, o.scale_range) == ("cross_attention_paper", 2048, False, [0.5, 2.0])
    assert part_defaults()["head"] == inspect.signature(PARTModel.__init__).parameters["head"].default
    assert load_config(None, []).objective.scale_range is None  # only part_scale reads it


def test_old_run_configs_with_recorded_part_defaults_still_load():
    """Run folders written before the check recorded every PART default for every objective: the head default
    of then (cross_attention) and of now are both dropped by the run-folder migration
    (:mod:`part.engine.migrations`); another head is still an error, and so is a default in a new config."""
    from part.engine.migrations import migrate_run_config

    for head in ("cross_attention", "cross_attention_paper"):
        raw = {"objective": {"name": "supervised", "head": head, "num_pairs": 2048, "scale_range": [0.5, 2.0],
                             "options": {"num_classes": 10}}}
        section = load_config(None, base=migrate_run_config(raw)).objective
        assert section.head is None and section.num_pairs is None and section.scale_range is None
        assert raw["objective"]["head"] == head  # the raw mapping is not changed
    raw = {"objective": {"name": "supervised", "head": "pairwise_mlp", "options": {"num_classes": 10}}}
    with pytest.raises(ValueError, match="objective.head='pairwise_mlp'.*PART objectives"):
        load_config(None, base=migrate_run_config(raw))
    with pytest.raises(ValueError, match="objective.head='cross_attention_paper'.*PART objectives"):
        resolve_objective_config(ObjectiveConfig(name="supervised", head="cross_attention_paper",
                                                 options={"num_classes": 10}))


def test_resolving_a_section_never_changes_it():
    section = ObjectiveConfig(name="part_scale")
    resolved = resolve_objective_config(section)
    assert (section.head, section.num_pairs, section.positions, section.scale_range) == (None, None, None, None)
    assert (resolved.head, resolved.num_pairs, resolved.scale_range) == ("cross_attention_paper", 2048, [0.5, 2.0])
    assert resolved.options is not section.options


def test_builder_passes_new_fields(tmp_path):
    from part.engine import build_objective

    cfg = load_config(None, ["model.arch=custom", "model.embed_dim=32", "model.depth=1", "model.num_heads=2",
                             "model.img_size=16", "model.patch_size=4", "objective.num_pairs=256",
                             "objective.self_pairs=true", "objective.positions=integer",
                             "objective.head=cross_attention_paper"])
    obj = build_objective(cfg)
    assert obj.self_pairs is True and obj.sampler.positions == "integer" and obj.num_pairs == 256
    assert type(obj.head).__name__ == "FusedPaperCrossAttentionHead"
    with pytest.raises(ValueError, match="positions"):
        build_objective(load_config(None, ["objective.name=part_grid", "objective.positions=integer"]))

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
    with pytest.raises(ValueError, match="unknown objective 'byol'; choose one of \\['part', 'part_grid'"):
        build_objective("byol", tiny_backbone())
    with pytest.raises(ValueError, match="unknown option\\(s\\) \\['mask_ration'\\] for objective 'mae'; valid"):
        build_objective("mae", tiny_backbone(), mask_ration=0.5)
    with pytest.raises(ValueError, match="objective 'part_grid' fixes sampler='grid'; remove \\['sampler'\\]"):
        build_objective("part_grid", tiny_backbone(), sampler="offgrid")
    with pytest.raises(ValueError, match="unknown head 'transformer'"):
        build_objective("part", tiny_backbone(), head="transformer", num_pairs=10)
    with pytest.raises(ValueError, match="objective 'supervised' needs option\\(s\\) \\['num_classes'\\]"):
        build_objective("supervised", tiny_backbone())

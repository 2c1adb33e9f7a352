"""The head registry (issue 17): one table of relative encoders, options checked by name."""

import pytest
import torch

from part.models import fast_heads, heads
from part.models.registry import HEADS, build_head, head_names, head_options


def test_every_fast_head_has_its_reference():
    for name in head_names():
        if name.endswith("_reference"):
            continue
        ref = f"{name}_reference"
        if name == "mlp":  # the fully connected head has one implementation
            assert ref not in HEADS
            continue
        fast_cls, fixed = HEADS[name]
        ref_cls, ref_fixed = HEADS[ref]
        assert fast_cls.__module__ == fast_heads.__name__ and ref_cls.__module__ == heads.__name__
        assert issubclass(fast_cls, ref_cls) and fixed == ref_fixed


def test_dispatch_and_fixed_options():
    assert type(build_head("cross_attention_paper", 16)) is fast_heads.FusedPaperCrossAttentionHead
    assert type(build_head("cross_attention_index_reference", 16)) is heads.IndexCrossAttentionHead
    lin = build_head("pairwise_linear", 16, 2)
    assert lin.fc2 is None and sum(p.numel() for p in lin.parameters()) == 2 * 16 * 2 + 2  # paper: 2*d*2
    assert build_head("pairwise_mlp", 16, 2).fc2 is not None  # two layers stay available
    assert build_head("pairwise_mlp", 16, 2, hidden_dim=0).fc2 is None  # ... and the paper form by option
    assert build_head("cross_attention", 16, 2, num_heads=4).num_heads == 4
    assert build_head("cross_attention", 16, 2, num_heads=None).num_heads == 1  # None = constructor default
    assert "hidden_dim" not in head_options("pairwise_linear") and "path" in head_options("pairwise_linear")


@pytest.mark.parametrize(
    "name,options,word",
    [("cross_attention_paper", {"num_heads": 6}, "num_heads"), ("cross_attention", {"hidden_dim": 8}, "hidden_dim"),
     ("pairwise_linear", {"hidden_dim": 8}, "hidden_dim"), ("mlp", {"num_heads": 2, "num_patches": 4}, "num_heads")],
)
def test_unused_options_rejected(name, options, word):
    with pytest.raises(ValueError, match=rf"head '{name}'.*\['{word}'\]"):
        build_head(name, 16, **options)


def test_unknown_head_lists_names():
    with pytest.raises(ValueError, match="head.*'transformer'.*cross_attention_index"):
        build_head("transformer", 16)


def test_index_head_needs_dim_multiple_of_4():
    with pytest.raises(ValueError, match=r"dim=18 .*divisible by 4"):
        build_head("cross_attention_index", 18)
    assert build_head("cross_attention_index", 20)(torch.randn(1, 3, 20), torch.tensor([[[0, 2]]])).shape == (1, 1, 2)

"""Results speak the data's language: top-5 only with more than 5 classes, class names only when they name
the K classes reported."""

import torch

from part.evaluation.heldout import classification_report


def test_top5_only_with_more_than_five_classes():
    g = torch.Generator().manual_seed(0)
    for k in (2, 5):
        rep = classification_report(torch.randn(20, k, generator=g), torch.arange(20) % k, k)
        assert "top5" not in rep and "top1" in rep
    scores = torch.randn(30, 7, generator=g)
    labels = torch.arange(30) % 7
    rep = classification_report(scores, labels, 7)
    in_top5 = (scores.topk(5, dim=1).indices == labels[:, None]).any(1).sum().item() / 30
    assert rep["top5"] == in_top5 and rep["top5"] < 1.0


def test_class_names_only_when_they_name_the_classes():
    scores, labels = torch.eye(3)[[0, 1, 2, 1]], torch.tensor([0, 1, 2, 1])
    assert classification_report(scores, labels, 3, ("up", "down", "rest"))["class_names"] == ["up", "down", "rest"]
    # e.g. sleep-stage names of a 5-class kind given for a 3-class task: left out, never mislabelled
    assert "class_names" not in classification_report(scores, labels, 3, ("W", "N1", "N2", "N3", "REM"))

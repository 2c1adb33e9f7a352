"""Tests for part.evaluation.metrics: hand-computed cases, orientation, ties, errors, reporting."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch

from part.evaluation.metrics import (
    balanced_accuracy,
    classification_metrics,
    cohen_kappa,
    cohen_kappa_from_confusion,
    confusion_matrix,
    format_table,
    macro_f1,
    per_class_f1,
    save_results_json,
    topk_accuracy,
    translation_errors,
)

# A hand-made 3-class confusion matrix (rows = true class, columns = predicted class).
#
#            pred 0  pred 1  pred 2 | row sum r
#   true 0      5       1       0   |   6
#   true 1      2       3       1   |   6
#   true 2      0       1       7   |   8
#   ---------------------------------
#   col sum c   7       5       8   |  n = 20
#
# p_o   = trace / n = (5 + 3 + 7) / 20 = 15 / 20 = 0.75
# p_e   = sum_i r_i c_i / n^2 = (6*7 + 6*5 + 8*8) / 400 = (42 + 30 + 64) / 400 = 136 / 400 = 0.34
# kappa = (p_o - p_e) / (1 - p_e) = (0.75 - 0.34) / (1 - 0.34) = 0.41 / 0.66 = 41 / 66 ~= 0.621212
#
# per-class F1 = 2TP / (2TP + FP + FN):
#   class 0: TP 5, FP 7-5=2, FN 6-5=1 -> 10 / 13
#   class 1: TP 3, FP 5-3=2, FN 6-3=3 ->  6 / 11
#   class 2: TP 7, FP 8-7=1, FN 8-7=1 -> 14 / 16 = 7 / 8
# per-class recall: 5/6, 3/6, 7/8
HAND_CM = [[5, 1, 0], [2, 3, 1], [0, 1, 7]]
HAND_KAPPA = 41 / 66
HAND_F1 = [10 / 13, 6 / 11, 7 / 8]
HAND_RECALL = [5 / 6, 3 / 6, 7 / 8]


def _labels_from_cm(cm):
    """Expand a confusion matrix into (pred, target) label vectors, shuffled deterministically."""
    target, pred = [], []
    for i, row in enumerate(cm):
        for j, count in enumerate(row):
            target += [i] * count
            pred += [j] * count
    perm = torch.randperm(len(target), generator=torch.Generator().manual_seed(0))
    return torch.tensor(pred)[perm], torch.tensor(target)[perm]


# ------------------------------------------------------------------------------------- top-k
def test_topk_hand_case():
    logits = torch.tensor(
        [
            [0.1, 0.9, 0.0, 0.0],  # label 1: rank 0
            [0.5, 0.4, 0.3, 0.2],  # label 2: rank 2
            [0.0, 0.1, 0.2, 0.3],  # label 0: rank 3
            [0.3, 0.2, 0.9, 0.1],  # label 2: rank 0
        ]
    )
    labels = torch.tensor([1, 2, 0, 2])
    out = topk_accuracy(logits, labels, ks=(1, 2, 3, 4))
    assert out == {"top1": 0.5, "top2": 0.5, "top3": 0.75, "top4": 1.0}


def test_topk_ties_prefer_lower_index_like_argmax():
    logits = torch.zeros(4, 3)  # every score tied: ranking is class 0, 1, 2
    labels = torch.tensor([0, 1, 2, 2])
    out = topk_accuracy(logits, labels, ks=(1, 2, 3))
    assert out == {"top1": 0.25, "top2": 0.5, "top3": 1.0}
    # top-1 agrees with argmax (which returns the first maximal index) even under ties
    rng = torch.Generator().manual_seed(1)
    logits = torch.randint(0, 3, (64, 5), generator=rng).float()
    labels = torch.randint(0, 5, (64,), generator=rng)
    expected = (logits.argmax(1) == labels).double().mean().item()
    assert topk_accuracy(logits, labels, ks=(1,))["top1"] == pytest.approx(expected)


def test_topk_matches_stable_sort_reference_and_is_repeatable():
    rng = torch.Generator().manual_seed(2)
    logits = torch.randint(0, 4, (50, 7), generator=rng).float()  # many ties
    labels = torch.randint(0, 7, (50,), generator=rng)
    order = torch.sort(logits, dim=1, descending=True, stable=True).indices  # ties: lower index first
    for k in (1, 2, 3, 5):
        ref = (order[:, :k] == labels[:, None]).any(1).double().mean().item()
        assert topk_accuracy(logits, labels, ks=(k,))[f"top{k}"] == pytest.approx(ref)
    assert topk_accuracy(logits, labels) == topk_accuracy(logits.clone(), labels.clone())


def test_topk_clips_k_and_accepts_numpy():
    logits = np.array([[0.2, 0.5, 0.3], [0.9, 0.05, 0.05]], dtype=np.float32)
    labels = np.array([0, 2])
    out = topk_accuracy(logits, labels)  # default ks=(1, 5); 5 > K=3 is clipped to 3
    assert out == {"top1": 0.0, "top5": 1.0}
    assert all(isinstance(v, float) for v in out.values())


@pytest.mark.parametrize(
    "logits, labels, ks, match",
    [
        (torch.zeros(3), torch.zeros(3, dtype=torch.long), (1,), r"logits must have shape \(N, K\)"),
        (torch.zeros(3, 2), torch.zeros(2, dtype=torch.long), (1,), "labels.*2.*3"),
        (torch.zeros(2, 2), torch.tensor([0, 2]), (1,), "labels.*label.*2.*num_classes=2"),
        (torch.zeros(2, 2), torch.tensor([0.0, 1.0]), (1,), "labels.*integer"),
        (torch.zeros(2, 2), torch.tensor([0, 1]), (0,), "ks.*0"),
        (torch.tensor([[0.0, math.nan]]), torch.tensor([0]), (1,), "logits contain NaN"),
        (torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), (1,), "logits.*empty"),
    ],
)
def test_topk_bad_inputs(logits, labels, ks, match):
    with pytest.raises(ValueError, match=match):
        topk_accuracy(logits, labels, ks=ks)


# --------------------------------------------------------------------------- confusion matrix
def test_confusion_matrix_orientation_rows_true_cols_pred():
    target = torch.tensor([0, 0, 0, 1])
    pred = torch.tensor([1, 1, 2, 1])
    cm = confusion_matrix(pred, target, num_classes=3)
    expected = torch.tensor([[0, 2, 1], [0, 1, 0], [0, 0, 0]])
    assert cm.dtype == torch.int64
    assert torch.equal(cm, expected)
    assert torch.equal(cm.sum(1), torch.bincount(target, minlength=3))  # row sums = class supports
    assert torch.equal(cm.sum(0), torch.bincount(pred, minlength=3))  # col sums = prediction counts


def test_confusion_matrix_reconstructs_hand_case_from_labels():
    pred, target = _labels_from_cm(HAND_CM)
    assert torch.equal(confusion_matrix(pred, target, 3), torch.tensor(HAND_CM))
    assert torch.equal(confusion_matrix(pred.numpy(), target.numpy(), 3), torch.tensor(HAND_CM))


@pytest.mark.parametrize(
    "pred, target, k, match",
    [
        ([0, 1], [0, 3], 3, "target.*label.*3.*num_classes=3"),
        ([0, -1], [0, 1], 3, "pred.*label.*-1.*num_classes=3"),
        ([0, 5, 7], [0, 1, 1], 4, "pred.*label.*5.*num_classes=4"),
        ([0, 1], [0, 1, 1], 3, "pred and target must have the same shape"),
        ([0, 1], [0, 1], 0, "num_classes.*0"),
        ([[0, 1]], [[0, 1]], 3, r"pred must have shape \(N,\)"),
        ([0.0, 1.0], [0, 1], 3, "pred.*torch.float64"),
    ],
)
def test_confusion_matrix_bad_inputs(pred, target, k, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(pred, target, k)


# -------------------------------------------------------------------------------------- kappa
def test_kappa_hand_computed():
    assert cohen_kappa_from_confusion(HAND_CM) == pytest.approx(HAND_KAPPA, abs=1e-12)
    pred, target = _labels_from_cm(HAND_CM)
    assert cohen_kappa(pred, target, num_classes=3) == pytest.approx(HAND_KAPPA, abs=1e-12)
    assert cohen_kappa(pred, target) == pytest.approx(HAND_KAPPA, abs=1e-12)  # K inferred
    # extra empty classes change nothing
    assert cohen_kappa(pred, target, num_classes=6) == pytest.approx(HAND_KAPPA, abs=1e-12)
    # kappa is symmetric in the two raters
    assert cohen_kappa(target, pred) == pytest.approx(HAND_KAPPA, abs=1e-12)


def test_kappa_reference_cases():
    # perfect agreement over two classes: p_o = 1, p_e = 0.5 -> kappa = 1
    assert cohen_kappa([0, 1, 0, 1], [0, 1, 0, 1]) == 1.0
    # complete disagreement, balanced: p_o = 0, p_e = 0.5 -> kappa = -1
    assert cohen_kappa([1, 0, 1, 0], [0, 1, 0, 1]) == -1.0
    # constant predictor on mixed targets: p_o = 0.5, p_e = (2*4)/16 = 0.5 -> kappa = 0
    assert cohen_kappa([0, 0, 0, 0], [0, 0, 1, 1]) == 0.0


def test_kappa_degenerate_single_class_returns_one():
    # every target and every prediction is class 2: p_e = 1 and p_o = 1 -> 0/0, defined as 1.0
    assert cohen_kappa([2, 2, 2], [2, 2, 2], num_classes=4) == 1.0
    assert cohen_kappa_from_confusion([[0, 0], [0, 5]]) == 1.0


def test_kappa_matches_sklearn_if_available():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    for _ in range(5):
        target = rng.integers(0, 5, 40)
        pred = np.where(rng.random(40) < 0.6, target, rng.integers(0, 5, 40))
        ref = sklearn_metrics.cohen_kappa_score(target, pred)
        assert cohen_kappa(pred, target, 5) == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize(
    "cm, match",
    [
        ([[0, 0], [0, 0]], "cm is all zeros"),
        ([[1, 2, 3], [4, 5, 6]], r"cm must be a square \(K, K\) matrix"),
        ([[1, -1], [0, 2]], "cm.*minimum.*-1"),
        ([[1.5, 0.0], [0.0, 2.0]], "cm.*integer"),
    ],
)
def test_kappa_bad_confusion(cm, match):
    with pytest.raises(ValueError, match=match):
        cohen_kappa_from_confusion(cm)


def test_kappa_bad_labels():
    with pytest.raises(ValueError, match="target contains negative label -1"):
        cohen_kappa([0, 1], [0, -1])
    with pytest.raises(ValueError, match="target.*label.*3.*num_classes=3"):
        cohen_kappa([0, 1], [0, 3], num_classes=3)


# ----------------------------------------------------------------------------- f1 / balanced
def test_f1_and_balanced_accuracy_hand_case():
    f1 = per_class_f1(torch.tensor(HAND_CM))
    assert f1.shape == (3,)
    assert torch.allclose(f1, torch.tensor(HAND_F1, dtype=torch.float64))
    assert macro_f1(HAND_CM) == pytest.approx(sum(HAND_F1) / 3)
    assert balanced_accuracy(HAND_CM) == pytest.approx(sum(HAND_RECALL) / 3)


def test_f1_absent_class_is_nan_and_skipped():
    # class 2 never appears (neither target nor prediction); class 1 is predicted but never true
    cm = [[2, 1, 0], [0, 0, 0], [0, 0, 0]]
    f1 = per_class_f1(cm)
    # class 0: 2*2 / (4 + 0 + 1) = 0.8; class 1: 0 / (0 + 1 + 0) = 0; class 2: 0/0 -> NaN
    assert f1[0].item() == pytest.approx(0.8)
    assert f1[1].item() == 0.0
    assert math.isnan(f1[2].item())
    assert macro_f1(cm) == pytest.approx(0.4)
    # only class 0 has support: recall 2/3
    assert balanced_accuracy(cm) == pytest.approx(2 / 3)


def test_f1_and_balanced_accuracy_reject_empty():
    with pytest.raises(ValueError, match="macro F1 needs at least one sample"):
        macro_f1([[0, 0], [0, 0]])
    with pytest.raises(ValueError, match="balanced accuracy needs at least one sample"):
        balanced_accuracy([[0, 0], [0, 0]])


def test_classification_metrics_bundle():
    pred, target = _labels_from_cm(HAND_CM)
    out = classification_metrics(pred, target, 3)
    assert out["accuracy"] == pytest.approx(0.75)
    assert out["kappa"] == pytest.approx(HAND_KAPPA)
    assert out["macro_f1"] == pytest.approx(sum(HAND_F1) / 3)
    assert out["balanced_accuracy"] == pytest.approx(sum(HAND_RECALL) / 3)


# ------------------------------------------------------------------------ translation errors
def test_translation_errors_2d_hand_case():
    # shape (B=1, M=2, 2): diffs (3, 4) and (0, 1)
    target = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])
    pred = torch.tensor([[[3.0, 4.0], [1.0, 2.0]]])
    out = translation_errors(pred, target)
    # err_x = (9 + 0)/2, err_y = (16 + 1)/2, euclid = (5 + 1)/2, mse = (9 + 16 + 0 + 1)/4
    assert out == pytest.approx({"err_x": 4.5, "err_y": 8.5, "err_euclid": 3.0, "mse": 6.5})
    assert set(out) == {"err_x", "err_y", "err_euclid", "mse"}


def test_translation_errors_2d_with_scale():
    target = np.zeros((2, 4))
    pred = np.array([[3.0, 4.0, 1.0, 0.0], [0.0, 0.0, -1.0, 2.0]])
    out = translation_errors(pred, target)
    # x: (9+0)/2, y: (16+0)/2, w: (1+1)/2, h: (0+4)/2; euclid over (x, y) only: (5 + 0)/2
    assert out == pytest.approx(
        {"err_x": 4.5, "err_y": 8.0, "err_w": 1.0, "err_h": 2.0, "err_euclid": 2.5, "mse": 31 / 8}
    )


def test_translation_errors_1d():
    target = torch.tensor([[0.5, 1.0], [-1.0, 1.0], [2.0, 1.0]])
    pred = torch.tensor([[1.5, 1.0], [-3.0, 0.0], [2.0, 3.0]])
    out = translation_errors(pred, target, spatial_dims=1)
    # dt diffs 1, -2, 0 -> err_t = 5/3, euclid = mean |dt| = 1; len diffs 0, -1, 2 -> 5/3
    assert out == pytest.approx({"err_t": 5 / 3, "err_len": 5 / 3, "err_euclid": 1.0, "mse": 10 / 6})
    out1 = translation_errors(pred[:, :1], target[:, :1], spatial_dims=1)
    assert out1 == pytest.approx({"err_t": 5 / 3, "err_euclid": 1.0, "mse": 5 / 3})


def test_translation_errors_zero_when_equal():
    theta = torch.randn(3, 5, 2, generator=torch.Generator().manual_seed(4))
    assert all(v == 0.0 for v in translation_errors(theta, theta.clone()).values())


@pytest.mark.parametrize(
    "pred_shape, target_shape, dims, match",
    [
        ((4, 3), (4, 3), 2, "k=3.*spatial_dims=2"),
        ((4, 4), (4, 4), 1, "k=4.*spatial_dims=1"),
        ((4, 2), (5, 2), 2, "pred and target must have the same shape"),
        ((0, 2), (0, 2), 2, "pred and target are empty"),
        ((4, 2), (4, 2), 3, "spatial_dims.*1.*2.*3"),
    ],
)
def test_translation_errors_bad_inputs(pred_shape, target_shape, dims, match):
    with pytest.raises(ValueError, match=match):
        translation_errors(torch.zeros(pred_shape), torch.zeros(target_shape), spatial_dims=dims)


# ------------------------------------------------------------------------------------ table
def test_format_table_contents_and_alignment():
    rows = [
        {"method": "PART", "top1": 0.8263456, "epochs": 400},
        {"method": "MP3 | grid", "top1": torch.tensor(0.81234), "epochs": np.int64(2000), "kappa": 0.5},
    ]
    table = format_table(rows)
    lines = table.split("\n")
    assert len(lines) == 4
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["method", "top1", "epochs", "kappa"]
    assert "0.8263" in lines[2] and "0.8263456" not in lines[2]  # 4 significant digits
    assert "0.8123" in lines[3] and "2000" in lines[3] and "0.5" in lines[3]
    assert "MP3 \\| grid" in lines[3]  # pipe escaped so the Markdown table stays intact
    assert len({len(line) for line in lines}) == 1  # every line padded to the same width
    sep_cells = [c.strip() for c in lines[1].strip("|").split("|")]
    assert sep_cells[0].endswith("-") and all(c.endswith(":") for c in sep_cells[1:])  # numbers right
    # missing key -> empty cell at the end of row 1
    assert lines[2].rstrip("| ").endswith("400")


def test_format_table_column_selection_and_formats():
    rows = [{"a": 12345.678, "b": 1e-5, "c": None, "d": True}]
    table = format_table(rows, columns=["d", "a", "b"])
    header, _, row = table.split("\n")
    assert [c.strip() for c in header.strip("|").split("|")] == ["d", "a", "b"]
    assert [c.strip() for c in row.strip("|").split("|")] == ["True", "1.235e+04", "1e-05"]
    assert format_table([], columns=["x"]).split("\n")[0] == "| x   |"


def test_format_table_bad_inputs():
    with pytest.raises(ValueError, match="format_table.*column"):
        format_table([])
    with pytest.raises(ValueError, match=r"rows\[1\] must be a mapping"):
        format_table([{"a": 1}, [1, 2]])


# ------------------------------------------------------------------------------------- json
def test_save_results_json_round_trip(tmp_path):
    results = {
        "top1": torch.tensor(0.75),
        "per_class_f1": per_class_f1(HAND_CM),
        "cm": confusion_matrix(*_labels_from_cm(HAND_CM), 3),
        "n": np.int64(20),
        "kappa": np.float32(0.5),
        "nested": {"shape": (2, 3), "arr": np.arange(3), 7: "int key"},
        "undefined": math.nan,
        "path": tmp_path / "x",
    }
    path = save_results_json(tmp_path / "sub" / "results.json", results)
    assert path == tmp_path / "sub" / "results.json"
    loaded = json.loads(path.read_text())
    assert loaded["top1"] == 0.75 and isinstance(loaded["top1"], float)
    assert loaded["per_class_f1"] == pytest.approx(HAND_F1)
    assert loaded["cm"] == HAND_CM
    assert loaded["n"] == 20 and isinstance(loaded["n"], int)
    assert loaded["kappa"] == 0.5
    assert loaded["nested"] == {"shape": [2, 3], "arr": [0, 1, 2], "7": "int key"}
    assert math.isnan(loaded["undefined"])
    assert loaded["path"] == str(tmp_path / "x")
    assert os.listdir(path.parent) == ["results.json"]  # no temp file left behind


def test_save_results_json_overwrites_atomically_and_keeps_old_on_failure(tmp_path):
    path = tmp_path / "r.json"
    save_results_json(path, {"a": 1})
    save_results_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    with pytest.raises(TypeError, match="results.*'bad'"):
        save_results_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"a": 2}  # old content untouched
    assert os.listdir(tmp_path) == ["r.json"]
    with pytest.raises(ValueError, match="results.*mapping"):
        save_results_json(path, [1, 2])

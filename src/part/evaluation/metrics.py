"""Evaluation metrics: downstream classification scores, pretext translation errors, reporting.

Everything here is a pure function on tensors (NumPy arrays and nested lists are accepted too and
converted with :func:`torch.as_tensor`). Scalar results are returned as Python ``float``; per-class
results and confusion matrices as ``torch.Tensor``. Nothing loops over samples in Python.

What the paper reports and where it lives here:

* Image classification accuracy (Sec. 5, Tables 4, 6, 7): :func:`topk_accuracy`.
* Sleep staging "accuracy represented using Cohen's Kappa" (Sec. 5, Table 3; 1D time series):
  :func:`cohen_kappa` / :func:`cohen_kappa_from_confusion`, with :func:`macro_f1` and
  :func:`balanced_accuracy` as the usual companions for the class-imbalanced sleep stages.
* Pretext quality, "accuracy, l2 error, and the mean squared error in x and y dimensions"
  (Appendix, image classification setup): :func:`translation_errors` on the relative translations
  ``theta = ((x_tgt - x_ref) / w_ref, (y_tgt - y_ref) / h_ref)`` of Sec. 4.
* Printing and storing results for the CLI: :func:`format_table`, :func:`save_results_json`.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import write_json

__all__ = [
    "topk_accuracy",
    "confusion_matrix",
    "cohen_kappa",
    "cohen_kappa_from_confusion",
    "per_class_f1",
    "macro_f1",
    "balanced_accuracy",
    "classification_metrics",
    "translation_errors",
    "format_table",
    "save_results_json",
]


# --------------------------------------------------------------------------------------------------
# input helpers
# --------------------------------------------------------------------------------------------------
def _as_tensor(x: Any, name: str) -> torch.Tensor:
    """Convert a tensor / NumPy array / (nested) sequence to a tensor, naming ``name`` on failure."""
    if isinstance(x, torch.Tensor):
        return x.detach()
    try:
        return torch.as_tensor(np.asarray(x))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{name} must be a tensor, array or sequence of numbers ({exc})") from exc


def _as_labels(x: Any, name: str) -> torch.Tensor:
    """A 1D integer tensor of class indices, shape ``(N,)``."""
    t = _as_tensor(x, name)
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class indices, got dtype {t.dtype}")
    if t.ndim != 1:
        raise ValueError(f"{name} must have shape (N,), got {tuple(t.shape)}")
    return t.long()


def _check_range(labels: torch.Tensor, num_classes: int, name: str) -> None:
    """Raise a ``ValueError`` naming the first label outside ``[0, num_classes)``."""
    bad = (labels < 0) | (labels >= num_classes)
    if bool(bad.any()):
        first = int(labels[bad][0])
        count = int(bad.sum())
        raise ValueError(
            f"{name} contains label {first} outside [0, num_classes) with num_classes={num_classes} "
            f"({count} offending value{'s' if count != 1 else ''})"
        )


def _check_num_classes(num_classes: Any) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return int(num_classes)


def _as_confusion(cm: Any) -> torch.Tensor:
    """Validate a ``(K, K)`` confusion matrix of non-negative integer counts; returns int64."""
    t = _as_tensor(cm, "cm")
    if t.ndim != 2 or t.shape[0] != t.shape[1] or t.shape[0] == 0:
        raise ValueError(f"cm must be a square (K, K) matrix with K >= 1, got shape {tuple(t.shape)}")
    if t.dtype == torch.bool or t.dtype.is_complex:
        raise ValueError(f"cm must hold integer counts, got dtype {t.dtype}")
    if t.dtype.is_floating_point:
        if not bool(torch.isfinite(t).all()) or not bool((t == t.round()).all()):
            raise ValueError("cm must hold integer counts; found non-integral or non-finite entries")
    if bool((t < 0).any()):
        raise ValueError(f"cm must hold non-negative counts; found minimum {t.min().item()}")
    return t.long()


# --------------------------------------------------------------------------------------------------
# classification
# --------------------------------------------------------------------------------------------------
def topk_accuracy(logits: Any, labels: Any, ks: Iterable[int] = (1, 5)) -> dict[str, float]:
    """Top-k accuracy for each ``k`` in ``ks`` (Sec. 5: ImageNet-1K / CIFAR-100 accuracy).

    Args:
        logits: ``(N, K)`` class scores (any monotone score: logits, probabilities, ...). NaN is
            rejected because it has no rank.
        labels: ``(N,)`` integer class indices in ``[0, K)``.
        ks: the ``k`` values. A ``k`` larger than ``K`` is clipped to ``K`` (so ``top5`` with three
            classes is 1.0); the result key keeps the requested ``k``.

    Returns:
        ``{"top1": float, "top5": float, ...}``, each the fraction in ``[0, 1]`` of samples whose
        true class is among the ``k`` highest scores.

    Ties are broken deterministically, the same way as :func:`torch.argmax`: among equal scores the
    lower class index ranks first. The rank of the true class is therefore
    ``#{j : s_j > s_y} + #{j < y : s_j == s_y}``, and a sample counts as correct at ``k`` iff that
    rank is ``< k``. This is computed for all samples at once in ``O(N K)`` without sorting.
    """
    logits_t = _as_tensor(logits, "logits")
    if logits_t.ndim != 2:
        raise ValueError(f"logits must have shape (N, K), got {tuple(logits_t.shape)}")
    n, k_classes = logits_t.shape
    labels_t = _as_labels(labels, "labels").to(logits_t.device)
    if labels_t.shape[0] != n:
        raise ValueError(f"labels has {labels_t.shape[0]} entries but logits has {n} rows")
    if n == 0 or k_classes == 0:
        raise ValueError(f"logits must be non-empty, got shape {tuple(logits_t.shape)}")
    if logits_t.dtype.is_floating_point and bool(torch.isnan(logits_t).any()):
        raise ValueError("logits contain NaN; top-k accuracy is undefined")
    _check_range(labels_t, k_classes, "labels")
    ks = tuple(ks)
    if not ks:
        raise ValueError("ks must name at least one k")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"ks must hold positive integers, got {k!r}")

    true_score = logits_t.gather(1, labels_t[:, None])  # (N, 1)
    cls = torch.arange(k_classes, device=logits_t.device)[None, :]  # (1, K)
    ahead = (logits_t > true_score) | ((logits_t == true_score) & (cls < labels_t[:, None]))
    rank = ahead.sum(dim=1)  # (N,) 0 = predicted class
    return {f"top{k}": float((rank < min(int(k), k_classes)).double().mean()) for k in ks}


def confusion_matrix(pred: Any, target: Any, num_classes: int) -> torch.Tensor:
    """Count matrix of (true class, predicted class) pairs.

    Args:
        pred: ``(N,)`` predicted class indices (take ``logits.argmax(-1)`` first).
        target: ``(N,)`` true class indices.
        num_classes: ``K``; every label must lie in ``[0, K)``, otherwise ``ValueError`` naming the
            argument, the offending value and ``num_classes``.

    Returns:
        ``(K, K)`` int64 tensor ``cm`` with **rows = true class, columns = predicted class**:
        ``cm[i, j]`` is the number of samples of true class ``i`` predicted as ``j`` (the same
        orientation as ``sklearn.metrics.confusion_matrix(y_true, y_pred)``). Row sums are the class
        supports, column sums the prediction counts, the trace the number of correct predictions.
    """
    k = _check_num_classes(num_classes)
    pred_t = _as_labels(pred, "pred")
    target_t = _as_labels(target, "target").to(pred_t.device)
    if pred_t.shape != target_t.shape:
        raise ValueError(
            "pred and target must have the same shape (N,), "
            f"got {tuple(pred_t.shape)} and {tuple(target_t.shape)}"
        )
    _check_range(target_t, k, "target")
    _check_range(pred_t, k, "pred")
    flat = target_t * k + pred_t  # (N,) row-major index of (true, pred)
    return torch.bincount(flat, minlength=k * k).reshape(k, k)


def cohen_kappa_from_confusion(cm: Any) -> float:
    """Unweighted Cohen's kappa from a ``(K, K)`` confusion matrix (Sec. 5, Table 3: sleep staging).

    With ``n = sum(cm)``, row sums ``r`` (true), column sums ``c`` (predicted)::

        p_o   = trace(cm) / n                 observed agreement
        p_e   = sum_i r_i * c_i / n**2        agreement expected by chance
        kappa = (p_o - p_e) / (1 - p_e)

    It is evaluated as ``(n * trace - sum r c) / (n**2 - sum r c)`` in exact int64 arithmetic, so
    the degenerate case is detected without rounding error.

    Degenerate case ``p_e == 1``: this happens only when every sample is of one class *and* every
    prediction is that same class, which forces ``p_o == 1``; kappa is then ``0 / 0``. We return
    **1.0** (the agreement is perfect, and a finite value keeps per-subject averages usable).
    Note that ``sklearn.metrics.cohen_kappa_score`` returns NaN there by default.

    Raises:
        ValueError: ``cm`` is not a square matrix of non-negative integer counts, or is all zero.
    """
    cm_t = _as_confusion(cm)
    n = int(cm_t.sum())
    if n == 0:
        raise ValueError("cm is all zeros; Cohen's kappa needs at least one sample")
    agree = int(cm_t.diagonal().sum())
    chance = int((cm_t.sum(dim=1) * cm_t.sum(dim=0)).sum())  # sum_i r_i c_i = n^2 p_e
    denom = n * n - chance
    if denom == 0:
        return 1.0
    return (n * agree - chance) / denom


def cohen_kappa(pred: Any, target: Any, num_classes: int | None = None) -> float:
    """Unweighted Cohen's kappa between predictions ``(N,)`` and targets ``(N,)``.

    ``num_classes`` defaults to ``max(pred.max(), target.max()) + 1``; labels must be non-negative.
    Kappa does not depend on empty classes, so the default is only a convenience. See
    :func:`cohen_kappa_from_confusion` for the formula and the degenerate case (returns 1.0).
    """
    if num_classes is None:
        pred_t = _as_labels(pred, "pred")
        target_t = _as_labels(target, "target")
        if pred_t.numel() == 0 or target_t.numel() == 0:
            raise ValueError("pred and target must be non-empty to infer num_classes")
        for name, t in (("pred", pred_t), ("target", target_t)):
            if bool((t < 0).any()):
                raise ValueError(f"{name} contains negative label {int(t.min())}; labels must be >= 0")
        num_classes = int(max(int(pred_t.max()), int(target_t.max()))) + 1
    return cohen_kappa_from_confusion(confusion_matrix(pred, target, num_classes))


def per_class_f1(cm: Any) -> torch.Tensor:
    """Per-class F1 from a ``(K, K)`` confusion matrix (rows true, columns predicted).

    ``F1_i = 2 TP_i / (2 TP_i + FP_i + FN_i)`` with ``TP_i = cm[i, i]``, ``FP_i`` the rest of column
    ``i`` and ``FN_i`` the rest of row ``i``.

    Returns:
        ``(K,)`` float64 tensor. A class that never occurs, neither as target nor as prediction,
        has F1 ``0 / 0``; it is **NaN** so that :func:`macro_f1` can leave it out (as scikit-learn
        does for labels absent from both ``y_true`` and ``y_pred``). A class that occurs on one
        side only has F1 0.
    """
    cm_t = _as_confusion(cm).double()
    tp = cm_t.diagonal()
    denom = cm_t.sum(dim=0) + cm_t.sum(dim=1)  # = 2 TP + FP + FN
    return torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.full_like(tp, math.nan))


def macro_f1(cm: Any) -> float:
    """Unweighted mean of :func:`per_class_f1` over classes present in targets or predictions."""
    f1 = per_class_f1(cm)
    present = ~torch.isnan(f1)
    if not bool(present.any()):
        raise ValueError("cm is all zeros; macro F1 needs at least one sample")
    return float(f1[present].mean())


def balanced_accuracy(cm: Any) -> float:
    """Mean per-class recall ``cm[i, i] / sum(cm[i, :])`` over classes with non-zero support.

    Classes with no true samples are left out (scikit-learn's ``balanced_accuracy_score`` does the
    same, with a warning). Equals plain accuracy when all classes have equal support.
    """
    cm_t = _as_confusion(cm).double()
    support = cm_t.sum(dim=1)
    present = support > 0
    if not bool(present.any()):
        raise ValueError("cm is all zeros; balanced accuracy needs at least one sample")
    return float((cm_t.diagonal()[present] / support[present]).mean())


def classification_metrics(pred: Any, target: Any, num_classes: int) -> dict[str, float]:
    """Accuracy, Cohen's kappa, macro F1 and balanced accuracy from ``(N,)`` predictions/targets.

    One confusion matrix is built and shared; keys are ``accuracy``, ``kappa``, ``macro_f1``,
    ``balanced_accuracy``.
    """
    cm = confusion_matrix(pred, target, num_classes)
    n = int(cm.sum())
    if n == 0:
        raise ValueError("pred and target are empty; classification metrics need at least one sample")
    return {
        "accuracy": int(cm.diagonal().sum()) / n,
        "kappa": cohen_kappa_from_confusion(cm),
        "macro_f1": macro_f1(cm),
        "balanced_accuracy": balanced_accuracy(cm),
    }


# --------------------------------------------------------------------------------------------------
# pretext: relative translation errors
# --------------------------------------------------------------------------------------------------
_COMPONENTS = {
    # (spatial_dims, k) -> names of the last-axis components
    (2, 2): ("x", "y"),
    (2, 4): ("x", "y", "w", "h"),
    (1, 1): ("t",),
    (1, 2): ("t", "len"),
}


def translation_errors(pred: Any, target: Any, spatial_dims: int = 2) -> dict[str, float]:
    """Errors of predicted relative translations ``theta_hat`` against ``theta`` (Sec. 4).

    The paper reports "the l2 error, and the mean squared error in x and y dimensions"
    (Appendix, image classification); for 1D signals theta is the relative time shift ``Delta t``
    (Sec. 5, time series).

    Args:
        pred, target: ``(..., k)`` tensors of the same shape; all leading axes (e.g. ``(B, M)``
            for batch and pairs) are averaged over. The last axis is, for ``spatial_dims=2``:
            ``k=2`` ``(dx, dy)`` or ``k=4`` ``(dx, dy, dw, dh)`` (the scale/aspect-ratio
            extension of Table 1); for ``spatial_dims=1``: ``k=1`` ``(dt,)`` or ``k=2``
            ``(dt, dlen)``.
        spatial_dims: 2 for images, 1 for time series. Needed because ``k=2`` means
            ``(dx, dy)`` in 2D but ``(dt, dlen)`` in 1D.

    Returns:
        dict of floats:

        * ``err_<c>`` for every component ``c`` above (``err_x``, ``err_y``, ``err_w``, ``err_h``,
          ``err_t``, ``err_len``): mean squared error of that component.
        * ``err_euclid``: mean l2 distance ``||theta_hat - theta||_2`` of the translation part
          only, ``(dx, dy)`` in 2D and ``dt`` in 1D (where it is the mean absolute error of dt).
        * ``mse``: mean squared error over all ``k`` components, i.e. the training loss
          ``L_MSE`` of Sec. 4 when ``k=2``.
    """
    if spatial_dims not in (1, 2):
        raise ValueError(f"spatial_dims must be 1 or 2, got {spatial_dims!r}")
    pred_t = _as_tensor(pred, "pred")
    target_t = _as_tensor(target, "target").to(pred_t.device)
    if pred_t.shape != target_t.shape:
        raise ValueError(
            "pred and target must have the same shape (..., k), "
            f"got {tuple(pred_t.shape)} and {tuple(target_t.shape)}"
        )
    if pred_t.ndim == 0:
        raise ValueError("pred and target must have shape (..., k), got scalars")
    k = pred_t.shape[-1]
    names = _COMPONENTS.get((spatial_dims, k))
    if names is None:
        allowed = sorted(kk for (d, kk) in _COMPONENTS if d == spatial_dims)
        raise ValueError(
            f"last axis k={k} is not supported for spatial_dims={spatial_dims}; expected k in {allowed}"
        )
    if pred_t.numel() == 0:
        raise ValueError(f"pred and target are empty (shape {tuple(pred_t.shape)})")

    from ..objectives.part import translation_metrics  # the training loop's definition, one copy

    pred_d, target_d = pred_t.double(), target_t.double()
    out = {name: float(v) for name, v in translation_metrics(pred_d, target_d, spatial_dims).items()}
    out["mse"] = float((pred_d - target_d).square().mean())
    return out


# --------------------------------------------------------------------------------------------------
# reporting
# --------------------------------------------------------------------------------------------------
def _scalar(value: Any) -> Any:
    """Unwrap 0-d / single-element tensors and NumPy scalars/arrays into Python scalars."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _format_cell(value: Any) -> str:
    value = _scalar(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return f"{float(value):.4g}"
    text = str(value).replace("\n", " ")
    return text.replace("|", "\\|")


def _is_numeric(value: Any) -> bool:
    value = _scalar(value)
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Render result rows as an aligned Markdown (pipe) table that also reads as plain text.

    Args:
        rows: one mapping per row, e.g. ``[{"method": "PART", "top1": 0.8263}, ...]``.
        columns: column order; default is every key in order of first appearance across rows.
            A key missing from a row gives an empty cell.

    Cell formatting: floats with 4 significant digits (``format(x, ".4g")``), integers in full,
    ``None`` empty, one-element tensors / NumPy scalars unwrapped, ``|`` escaped. Columns whose
    non-empty cells are all numbers are right-aligned (Markdown ``---:``), others left-aligned.

    Returns:
        The table as a string without a trailing newline: header line, separator line, one line
        per row.
    """
    rows = list(rows)
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"rows[{i}] must be a mapping of column -> value, got {type(row).__name__}")
    if columns is None:
        seen: dict[str, None] = {}
        for row in rows:
            for key in row:
                seen.setdefault(key, None)
        columns = list(seen)
    else:
        columns = list(columns)
    if not columns:
        raise ValueError("format_table needs at least one column (rows are empty and no columns given)")

    cells = [[_format_cell(row.get(c)) for c in columns] for row in rows]
    numeric = [
        any(row.get(c) is not None for row in rows)
        and all(_is_numeric(row.get(c)) for row in rows if row.get(c) is not None)
        for c in columns
    ]
    header = [_format_cell(str(c)) for c in columns]
    widths = [max([3, len(h)] + [len(r[j]) for r in cells]) for j, h in enumerate(header)]

    def line(parts: list[str]) -> str:
        padded = [p.rjust(w) if num else p.ljust(w) for p, w, num in zip(parts, widths, numeric)]
        return "| " + " | ".join(padded) + " |"

    rules = [("-" * (w - 1) + ":") if num else "-" * w for w, num in zip(widths, numeric)]
    sep = "| " + " | ".join(rules) + " |"
    return "\n".join([line(header), sep] + [line(r) for r in cells])


def _to_jsonable(value: Any, where: str) -> Any:
    """Recursively convert tensors / NumPy values / paths / tuples into JSON-native objects."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return value.item() if value.ndim == 0 else value.tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        out = {}
        for key, sub in value.items():
            key = _scalar(key)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise TypeError(
                    f"results{where} has a key of type {type(key).__name__}; JSON keys must be str/int/float"
                )
            out[str(key) if not isinstance(key, str) else key] = _to_jsonable(sub, f"{where}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(sub, f"{where}[{i}]") for i, sub in enumerate(value)]
    raise TypeError(
        f"results{where} has a value of type {type(value).__name__} that cannot be written as JSON"
    )


def save_results_json(path: str | os.PathLike, results: Mapping[str, Any]) -> Path:
    """Write ``results`` to ``path`` as indented JSON, atomically.

    Tensors become numbers (0-d) or nested lists, NumPy scalars/arrays likewise, ``Path`` becomes a
    string, tuples become lists, non-string keys are stringified (as ``json`` does). NaN and
    infinities are written as ``NaN`` / ``Infinity`` (Python's ``json`` default, which
    ``json.load`` reads back). Written atomically (:func:`part.io.write_json`), so a reader never sees a
    half-written file. Parent directories are created.

    Returns:
        The path written.

    Raises:
        ValueError: ``results`` is not a mapping.
        TypeError: a value cannot be represented in JSON (the message names its key path).
    """
    if not isinstance(results, Mapping):
        raise ValueError(f"results must be a mapping, got {type(results).__name__}")
    path = Path(path)
    data = _to_jsonable(results, "")
    write_json(path, data, default=None)
    return path

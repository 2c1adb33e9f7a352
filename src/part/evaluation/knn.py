"""Weighted k-nearest-neighbour classification of frozen features (the SSL kNN monitor).

As in InstDisc (Wu et al. 2018) and DINO (Caron et al. 2021, ``eval_knn.py``): features are L2-normalised,
the similarity is the cosine ``s = <f_test, f_train>``, the ``k`` most similar training samples vote for
their class with weight ``exp(s / T)`` (T = 0.07), and the class with the largest summed weight wins. The
defaults (k = 20, T = 0.07) are DINO's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

KNN_K = 20  # neighbours (DINO's default); every kNN default in the package reads these two
KNN_TEMPERATURE = 0.07  # T of the vote weights exp(s / T)


def knn_scores(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    num_classes: int,
    k: int = KNN_K,
    temperature: float = KNN_TEMPERATURE,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Class scores ``(N_test, num_classes)``: the summed vote weights ``exp(s / T)`` of each test sample's
    ``k`` nearest (cosine) training samples per class.

    Args:
        train_features: ``(N_train, d)``. train_labels: ``(N_train,)`` int in ``[0, num_classes)``.
        test_features: ``(N_test, d)``.
        k: neighbours; clipped to ``N_train``.
        temperature: T of the vote weights.
        chunk_size: test samples per similarity block (memory ``chunk_size x N_train``).

    Ties in similarity are broken by :func:`torch.topk`. ``argmax`` of the result is the prediction; the
    scores also give top-5 accuracy.
    """
    if train_features.dim() != 2 or test_features.dim() != 2:
        raise ValueError(f"features must be (N, d), got train {tuple(train_features.shape)} and test "
                         f"{tuple(test_features.shape)}")
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(f"train and test features differ in width: {train_features.shape[1]} vs "
                         f"{test_features.shape[1]}")
    train_labels = torch.as_tensor(train_labels).long().reshape(-1)
    if train_labels.shape[0] != train_features.shape[0]:
        raise ValueError(f"train_labels has {train_labels.shape[0]} entries for {train_features.shape[0]} features")
    if train_features.shape[0] == 0:
        raise ValueError("kNN needs at least one training sample")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if bool(((train_labels < 0) | (train_labels >= num_classes)).any()):
        bad = train_labels[(train_labels < 0) | (train_labels >= num_classes)][0]
        raise ValueError(f"train_labels contains label {int(bad)} outside [0, num_classes) with num_classes={num_classes}")
    k = min(k, train_features.shape[0])
    train = F.normalize(train_features.float(), dim=1)
    test = F.normalize(test_features.float(), dim=1).to(train.device)
    labels = train_labels.to(train.device)
    out = []
    for start in range(0, test.shape[0], chunk_size):
        sim = test[start:start + chunk_size] @ train.T  # (b, N_train) cosine similarities
        top_sim, top_idx = sim.topk(k, dim=1)  # (b, k)
        weights = (top_sim / temperature).exp()
        scores = torch.zeros(sim.shape[0], num_classes, device=sim.device)
        out.append(scores.scatter_add_(1, labels[top_idx], weights))  # votes summed per class
    return torch.cat(out) if out else torch.zeros(0, num_classes)


def knn_predict(train_features, train_labels, test_features, num_classes: int, k: int = KNN_K,
                temperature: float = KNN_TEMPERATURE) -> torch.Tensor:
    """Predicted classes ``(N_test,)`` = argmax of :func:`knn_scores`."""
    return knn_scores(train_features, train_labels, test_features, num_classes, k, temperature).argmax(dim=1)


__all__ = ["knn_scores", "knn_predict", "KNN_K", "KNN_TEMPERATURE"]

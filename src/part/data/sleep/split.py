"""Subject-wise pretrain / finetune / test split of paper App. 8.1: the test subjects are "held out from both
pretraining and finetuning stages"; fine-tuning uses "10 subjects" (a low-label regime)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SplitOptions", "PAPER_SPLIT", "SubjectSplit", "subject_split"]


@dataclass(frozen=True)
class SplitOptions:
    """The split's settings (``data.options`` of every sleep kind); see :func:`subject_split`."""

    RULES = {"n_test": "a count or a fraction of the subjects"}  # how a bad value's message says the type

    n_finetune: int = 10
    n_test: int | float = 0.2
    split_seed: int = 0
    finetune_in_pretrain: bool = True


PAPER_SPLIT = SplitOptions()
"""The one home of the split defaults: 10 fine-tune subjects, 20% of the subjects held out, seed 0."""


@dataclass(frozen=True)
class SubjectSplit:
    """Window indices (``int64``, sorted) of the three sets of App. 8.1, and their subjects."""

    pretrain: np.ndarray
    finetune: np.ndarray
    test: np.ndarray
    pretrain_subjects: tuple[str, ...]
    finetune_subjects: tuple[str, ...]
    test_subjects: tuple[str, ...]


def subject_split(
    subjects,
    n_finetune: int = PAPER_SPLIT.n_finetune,
    n_test: int | float = PAPER_SPLIT.n_test,
    seed: int = PAPER_SPLIT.split_seed,
    finetune_in_pretrain: bool = PAPER_SPLIT.finetune_in_pretrain,
) -> SubjectSplit:
    """Split windows by subject into the pretrain / finetune / test sets of App. 8.1.

    The paper pre-trains on all training subjects (labels unused), fine-tunes on recordings of 10 subjects
    ("to simulate a low-labeled data regime") and tests on subjects "held out from both pretraining and
    finetuning stages". Here:

    * ``test``: ``n_test`` subjects drawn at random (an ``int`` count, or a ``float`` fraction in (0, 1) of
      the subjects, rounded, at least 1);
    * ``finetune``: ``n_finetune`` other subjects drawn at random;
    * ``pretrain``: every non-test subject. Pretrain and finetune *may overlap* (the finetune subjects are a
      subset of the pretrain subjects, as in the paper, where pretraining uses no labels); pass
      ``finetune_in_pretrain=False`` to make them disjoint.
    * The test subjects are disjoint from both pretrain and finetune, always.

    Args:
        subjects: ``(W,)`` subject id of every window (e.g. ``SleepRecording.subject``).
        seed: the draw is a permutation of the sorted distinct ids by ``numpy.random.default_rng(seed)``.

    Returns:
        :class:`SubjectSplit` with sorted ``int64`` window indices per set and the subject ids.
    """
    subj = np.asarray(subjects).astype(str).reshape(-1)
    uniq = np.unique(subj)
    n_subj = uniq.size
    if isinstance(n_test, (float, np.floating)):
        if not 0 < n_test < 1:
            raise ValueError(f"n_test given as a float is a fraction of the subjects and must be in (0, 1), got {n_test}")
        n_test = max(1, int(round(n_test * n_subj)))
    n_test = int(n_test)
    if n_test < 1:
        raise ValueError(f"n_test must be >= 1, got {n_test}")
    if n_finetune < 1:
        raise ValueError(f"n_finetune must be >= 1, got {n_finetune}")
    if n_test + n_finetune > n_subj:
        raise ValueError(
            f"n_finetune={n_finetune} + n_test={n_test} subjects exceed the {n_subj} distinct subjects"
        )
    if not finetune_in_pretrain and n_test + n_finetune == n_subj:
        raise ValueError(
            f"finetune_in_pretrain=False leaves no pretraining subject: n_finetune={n_finetune} + "
            f"n_test={n_test} == {n_subj} subjects"
        )
    perm = uniq[np.random.default_rng(seed).permutation(n_subj)]
    test_s = np.sort(perm[:n_test])
    fine_s = np.sort(perm[n_test : n_test + n_finetune])
    pre_s = np.sort(perm[n_test:] if finetune_in_pretrain else perm[n_test + n_finetune :])

    def where(ids: np.ndarray) -> np.ndarray:
        return np.flatnonzero(np.isin(subj, ids)).astype(np.int64)

    return SubjectSplit(
        where(pre_s), where(fine_s), where(test_s),
        tuple(pre_s.tolist()), tuple(fine_s.tolist()), tuple(test_s.tolist()),
    )

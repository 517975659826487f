"""Patient-grouped, seeded K-fold splits and a validation split carved from the training folds."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import GroupKFold, GroupShuffleSplit


def assign_folds(patient_ids: np.ndarray, n_folds: int = 4, seed: int = 1337) -> np.ndarray:
    """Test-fold index ``[P]`` (0..n_folds-1) per case; all cases of a patient share a fold.

    Groups are shuffled with ``seed`` and then balanced by case count (scikit-learn's GroupKFold).
    """
    patient_ids = np.asarray(patient_ids).astype(str)
    unique = np.unique(patient_ids)
    if len(unique) < n_folds:
        raise ValueError(f"need at least {n_folds} patients for {n_folds} folds, got {len(unique)}")
    rng = np.random.default_rng(seed)
    shuffled_names = dict(zip(unique, rng.permutation(len(unique))))
    groups = np.array([shuffled_names[p] for p in patient_ids])
    folds = np.empty(len(patient_ids), dtype=np.int64)
    splitter = GroupKFold(n_splits=n_folds)
    for fold, (_, test_idx) in enumerate(splitter.split(np.zeros(len(groups)), groups=groups)):
        folds[test_idx] = fold
    return folds


def split_indices(
    folds: np.ndarray,
    patient_ids: np.ndarray,
    test_fold: int,
    val_fraction: float = 0.1,
    seed: int = 1337,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train, val, test)`` case indices for one test fold; ``val`` is patient-grouped.

    With ``val_fraction == 0`` the validation split is empty.
    """
    folds = np.asarray(folds)
    n_folds = int(folds.max()) + 1
    if not 0 <= test_fold < n_folds:
        raise ValueError(f"test_fold must be in 0..{n_folds - 1}, got {test_fold}")
    test = np.flatnonzero(folds == test_fold)
    rest = np.flatnonzero(folds != test_fold)
    if val_fraction <= 0:
        return rest, np.empty(0, dtype=np.int64), test
    groups = np.asarray(patient_ids).astype(str)[rest]
    splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed + test_fold)
    train_pos, val_pos = next(splitter.split(rest, groups=groups))
    return np.sort(rest[train_pos]), np.sort(rest[val_pos]), test

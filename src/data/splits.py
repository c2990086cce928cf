"""Seeded, stable train/valid/test splits of an array of inputs and one of targets (labels, values, ...)."""

from __future__ import annotations

import numpy as np
import torch

from src.data.in_memory import Split


def split_arrays(
    x: np.ndarray, y: np.ndarray, n_valid: int, n_test: int, seed: int = 0, limit: int | None = None
) -> dict[str, Split]:
    """Shuffle once with `seed`, optionally keep the first `limit` examples, then cut test, valid, train."""
    order = np.random.RandomState(seed).permutation(len(y))
    if limit is not None:
        order = order[:limit]
    test, valid, train = order[:n_test], order[n_test : n_test + n_valid], order[n_test + n_valid :]
    # targets keep their dtype: int64 labels, float values
    return {
        name: Split(torch.as_tensor(x[idx]), torch.as_tensor(y[idx]))
        for name, idx in (("train", train), ("valid", valid), ("test", test))
    }

"""scikit-learn's 8x8 handwritten digits (1,797 images; ships inside scikit-learn, no download)."""

from __future__ import annotations

import numpy as np

from src.data.in_memory import InMemoryDataModule, Split
from src.data.registry import DATA
from src.data.splits import split_arrays


@DATA.register("digits")
class Digits(InMemoryDataModule):
    """Train 1,197 / valid 300 / test 300 (toy: 200 / 50 / 50), split with a fixed seed."""

    input_shape = (1, 8, 8)
    n_classes = 10

    def __init__(self, batch_size: int = 64, seed: int = 0, toy: bool = False) -> None:
        self.toy = toy
        super().__init__(batch_size=batch_size, seed=seed)

    def load(self) -> dict[str, Split]:
        from sklearn.datasets import load_digits  # heavy import, only when this data set is used

        digits = load_digits()
        x = (digits.images / 16.0).astype(np.float32)[:, None]
        if self.toy:
            return split_arrays(x, digits.target, n_valid=50, n_test=50, limit=300)
        return split_arrays(x, digits.target, n_valid=300, n_test=300)

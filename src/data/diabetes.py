"""scikit-learn's diabetes data (442 patients, 10 features, disease progression after a year; ships inside
scikit-learn, no download): a small regression task.

Features and target are standardised with the training split's mean and standard deviation, so an MSE of 1.0 is
as good as always predicting the training mean.
"""

from __future__ import annotations

import numpy as np

from src.data.digits import sklearn_data_file
from src.data.in_memory import InMemoryDataModule, Split
from src.data.registry import DATA
from src.data.splits import split_arrays


@DATA.register("diabetes")
class Diabetes(InMemoryDataModule):
    """Train 310 / valid 66 / test 66, split with a fixed seed; targets are float tensors of shape (N, 1)."""

    input_shape = (10,)
    n_outputs = 1  # one value to predict

    def __init__(self, batch_size: int = 32, seed: int = 0, device_resident: bool | None = None) -> None:
        super().__init__(batch_size=batch_size, seed=seed, device_resident=device_resident)

    def load(self) -> dict[str, Split]:
        x = np.loadtxt(sklearn_data_file("diabetes_data_raw.csv.gz")).astype(np.float32)
        y = np.loadtxt(sklearn_data_file("diabetes_target.csv.gz")).astype(np.float32).reshape(-1, 1)
        splits = split_arrays(x, y, n_valid=66, n_test=66)
        train = splits["train"]
        x_mean, x_std, y_mean, y_std = train.x.mean(0), train.x.std(0), train.y.mean(0), train.y.std(0)
        return {name: Split((s.x - x_mean) / x_std, (s.y - y_mean) / y_std) for name, s in splits.items()}

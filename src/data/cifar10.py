"""CIFAR-10 from the standard `cifar-10-batches-py` folder under DATA_DIR (get it with `bin/download_data.py cifar10`).

Images stay uint8 in memory (150 MB); each batch is normalised, and augmented for training, as a whole.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from src.data.download import data_dir
from src.data.in_memory import InMemoryDataModule, Split
from src.data.registry import DATA
from src.data.splits import split_arrays
from src.errors import UserError

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILE = "test_batch"
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """The batch files are pickles: allow only the numpy objects they contain, never arbitrary code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        return super().find_class(module, name)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (uint8 images N x 3 x 32 x 32, int64 labels N)."""
    try:
        with open(path, "rb") as f:
            batch = _NumpyOnlyUnpickler(f, encoding="bytes").load()
        images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise UserError(
            f"CIFAR-10 file {path} is corrupt ({e}); delete {path.parent} and run `bin/download_data.py cifar10` again."
        ) from e
    if len(images) != len(labels):
        raise UserError(f"CIFAR-10 file {path} is corrupt: {len(images)} images but {len(labels)} labels.")
    return images, labels


def read_folder(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    folder = root / FOLDER
    missing = [name for name in TRAIN_FILES + [TEST_FILE] if not (folder / name).is_file()]
    if missing:
        raise UserError(
            f"CIFAR-10 not found in {folder} (missing {missing[0]}); get it with "
            f"`bin/download_data.py cifar10 --data-dir {root}` (or set DATA_DIR)."
        )
    train = [read_batch(folder / name) for name in TRAIN_FILES]
    x_test, y_test = read_batch(folder / TEST_FILE)
    return np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), x_test, y_test


def augment(x: torch.Tensor) -> torch.Tensor:
    """Random horizontal flip and random 32x32 crop of the 4-pixel zero-padded image, for a whole batch, in a few
    kernels on the batch's device: the flip is folded into the column indices of the crop (the padding is
    symmetric), and the crop is two gathers (faster than one 4-D advanced index)."""
    n, c, h, w = x.shape
    device = x.device
    padded = F.pad(x, (4, 4, 4, 4))
    offsets = torch.randint(0, 9, (2, n, 1), device=device)  # top, left
    flip = torch.rand(n, 1, device=device) < 0.5
    rows = offsets[0] + torch.arange(h, device=device)
    cols = offsets[1] + torch.arange(w, device=device)
    cols = torch.where(flip, w + 7 - cols, cols)  # column j of the flipped padded image is column w + 7 - j
    rows = rows.view(n, 1, h, 1).expand(n, c, h, w + 8)
    return padded.gather(2, rows).gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))


@DATA.register("cifar10")
class Cifar10(InMemoryDataModule):
    """Train 45,000 / valid 5,000 (seeded split of the training batches) / test 10,000 (toy: 500 / 100 / 100)."""

    input_shape = (3, 32, 32)
    n_outputs = 10  # classes

    def __init__(
        self,
        batch_size: int = 128,
        seed: int = 0,
        toy: bool = False,
        augmentation: bool = True,
        root: str | Path | None = None,
        n_valid: int = 5000,
        device_resident: bool | None = None,
    ) -> None:
        self.toy, self.augmentation, self.n_valid = toy, augmentation, n_valid
        self.root = Path(root or data_dir())
        self._scale_shift: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        super().__init__(batch_size=batch_size, seed=seed, device_resident=device_resident)

    def load(self) -> dict[str, Split]:
        x_train, y_train, x_test, y_test = read_folder(self.root)
        n_valid = 100 if self.toy else self.n_valid
        splits = split_arrays(x_train, y_train, n_valid=n_valid, n_test=0, limit=600 if self.toy else None)
        test = slice(0, 100 if self.toy else None)
        splits["test"] = Split(torch.as_tensor(x_test[test]), torch.as_tensor(y_test[test]))
        return splits

    def transform(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        scale, shift = self._normalisation(x.device)
        x = torch.addcmul(shift, x.float(), scale)  # (x / 255 - MEAN) / STD in one kernel
        return augment(x) if train and self.augmentation else x

    def _normalisation(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel scale and shift on `device`, made once per device: a copy to a GPU per step would wait for
        it."""
        if device not in self._scale_shift:
            std, mean = torch.tensor(STD).view(1, 3, 1, 1), torch.tensor(MEAN).view(1, 3, 1, 1)
            self._scale_shift[device] = (1 / (255 * std)).to(device), (-mean / std).to(device)
        return self._scale_shift[device]

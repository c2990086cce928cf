"""litdata's StreamingDataset and StreamingDataLoader as the stream module (src/data/streaming.py) drives them:
following Lightning's epochs and resume, with workers that live as long as the loader.

Both classes are made on first use (`stream_classes()`): importing litdata takes ~0.15 s, which only runs that
stream should pay.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any


@functools.cache
def stream_classes() -> tuple[type, type]:
    """(EpochToldDataset, EpochFollowingLoader)."""
    import torch
    from litdata import StreamingDataLoader, StreamingDataset
    from torch.utils.data import get_worker_info

    class EpochToldDataset(StreamingDataset):
        """A StreamingDataset whose workers are told each iteration's epoch, and whether it resumes a loaded state,
        by the training process (through shared memory), so that they can live across epochs.

        litdata's workers keep the shuffle's epoch in their own copy of the data set: its loader starts new workers
        for every iteration (a copy with the epoch just set). Starting them cost the stream a third of its
        throughput on 2 CPU cores (each start makes the training process copy every page it then writes: 133k page
        faults in 5 s); a persistent worker's copy would keep its first epoch, or the state it resumed, for ever."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._told = torch.zeros(2, dtype=torch.int64).share_memory_()  # (epoch, resuming a loaded state)

        def set_epoch(self, current_epoch: int) -> None:  # litdata's loader calls it as each iteration starts
            super().set_epoch(current_epoch)  # (ignored while a loaded state waits: its epoch is the state's)
            self._told[0] = self.current_epoch
            self._told[1] = int(self._state_dict is not None)

        def __iter__(self) -> Any:
            if get_worker_info() is not None:  # in a worker: as a copy made now would be
                epoch, resuming = self._told.tolist()
                if not resuming:
                    self._state_dict = None
                    self.current_epoch = epoch
                if self.cache is not None:
                    # The previous iteration's reader: litdata's own clean-up of one stopped before its end (as
                    # Lightning stops at `len` batches, or a limit): its download thread (a remote data set's)
                    # would otherwise stay, one more each such epoch.
                    self.cache._reader.__del__()
            return super().__iter__()

    class EpochFollowingLoader(StreamingDataLoader):
        """litdata's loader as Lightning drives it:

        - its epoch (its shuffle's) is the training's when an epoch starts: litdata counts its own (one per
          `iter`), and a run resumed at an epoch's end gets no loader state from Lightning (only one stopped
          mid-epoch does), so its count would restart at 1;
        - a loaded state resumes the next iteration only: litdata clears its `restore` flag when an iteration runs
          to its end, which Lightning never asks for (it stops after `len` batches), so the epoch after a resumed
          one would try to resume again (and fail: "num_samples_yielded ... greater than the dataset length");
        - its workers are persistent (EpochToldDataset follows the epochs); a state loaded while they live starts
          new ones, which copy it (litdata resumes in the workers' copies of the data set);
        - its current iterator is kept (torch keeps only a persistent loader's): a worker killed while handing over
          a batch is then found dead (the same one line as any dead worker), and Lightning's teardown shuts the
          workers down, as does letting go of the loader."""

        epoch_of: Callable[[], int | None] = staticmethod(lambda: None)
        _loaded = False  # a state was loaded that no iteration has used yet
        restore: bool  # litdata's: the next iteration resumes from a loaded state
        _iterator: Any  # torch's: the workers' iterator, None before the first iteration

        def __init__(self, dataset: Any, **kwargs: Any) -> None:
            super().__init__(dataset, persistent_workers=kwargs.get("num_workers", 0) > 0, **kwargs)

        def load_state_dict(self, obj: dict[str, Any]) -> None:
            if self._iterator is not None and self.persistent_workers:
                self._iterator._shutdown_workers()
                self._iterator = None
            super().load_state_dict(obj)
            self._loaded = True

        def _get_iterator(self) -> Any:
            iterator = super()._get_iterator()
            if hasattr(iterator, "_loader"):  # litdata's iterator refers back: weakly, so that a loader let go of
                iterator._loader = weakref.proxy(self)  # shuts its workers down at once (not at a GC)
            self._iterator = iterator
            return iterator

        def __iter__(self) -> Any:  # a generator: this runs at the first batch, after Lightning's epoch set-up
            if self.restore and not self._loaded:
                self.restore = False  # left over from a resumed iteration that Lightning did not run to its end
            self._loaded = False
            epoch = self.epoch_of()
            if not self.restore and epoch is not None:  # (restoring: the epoch of the loaded state)
                self.current_epoch = epoch  # litdata adds 1 as the iteration starts
            yield from super().__iter__()

    return EpochToldDataset, EpochFollowingLoader

"""RNGState: saves every random number generator in the checkpoint and restores it on resume,
so that a stopped-and-resumed run is bit-identical to an uninterrupted one."""

from __future__ import annotations

import random

import numpy as np
import pytorch_lightning as pl
import torch

from src.training.callbacks.registry import CALLBACKS


class RNGState(pl.Callback):
    def state_dict(self) -> dict:
        kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # a tuple, not a dict
        state = {
            "python": random.getstate(),
            "numpy": {
                "kind": kind,
                "keys": torch.from_numpy(np.asarray(keys).astype(np.int64)),
                "pos": pos,
                "has_gauss": has_gauss,
                "cached_gaussian": cached,
            },
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        version, internal, gauss = state_dict["python"]
        random.setstate((version, tuple(internal), gauss))
        n = state_dict["numpy"]
        np.random.set_state(
            (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
        )
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


@CALLBACKS.register("rng_state")
def rng_state(run_dir: str) -> RNGState:
    return RNGState()

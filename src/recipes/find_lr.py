"""The learning-rate range test (Lightning's Tuner.lr_find) for a config: a short training with the learning rate
growing exponentially, the loss against it as a plot (lr_find.png), and the suggested learning rate (`valley`)
in lr_find.json, with the gin binding that uses it.

    lr_range_test(["configs/cnn.gin"], ["digits.toy = True"], "results/find_lr/cnn")
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gin

from src.errors import UserError
from src.run import layout


def lr_range_test(
    configs: Sequence[str],
    bindings: Sequence[str],
    out: str | Path,
    min_lr: float = 1e-6,
    max_lr: float = 1.0,
    num_training: int = 100,
) -> dict[str, Any]:
    """Run the test; write lr_find.png and lr_find.json into `out`; return what lr_find.json holds."""
    import pytorch_lightning as pl

    from src import config
    from src.training.lightning_trainer import trainer_defaults
    from src.training.parts import build_parts
    from src.training_loop import own_defaults

    if not (math.isfinite(min_lr) and math.isfinite(max_lr) and 0 < min_lr < max_lr):
        raise UserError(f"the learning rates must satisfy 0 < min_lr < max_lr < inf, got {min_lr!r} and {max_lr!r}.")
    if num_training < 2:
        raise UserError(f"the test needs at least 2 steps (--steps), got {num_training}.")
    config.parse(list(configs), list(bindings))
    args = {**trainer_defaults(), **own_defaults(), **gin.get_bindings("training_loop")}
    pl.seed_everything(args["seed"], verbose=False)
    parts = build_parts(args["data"], args["model"], args["module"], args["seed"])
    if not hasattr(parts.module, "lr"):
        raise UserError(f"module {args['module']!r} has no `lr` attribute: lr_find needs one to vary.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    found = range_test(parts, args, out, min_lr, max_lr, num_training)
    lrs, losses = [float(v) for v in found.results["lr"]], [float(v) for v in found.results["loss"]]
    index = valley(losses)
    suggestion = lrs[index] if index is not None else None
    write_plot(found, out / "lr_find.png", configs, index)
    result = {
        "suggested_lr": suggestion,
        "binding": f"{args['module']}.lr = {suggestion:.3g}" if suggestion is not None else None,
        "configs": list(configs),
        "bindings": list(bindings),
        "lr": lrs,
        "loss": losses,
    }
    layout.write_atomic(out / "lr_find.json", json.dumps(result, indent=2) + "\n")
    return result


def range_test(parts: Any, args: dict[str, Any], out: Path, min_lr: float, max_lr: float, num_training: int) -> Any:
    """Lightning's Tuner.lr_find on the built parts, its temporary checkpoint in `out` (removed)."""
    import pytorch_lightning as pl
    from pytorch_lightning.tuner import Tuner

    from src.training.lightning_trainer import quiet_lightning

    with quiet_lightning():
        trainer = pl.Trainer(
            default_root_dir=out,  # lr_find's temporary checkpoint goes here, and is removed
            logger=False,
            callbacks=[],
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=sys.stdout.isatty(),
            accelerator=args["accelerator"],
            devices=1,
            precision=args["precision"],
            num_sanity_val_steps=0,
        )
        found = Tuner(trainer).lr_find(
            parts.module,
            datamodule=parts.data,
            min_lr=min_lr,
            max_lr=max_lr,
            num_training=num_training,
            update_attr=False,
        )
    if found is None:  # only on processes other than rank 0
        raise UserError("the learning-rate range test found nothing (a process other than rank 0?)")
    return found


def write_plot(found: Any, path: Path, configs: Sequence[str], index: int | None) -> None:
    """The loss against the learning rate (Lightning's plot, log axis), titled with the configs, the suggested
    learning rate a labelled red dot (or the title says there is none)."""
    from src.figures import select_backend

    select_backend()
    import matplotlib.pyplot as plt

    figure = found.plot(suggest=False)
    ax = figure.axes[0]
    names = ", ".join(Path(c).name for c in configs) or "bindings only"
    if index is not None:
        lr, loss = float(found.results["lr"][index]), float(found.results["loss"][index])
        ax.plot(lr, loss, marker="o", markersize=10, color="red", linestyle="none", label=f"suggested: lr = {lr:.3g}")
        ax.annotate(f"{lr:.3g}", (lr, loss), xytext=(12, 12), textcoords="offset points", color="red")
        ax.legend()
    ax.set_title(f"learning-rate range test ({names})" + ("" if index is not None else ": the loss never fell"))
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


def valley(losses: Sequence[float]) -> int | None:
    """The index of the suggested learning rate: the longest stretch over which the loss keeps falling (a longest
    decreasing subsequence), half-way down it. fastai's `valley` rule: robust where the steepest slope
    (Lightning's suggestion) is not, e.g. to the noise and the smoothing's start-up bump at tiny learning rates,
    which made it suggest 1e-5 for configs/cnn.gin on digits. None if the loss never falls."""
    finite = [i for i, v in enumerate(losses) if v == v and abs(v) != float("inf")]
    longest = {i: 1 for i in finite}  # i -> length of the longest decreasing run ending at i
    before: dict[int, int | None] = {i: None for i in finite}
    for n, i in enumerate(finite):
        for j in finite[:n]:
            if losses[j] > losses[i] and longest[j] + 1 > longest[i]:
                longest[i], before[i] = longest[j] + 1, j
    if not finite or max(longest.values()) < 2:
        return None
    end: int | None = max(finite, key=lambda i: (longest[i], -i))
    chain = []
    while end is not None:
        chain.append(end)
        end = before[end]
    return chain[::-1][len(chain) // 2]

"""bin/train.py, bin/evaluate.py, bin/download_data.py and bin/find_lr.py: argument parsing; the work is done in
src/training_loop.py, src/training/ and src/data/."""

from __future__ import annotations

import argparse
import gc
from collections.abc import Sequence
from pathlib import Path

from src.cli.common import Parser, run_main
from src.errors import UserError


def train_main(argv: Sequence[str] | None = None, freeze_gc: bool = False) -> int:
    """bin/train.py. freeze_gc (the script, not in-process callers): see gc.freeze() below."""
    from src.training import preemption_signal

    preemption_signal.listen()  # SLURM's preemption warning may come during imports and data loading
    parser = Parser(
        prog="bin/train.py",
        description="Train with gin configs into SAVE_DIR; re-running the same command resumes.",
        epilog='example: bin/train.py results/cnn configs/cnn.gin -b "training_loop.n_epochs=5" -b "cnn.width=8"',
    )
    parser.add_argument("save_dir", metavar="SAVE_DIR", help="run folder (created; resumed if it holds last.ckpt)")
    parser.add_argument("configs", metavar="CONFIGS", nargs="+", help="gin config files (several: joined with '#')")
    parser.add_argument(
        "-b", "--bindings", action="append", default=[], help="gin bindings joined with '#'; may be repeated"
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the operative config the run would use (every parameter, defaults included) and write nothing",
    )

    def main(args: argparse.Namespace) -> None:
        from src import config
        from src.training_loop import training_loop

        # Every CONFIGS and every -b counts, in order: later ones override earlier ones.
        configs = [c for joined in args.configs for c in config.split_joined(joined)]
        bindings = [b for joined in args.bindings for b in config.split_joined(joined)]
        if not configs:
            raise UserError("No config file given: pass e.g. configs/cnn.gin (several joined with '#').")
        config.parse(configs, bindings)
        if freeze_gc:
            # Everything imported so far lives until exit: freeze it so that the GC never traverses it again: no
            # gen-2 pauses during training, and interpreter exit is ~1 s faster (bench/README.md). No gc.collect()
            # first: it would take ~0.3 s to free a few hundred objects. Only in a process that exits after the
            # training: frozen objects are never freed.
            gc.freeze()
        training_loop(args.save_dir, config_files=configs, bindings=bindings, dry_run=args.print_config)

    return run_main(main, parser, argv)


def train_command() -> int:
    """The `lgt-train` command: bin/train.py's main, which exits after the training (see gc.freeze() above)."""
    return train_main(freeze_gc=True)


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(
        prog="bin/evaluate.py", description="Test a run's checkpoint; writes eval_results_<checkpoint>.json."
    )
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("--checkpoint", default="best", help="best or last (default: best)")

    def main(args: argparse.Namespace) -> None:
        from src.recipes.evaluate import evaluate

        metrics, path = evaluate(args.run_dir, checkpoint=args.checkpoint)
        print(" | ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
        print(f"wrote {path}")

    return run_main(main, parser, argv)


def download_main(argv: Sequence[str] | None = None) -> int:
    from src.data.download import ARCHIVES, data_dir, download

    parser = Parser(prog="bin/download_data.py", description="Download and verify a data set into DATA_DIR.")
    parser.add_argument("name", help=f"one of: {', '.join(sorted(ARCHIVES))}")
    parser.add_argument("--data-dir", help="default: $DATA_DIR (shell or .env) or data/")
    parser.add_argument("--url", help="mirror URL of the archive (the checksum is still verified)")

    def main(args: argparse.Namespace) -> None:
        # DATA_DIR is read here, after run_main has loaded .env
        print(f"{args.name} ready in {download(args.name, args.data_dir or data_dir(), url=args.url)}")

    return run_main(main, parser, argv)


def check_output_folder(folder: Path, option: str) -> None:
    """A folder to write results into: not a file, not the repository or inside its code folders."""
    from src.run import layout

    if folder.exists() and not folder.is_dir():
        raise UserError(f"{option} {str(folder)!r} is a file, not a folder: choose another.")
    path = folder.resolve()
    if (
        path == layout.CODE_ROOT
        or path in layout.CODE_ROOT.parents
        or any(path.is_relative_to(layout.CODE_ROOT / name) for name in layout.CODE_FOLDERS)
    ):
        raise UserError(f"{option} {str(folder)!r} lies in the repository's code: choose a folder under "
                        f"{layout.results_root()}.")  # fmt: skip


def find_lr_main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(
        prog="bin/find_lr.py",
        description="Lightning's learning-rate range test for a config: the loss against a growing learning rate "
        "(lr_find.png) and the suggested learning rate (lr_find.json) in a folder, and the binding to use.",
        epilog='example: bin/find_lr.py configs/cnn.gin -b "digits.batch_size=128" --out results/find_lr/cnn',
    )
    parser.add_argument("configs", metavar="CONFIGS", help="gin config files joined with '#'")
    parser.add_argument("-b", "--bindings", default="", help="gin bindings joined with '#'")
    parser.add_argument("--out", metavar="DIR", help="where to write (default: results/find_lr/<first config's name>)")
    parser.add_argument("--min-lr", type=float, default=1e-6, help="smallest learning rate tried (default 1e-6)")
    parser.add_argument("--max-lr", type=float, default=1.0, help="largest learning rate tried (default 1)")
    parser.add_argument("--steps", type=int, default=100, help="training steps of the test (default 100)")

    def main(args: argparse.Namespace) -> int:
        from src import config
        from src.recipes.find_lr import lr_range_test
        from src.run import layout

        configs, bindings = config.split_joined(args.configs), config.split_joined(args.bindings)
        if not configs:
            raise UserError("No config file given: pass e.g. configs/cnn.gin (several joined with '#').")
        out = Path(args.out) if args.out else layout.results_root() / "find_lr" / Path(configs[0]).stem
        check_output_folder(out, "--out")
        found = lr_range_test(configs, bindings, out, args.min_lr, args.max_lr, args.steps)
        print(f"plot: {out / 'lr_find.png'}; results: {out / 'lr_find.json'}")
        if found["binding"] is None:
            print("no suggestion: too few points where the loss fell; try more --steps or another --min-lr/--max-lr")
            return 1
        print(f"suggested: {found['binding']}")
        return 0

    return run_main(main, parser, argv)

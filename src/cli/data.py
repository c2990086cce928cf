"""bin/prepare_data.py: write a file-backed or streaming data set's folder (src/data/files.py, src/data/streaming.py)
once, before training (training prepares the default folder on first use too)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from src.cli.common import Parser, run_main
from src.errors import UserError


def preparable() -> dict[str, type]:
    """Registered data sets that prepare a folder: name -> class."""
    from src.data import DATA
    from src.data.files import FilesDataModule
    from src.data.streaming import StreamDataModule

    found = {name: DATA.get(name) for name in DATA.names()}
    return {
        n: c for n, c in found.items() if isinstance(c, type) and issubclass(c, (FilesDataModule, StreamDataModule))
    }


def prepare_main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(
        prog="bin/prepare_data.py",
        description="Write a data set's prepared folder (sharded arrays, or litdata's optimised chunks) into "
        "DATA_DIR/NAME (NAME_toy with --toy) or --out; a folder that exists is left as it is unless --force.",
        epilog="example: bin/prepare_data.py digits_stream --out /scratch/me/digits_stream",
    )
    parser.add_argument("name", metavar="NAME", help="a file-backed or streaming data set, e.g. digits_files")
    parser.add_argument("--toy", action="store_true", help="the toy variant (a few hundred examples)")
    parser.add_argument("--out", metavar="FOLDER", help="where to write (default: $DATA_DIR/NAME)")
    parser.add_argument("--force", action="store_true", help="delete the folder first and write it again")

    def main(args: argparse.Namespace) -> None:
        from src.errors import did_you_mean

        found = preparable()
        if args.name not in found:
            raise UserError(
                f"{args.name!r} is no data set that prepares a folder.{did_you_mean(args.name, found)} "
                f"Valid: {', '.join(sorted(found))}."
            )
        from src.data.files import FilesDataModule

        where = {"root": args.out} if issubclass(found[args.name], FilesDataModule) else {"input_dir": args.out}
        data = found[args.name](toy=args.toy, **where)
        folder = data.prepare(force=args.force)
        data.prepare_data()  # reads it back: the same checks as a training's
        print(f"{args.name} ready in {folder}")

    return run_main(main, parser, argv)

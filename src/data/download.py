"""Download a data set archive with a progress bar, verify its checksum, and unpack it into DATA_DIR.

Nothing half-done is ever left looking complete: the download goes to `<archive>.part` and the archive is
unpacked into a temporary folder that is renamed into place only at the end.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from src.errors import UserError, unknown


@dataclass(frozen=True)
class Archive:
    url: str
    md5: str
    folder: str  # what the archive unpacks to

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


ARCHIVES = {
    "cifar10": Archive(
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        folder="cifar-10-batches-py",
    ),
}


def data_dir() -> str:
    """Where data sets live: $DATA_DIR (from the shell, e.sh or .env), else data/ in the working directory."""
    return os.environ.get("DATA_DIR") or "data"


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, dest: Path, quiet: bool = False) -> None:
    """Stream `url` into `dest` with a rich progress bar."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    try:
        response = urllib.request.urlopen(url, timeout=60)
    except OSError as e:
        raise UserError(f"Cannot download {url}: {e}") from e
    total = int(response.headers.get("Content-Length") or 0) or None
    columns = ("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with response, open(dest, "wb") as out, Progress(*columns, disable=quiet) as progress:
        task = progress.add_task(dest.name, total=total)
        while block := response.read(1 << 20):
            out.write(block)
            progress.advance(task, len(block))


def download(
    name: str, data_dir: str | Path, url: str | None = None, md5: str | None = None, quiet: bool = False
) -> Path:
    """Make `<data_dir>/<folder>` exist, downloading and verifying the archive if needed. Returns the folder."""
    if name not in ARCHIVES:
        raise UserError(unknown("data set", name, sorted(ARCHIVES), where="to download"))
    archive = ARCHIVES[name]
    url, md5 = url or archive.url, md5 or archive.md5
    data_dir = Path(data_dir)
    target = data_dir / archive.folder
    if target.is_dir():
        return target
    data_dir.mkdir(parents=True, exist_ok=True)
    tarball = data_dir / archive.filename
    if not tarball.is_file():
        part = tarball.with_name(tarball.name + ".part")
        try:
            fetch(url, part, quiet=quiet)
            if (actual := md5sum(part)) != md5:
                raise UserError(f"Checksum mismatch for {url}: md5 {actual}, expected {md5}; nothing was kept.")
            part.replace(tarball)
        finally:
            part.unlink(missing_ok=True)
    elif (actual := md5sum(tarball)) != md5:
        raise UserError(f"{tarball} has md5 {actual}, expected {md5}: delete it and download again.")
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".unpack-") as tmp:
        try:
            with tarfile.open(tarball) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError) as e:
            raise UserError(f"Cannot unpack {tarball}: {e}") from e
        if not (Path(tmp) / archive.folder).is_dir():
            raise UserError(f"{tarball} does not contain the folder {archive.folder}.")
        shutil.move(str(Path(tmp) / archive.folder), target)
    return target

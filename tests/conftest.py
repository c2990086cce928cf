"""Fixtures shared by every test (helpers are tests/helpers.py), and the markers: the tests in tests/end_to_end/ are
`slow` (they train or start processes), those in tests/slurm/ need the local SLURM cluster (`slurm`). The fast
subset is tests/unit/ (`make test-fast`)."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import FAST, experiment_folder  # noqa: E402


@pytest.fixture
def train():
    """train(save_dir, *bindings, configs=("configs/cnn.gin",)) -> metrics, in this process (FAST bindings first)."""

    def run(save_dir, *bindings, configs=("configs/cnn.gin",)):
        from src import config
        from src.training_loop import training_loop

        files = [str(ROOT / c) for c in configs]
        all_bindings = [*FAST, *bindings]
        config.parse(files, all_bindings)
        return training_loop(str(save_dir), config_files=files, bindings=all_bindings)

    return run


@pytest.fixture
def env():
    """Environment for subprocesses running bin/ scripts."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "DATA_DIR": os.environ.get("DATA_DIR", "data")}


@pytest.fixture
def experiment(request, tmp_path, monkeypatch):
    """An experiment folder whose template_config.gin is the test module's TEMPLATE; results under tmp_path."""
    return experiment_folder(tmp_path, monkeypatch, request.module.TEMPLATE)


@pytest.fixture
def served(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www: (the folder, its base URL)."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(www)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="module")
def slurm():
    """The single-node SLURM cluster of this machine, started if needed (tests/slurm/start_cluster.sh)."""
    can_install = os.geteuid() == 0 and shutil.which("apt-get")
    if shutil.which("sbatch") is None and not can_install:
        if os.environ.get("CI"):
            pytest.fail("SLURM is missing in CI and cannot be installed")
        pytest.skip("SLURM is not installed and cannot be installed here (needs root and apt-get)")
    out = subprocess.run(
        ["bash", str(ROOT / "tests/slurm/start_cluster.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, f"could not start SLURM: {out.stdout[-2000:]} {out.stderr[-2000:]}"


@pytest.fixture(autouse=True)
def fresh_gin_config():
    """Bindings parsed by one test (e.g. digits.toy = True) must not leak into the next."""
    yield
    import gin

    gin.clear_config()


@pytest.fixture(autouse=True)
def same_threads():
    """A run trained in this process may set torch's thread count (training_loop.num_threads, or a resume keeping
    its first attempt's): the next test's runs must start from the process's own count, as a new process would."""
    torch = sys.modules.get("torch")
    count = torch.get_num_threads() if torch is not None else None
    yield
    torch = sys.modules.get("torch")
    if torch is not None and count is not None and torch.get_num_threads() != count:
        torch.set_num_threads(count)


def pytest_collection_modifyitems(config, items):
    for item in items:
        folder = item.path.parent.name
        if folder == "slurm":
            item.add_marker(pytest.mark.slurm)
            item.add_marker(pytest.mark.slow)
        elif folder == "end_to_end":
            item.add_marker(pytest.mark.slow)

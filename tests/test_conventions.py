"""Packaging conventions: e.yml pins what the requirements files pin; `pip install -e .` gives a working `import src`."""

import subprocess
import sys
import zipfile

import yaml

from tests.conftest import ROOT


def pins(path) -> list[str]:
    lines = (ROOT / path).read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def test_conda_environment_lists_the_pinned_requirements():
    """conda-lock cannot read `-r requirements.txt`: e.yml spells the pins out, and they must not drift."""
    dependencies = yaml.safe_load((ROOT / "e.yml").read_text())["dependencies"]
    pip = next(d["pip"] for d in dependencies if isinstance(d, dict))
    assert pip == pins("requirements.txt") + pins("requirements-nodeps.txt") + pins("requirements-dev.txt")
    assert all("==" in p for p in pip)


def test_editable_install_makes_src_importable(tmp_path):
    """What `pip install -e .` installs (setuptools' editable wheel) lets `import src` work from any folder,
    without PYTHONPATH."""
    build = "import sys; from setuptools import build_meta; print(build_meta.build_editable(sys.argv[1]))"
    out = subprocess.run(
        [sys.executable, "-c", build, str(tmp_path / "wheel")], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    site = tmp_path / "site"
    with zipfile.ZipFile(tmp_path / "wheel" / out.stdout.strip().splitlines()[-1]) as wheel:
        wheel.extractall(site)
    check = f"import site; site.addsitedir({str(site)!r}); import src.cli, src.analysis.tables; print(src.__file__)"
    out = subprocess.run([sys.executable, "-I", "-c", check], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == str(ROOT / "src" / "__init__.py")

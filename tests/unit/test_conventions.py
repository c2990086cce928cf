"""Packaging conventions: e.yml pins what the requirements files pin; `pip install -e .` gives a working `import src`."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

from tests.helpers import ROOT


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
    # what pip reads of it: the license, the Pythons, itermplot only with the `iterm` extra
    metadata = next(site.glob("*.dist-info/METADATA")).read_text()
    assert "License-Expression: MIT\n" in metadata and next(site.glob("*.dist-info/licenses/LICENSE"))
    assert "Requires-Python: <3.15,>=3.11\n" in metadata
    assert [line for line in metadata.splitlines() if line.startswith("Requires-Dist: itermplot")] == [
        'Requires-Dist: itermplot<0.6,>=0.5; extra == "iterm"',
        'Requires-Dist: itermplot<0.6,>=0.5; extra == "all"',
    ]
    check = f"import site; site.addsitedir({str(site)!r}); import src.cli, src.analysis.tables; print(src.__file__)"
    out = subprocess.run([sys.executable, "-I", "-c", check], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == str(ROOT / "src" / "__init__.py")


def test_every_bin_script_is_a_console_command_calling_the_same_entry_point():
    """pyproject's [project.scripts]: one `lgt-<name>` per bin/ script, whose target is what the shim calls."""
    import importlib
    import re
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    shims = {p.stem.replace("_", "-"): p.read_text() for p in (ROOT / "bin").glob("*.py")}
    assert set(scripts) == {f"lgt-{name}" for name in shims}
    for command, target in scripts.items():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), target
        assert re.search(rf"from {re.escape(module)} import {function}\b", shims[command.removeprefix("lgt-")]), target


def project() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def exact_pins(*files) -> dict[str, str]:
    """name -> version of every `name==version` line of the requirements files (the `-c` line aside)."""
    found = {}
    for path in files:
        for line in pins(path):
            if not line.startswith("-"):
                assert "==" in line, f"{path}: {line!r} is not an exact pin"
                name, version = line.split("==")
                found[name.strip().lower()] = version.strip()
    return found


def test_requires_python_claims_only_pythons_every_pin_installs_on():
    """Each pinned distribution states the Pythons it supports (Requires-Python of the installed pins: numpy 2.4.6
    needs 3.11): pyproject claims none that one of them refuses, and the Python of e.yml and of this test is one."""
    import importlib.metadata
    import platform

    from packaging.specifiers import SpecifierSet

    claimed = SpecifierSet(project()["requires-python"])
    versions = [f"3.{minor}" for minor in range(6, 30)]
    assert "3.10" not in claimed and platform.python_version() in claimed
    assert [v for v in versions if v in claimed][-1] != versions[-1], "an upper bound: later Pythons are unchecked"
    for name in exact_pins("requirements.txt", "requirements-nodeps.txt", "requirements-dev.txt"):
        needs = importlib.metadata.metadata(name).get("Requires-Python")
        refused = [v for v in versions if v in claimed and needs and v not in SpecifierSet(needs)]
        assert not refused, f"{name} needs Python {needs}; pyproject claims {claimed}"
    conda_python = next(
        d for d in yaml.safe_load((ROOT / "e.yml").read_text())["dependencies"] if str(d).startswith("python=")
    )
    assert conda_python.removeprefix("python=") in claimed


def test_pyproject_has_ranges_that_admit_the_exact_pins():
    """requirements*.txt pin exactly; pyproject's dependencies are ranges (another torch in your environment is
    fine), each admitting the pin, none admitting the pytorch-lightning releases that were malware."""
    from packaging.requirements import Requirement

    pinned = exact_pins(
        "requirements.txt", "requirements-nodeps.txt", "requirements-dev.txt", "requirements-extras.txt"
    )
    required = [Requirement(r) for r in project()["dependencies"]]
    required += [Requirement(r) for extra in project()["optional-dependencies"].values() for r in extra]
    for requirement in required:
        assert not any(s.operator in ("==", "===") for s in requirement.specifier), str(requirement)
        name = requirement.name.lower()
        if name in pinned:
            assert requirement.specifier.contains(pinned[name]), f"{requirement} refuses the pin {pinned[name]}"
    lightning = next(r for r in required if r.name == "pytorch-lightning")
    assert not any(lightning.specifier.contains(v) for v in ("2.6.2", "2.6.3"))
    core = {Requirement(r).name.lower() for r in project()["dependencies"]}
    # the same packages, pinned and ranged; litdata's own dependencies are pinned because it is installed without them
    assert set(exact_pins("requirements.txt", "requirements-nodeps.txt")) == core | {"boto3", "obstore", "tifffile"}


def test_itermplot_is_an_optional_extra_and_plots_work_without_it(tmp_path):
    """itermplot is only a display backend: not a dependency, and with MPLBACKEND naming it but the package absent,
    a report's plots are still written (a warning says why nothing shows inline)."""
    from packaging.requirements import Requirement

    assert "itermplot" not in {Requirement(r).name for r in project()["dependencies"]}
    assert "itermplot" not in exact_pins("requirements.txt") and "itermplot" in exact_pins("requirements-extras.txt")
    assert any(Requirement(r).name == "itermplot" for r in project()["optional-dependencies"]["iterm"])
    script = (
        "import sys; sys.modules['itermplot'] = None\n"  # as if not installed: importing it raises ImportError
        "import pandas as pd\n"
        "from pathlib import Path\n"
        "from src.searches.plots import plot\n"
        "from tests.helpers import fake_run\n"
        f"run = fake_run(Path({str(tmp_path)!r}) / 'lr=0.1', {{'supervised.lr': 0.1}})\n"
        "table = pd.DataFrame([{'name': 'lr=0.1', 'run': str(run), 'status': 'finished', 'supervised.lr': 0.1,"
        " 'best_valid_acc': 0.75}])\n"
        f"print(plot(table, ['supervised.lr'], False, 'valid_acc', True, Path({str(tmp_path)!r})))\n"
    )
    env = {**os.environ, "MPLBACKEND": "module://itermplot", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "learning_curves.png").stat().st_size > 0
    assert "MPLBACKEND names itermplot, which is not installed" in out.stderr


def test_license_is_mit_and_stated_in_pyproject_and_readme():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    assert project()["license"] == "MIT" and project()["license-files"] == ["LICENSE"]
    assert "[MIT](LICENSE)" in (ROOT / "README.md").read_text()


def test_pre_commit_runs_what_make_lint_runs():
    """`make lint` runs ruff check, ruff format --check and mypy: pre-commit runs the same three tools, ruff at the
    version requirements-dev.txt pins, mypy from the project's environment with pyproject's settings."""
    import re

    lint = re.search(r"^lint:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)[1]
    assert [line.split("/")[-1] for line in lint.split("\t") if line.strip()] == [
        "ruff check .\n", "ruff format --check .\n", "mypy\n"
    ]  # fmt: skip
    repos = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"]
    hooks = {hook["id"]: (repo, hook) for repo in repos for hook in repo["hooks"]}
    ruff_repo = hooks["ruff"][0]
    assert ruff_repo["rev"] == "v" + exact_pins("requirements-dev.txt")["ruff"] and "ruff-format" in hooks
    mypy = hooks["mypy"][1]
    assert mypy["entry"].split()[-1] == "mypy" and mypy["language"] == "system" and mypy["pass_filenames"] is False


def test_best_gin_written_by_a_report_is_git_ignored():
    out = subprocess.run(
        ["git", "check-ignore", "--no-index", "experiments/tune_lr/bayes/best.gin", "experiments/tune_lr/main.py"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert out.stdout.split() == ["experiments/tune_lr/bayes/best.gin"]


def test_make_format_formats_even_when_a_lint_error_is_left(tmp_path):
    """`ruff check --fix` cannot fix an undefined name: make format still formats every file, then fails."""
    for name in ("Makefile", "pyproject.toml", "requirements.txt", "requirements-nodeps.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "ruff").symlink_to(Path(sys.executable).parent / "ruff")
    (venv / ".installed").touch()  # newer than the requirements: make does not set up a venv
    (tmp_path / "bad.py").write_text("x   =  undefined_name\n")
    out = subprocess.run(["make", "format"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "undefined_name" in out.stdout + out.stderr
    assert (tmp_path / "bad.py").read_text() == "x = undefined_name\n"

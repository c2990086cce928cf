import inspect
import sys
from pathlib import Path

import gin
import pytest

from src.errors import UserError
from src.registry import Registry, import_submodules


def test_register_and_get_is_gin_configurable():
    things = Registry("thing")

    @things.register("test_widget")
    def widget(size=1):
        return size

    gin.parse_config("test_widget.size = 7")
    try:
        assert things.get("test_widget")() == 7
    finally:
        gin.clear_config()
    assert things.names() == ["test_widget"]


def test_duplicate_name_names_both_files_and_lines():
    things = Registry("thing")
    things.register("test_dup_a")(lambda: 1)
    line = inspect.currentframe().f_lineno
    with pytest.raises(UserError) as error:
        things.register("test_dup_a")(lambda: 2)
    here = "tests/unit/test_registry.py"
    assert str(error.value) == f"thing 'test_dup_a' is registered twice: {here}:{line - 1} and {here}:{line + 2}"


@pytest.fixture
def package(tmp_path, monkeypatch):
    """package({file: text}) -> (name, path): a throwaway package outside src/, forgotten after the test."""
    monkeypatch.syspath_prepend(str(tmp_path))
    made = []

    def make(files: dict[str, str]) -> tuple[str, list[str]]:
        name = f"throwaway_pkg_{len(made)}_{tmp_path.name}"
        folder = tmp_path / name
        folder.mkdir()
        (folder / "__init__.py").write_text("from src.registry import Registry\nTHINGS = Registry('thing')\n")
        for file, text in files.items():
            (folder / file).write_text(text)
        made.append(name)
        return name, [str(folder)]

    yield make
    for name in [m for m in sys.modules if m.split(".")[0] in made]:
        del sys.modules[name]


def test_a_broken_file_in_a_registry_package_is_named(package):
    name, path = package({"broken.py": "import nonexistent_pkg\n", "fine.py": "x = 1\n"})
    with pytest.raises(UserError) as error:
        import_submodules(name, path)
    assert str(error.value) == (
        f"{path[0]}/broken.py cannot be imported: ModuleNotFoundError: No module named 'nonexistent_pkg' "
        f"(every file in {path[0]}/ is imported at start: fix or remove it)"
    )


@pytest.mark.parametrize(
    "raised",
    ["MemoryError()", "ImportError('libtorch_cpu.so: failed to map segment from shared object')"],
)
def test_an_import_out_of_memory_blames_the_memory_limit_not_the_file(package, raised):
    """Issue 27.14: under `ulimit -v` torch's libraries fail to load in whichever file imports torch first; that file
    is not the mistake."""
    name, path = package({"uses_torch.py": f"raise {raised}\n"})
    with pytest.raises(UserError) as error:
        import_submodules(name, path)
    message = str(error.value)
    assert message.startswith(f"Out of memory while importing {path[0]}/uses_torch.py (")
    assert message.endswith(
        "give the process more memory (ulimit -v, the job's --mem) or use less (a smaller batch or model)."
    )
    assert "fix or remove it" not in message


def test_a_name_registered_in_two_files_names_both(package):
    register = "from {0} import THINGS\n\n@THINGS.register('test_twice_{1}')\ndef f():\n    return 1\n"
    name, path = package({})
    suffix = name.rsplit("_", 1)[-1]
    for file in ("a.py", "b.py"):
        (Path(path[0]) / file).write_text(register.format(name, suffix))
    with pytest.raises(UserError) as error:
        import_submodules(name, path)
    assert str(error.value) == f"thing 'test_twice_{suffix}' is registered twice: {path[0]}/a.py:3 and {path[0]}/b.py:3"


def test_build_rejects_a_binding_of_an_offered_keyword():
    things = Registry("thing", offers={"seed": "the run (x.seed): bind that instead"}, offered_by="the data: remove it")

    @things.register("test_offered")
    def offered_to(seed=0, n_outputs=1, width=2):
        return seed, n_outputs, width

    gin.parse_config("test_offered.width = 3")
    try:
        assert things.build("test_offered", seed=1, n_outputs=4) == (1, 4, 3)
        gin.parse_config("test_offered.seed = 5")
        with pytest.raises(UserError, match=r"^test_offered.seed is given by the run \(x.seed\): bind that instead.$"):
            things.build("test_offered", seed=1)
        gin.clear_config()
        gin.parse_config("test_offered.n_outputs = 5")
        with pytest.raises(UserError, match=r"^test_offered.n_outputs is given by the data: remove it.$"):
            things.build("test_offered", n_outputs=4)
        assert things.build("test_offered") == (0, 5, 2)  # not offered: the binding is what sets it
    finally:
        gin.clear_config()


def test_unknown_name_lists_valid_names_and_suggests():
    from src.models import MODELS

    with pytest.raises(UserError) as error:
        MODELS.get("cnnn")
    message = str(error.value)
    assert "Unknown model 'cnnn'" in message
    assert "Did you mean 'cnn'?" in message
    assert message.endswith(f"Valid model names: {', '.join(MODELS.names())}.")


def test_every_registry_has_its_items():
    from src.callbacks import CALLBACKS
    from src.data import DATA
    from src.loggers import LOGGERS
    from src.modules import MODULES

    assert {"digits", "cifar10"} <= set(DATA.names())
    assert {"meta_saver", "heartbeat", "early_stopping", "progress_log", "history", "checkpoint"} <= set(
        CALLBACKS.names()
    )
    assert "tensorboard" in LOGGERS.names()
    assert "supervised" in MODULES.names()


def test_build_passes_only_the_keywords_a_builder_names():
    things = Registry("thing")

    @things.register("test_picky")
    def picky(input_shape, width=2):
        return input_shape, width

    @things.register("test_greedy")
    def greedy(**everything):
        return everything

    assert things.build("test_picky", input_shape=(3,), n_outputs=10, seed=1) == ((3,), 2)
    assert things.build("test_greedy", input_shape=(3,), seed=1) == {"input_shape": (3,), "seed": 1}


def test_build_names_a_required_keyword_nobody_offers():
    things = Registry("thing")

    @things.register("test_needy")
    def needy(input_shape, vocabulary_size):
        return vocabulary_size

    with pytest.raises(UserError, match=r"'test_needy' needs 'vocabulary_size'.*on offer: input_shape, n_outputs"):
        things.build("test_needy", input_shape=(3,), n_outputs=10)
    gin.parse_config("test_needy.vocabulary_size = 7")  # bound in gin: not missing
    try:
        assert things.build("test_needy", input_shape=(3,)) == 7
    finally:
        gin.clear_config()

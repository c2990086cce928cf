import gin
import pytest

from src.errors import UserError
from src.registry import Registry


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


def test_duplicate_name_rejected():
    things = Registry("thing")
    things.register("test_dup_a")(lambda: 1)
    with pytest.raises(ValueError, match="already registered"):
        things.register("test_dup_a")(lambda: 2)


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
    assert {"meta_saver", "heartbeat", "lr_schedule", "progress_log", "history", "checkpoint"} <= set(CALLBACKS.names())
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

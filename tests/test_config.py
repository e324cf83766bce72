"""The run configuration (`keras_modern_cnn.config`): defaults, then a recipe, then explicit
settings; every value validated once; `run.json` written and read back as the same RunConfig.

Pure Python, no model and no backend work: milliseconds per test.
"""

import dataclasses
import json
import os

import pytest

from keras_modern_cnn.config import (
    DEFAULTS,
    RunConfig,
    config_to_json,
    read_run_file,
    resolve_config,
    validate,
)

pytestmark = pytest.mark.backend_independent


def test_config_resolves_defaults_then_recipe_then_flags_and_validates_once():
    config = resolve_config("bn_lenet", recipe="d2l")
    assert (config.learning_rate, config.batch_size, config.image_size) == (1.0, 256, 28)
    assert (config.epochs, config.optimizer, config.dataset) == (10, "sgd", "fashion_mnist")
    assert config.output_dir == os.path.join("runs", "bn_lenet")
    assert resolve_config("vgg11", recipe="d2l").width_ratio == 0.25
    assert resolve_config("bn_lenet", recipe="d2l", epochs=2, dataset="shapes").epochs == 2
    assert resolve_config("bn_lenet", optimizer="adam").learning_rate == 1e-3
    # Each family's default is its d2l recipe's (plain SGD at the book's rate); U-Net: Adam.
    for name, recipe_model in [("resnet50", "resnet18"), ("densenet121", "densenet_d2l"),
                               ("alexnet_bn", "alexnet"), ("vgg16", "vgg11")]:
        config = resolve_config(name)
        assert (config.optimizer, config.learning_rate) == (
            "sgd", resolve_config(recipe_model, recipe="d2l").learning_rate)
    assert (resolve_config("unet").optimizer, resolve_config("unet").learning_rate) == ("adam", 1e-3)
    assert resolve_config("unet", optimizer="sgd").learning_rate == 1e-2  # Keras's SGD default
    assert resolve_config("GoogLeNet").image_size == 224  # the model's own input size
    with pytest.raises(ValueError, match="Received: model='vgg16'"):
        resolve_config("vgg16", recipe="d2l")
    for setting, value in [("epochs", 0), ("batch_size", -1), ("image_size", 0),
                           ("learning_rate", 0.0), ("learning_rate", float("nan")),
                           ("train_examples", 0), ("width_ratio", -0.5)]:
        with pytest.raises(ValueError, match=f"Received: {setting}={value!r}"):
            resolve_config("bn_lenet", **{setting: value})


def test_every_setting_is_validated_with_a_message_naming_it():
    base = resolve_config("bn_lenet")
    bad = {
        "optimizer": "adagrad", "normalization": "minmax", "jit_compile": "yes", "strategy": "tpu",
        "augment": 1, "download": "no", "skip_unreadable": None, "seed": 1.5, "test_examples": -3,
        "dataset": "", "output_dir": 7, "mixed_precision": "on",
    }
    for setting, value in bad.items():
        with pytest.raises(ValueError, match=f"Received: {setting}={value!r}"):
            validate(dataclasses.replace(base, **{setting: value}))
    with pytest.raises(TypeError, match="Unknown run settings \\['epoch'\\]"):
        resolve_config("bn_lenet", epoch=3)
    with pytest.raises(ValueError, match="Unknown model name.*Received: name='resnet99'"):
        resolve_config("resnet99")


def test_zero_and_negative_numbers_are_values_not_unset():
    assert resolve_config("bn_lenet", seed=0).seed == 0
    assert resolve_config("bn_lenet", seed=-1).seed == -1
    with pytest.raises(ValueError, match="Received: epochs=0"):
        resolve_config("bn_lenet", epochs=0)


def test_run_file_round_trips_the_configuration_and_the_data_description(tmp_path):
    config = resolve_config("resnet18", epochs=3, width_ratio=0.25, output_dir=str(tmp_path))
    data = {"name": "shapes", "class_names": ["circle", "square"], "channels": 1}
    device = {"backend": "jax", "jit_compile": True}
    path = tmp_path / "run.json"
    path.write_text(config_to_json(config, data, device))
    record = json.loads(path.read_text())
    assert record["config"] == config.to_dict() and record["device"] == device
    assert read_run_file(path) == (config, data)
    assert set(DEFAULTS) == set(config.to_dict()) - {"model"}


def test_differences_list_what_changes_the_result_not_where_the_run_lives():
    config = resolve_config("bn_lenet", output_dir="runs/a")
    moved = dataclasses.replace(config, output_dir="runs/b", data_dir="/data", download=False,
                                epochs=20)
    assert config.differences(moved) == []
    changed = dataclasses.replace(config, learning_rate=0.5, width_ratio=0.5)
    assert config.differences(changed) == [("learning_rate", 1.0, 0.5), ("width_ratio", None, 0.5)]


@pytest.mark.parametrize("text, problem", [
    ("not json", "not a readable run file (JSONDecodeError"),
    ("[]", "not a run file (it must hold a JSON object)"),
    ('{"config": {"model": "bn_lenet", "nope": 1}}', "field `config.nope` is not a run setting"),
    ('{"format": 1}', "field `config` must be an object of run settings; it is None"),
])
def test_a_run_file_that_is_not_one_is_reported_by_path_and_field(tmp_path, text, problem):
    path = tmp_path / "run.json"
    path.write_text(text)
    with pytest.raises(ValueError) as raised:
        read_run_file(path)
    assert str(raised.value).startswith(f"{path}: {problem}")
    assert str(raised.value).endswith(f"Fix the file or start over with --overwrite. "
                                      f"Received: run_file={str(path)!r}")


def test_run_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunConfig(model="bn_lenet").epochs = 3
    assert os.path.join("runs", "bn_lenet") == resolve_config("bn_lenet").output_dir

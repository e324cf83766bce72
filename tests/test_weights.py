"""Pretrained weights without a network: presets, downloads, preprocessing, decoding.

Downloads are served by a local HTTP server on 127.0.0.1 (hash checks, the cache, a refused
connection); `hf://` references by a Hugging Face cache laid out on disk and the client's
offline mode. The preset table is checked against the sources it cites (keras.applications'
code, torchvision's weight enums, timm's pretrained configs).
"""

import contextlib
import functools
import hashlib
import http.server
import threading
import time

import keras
import numpy as np
import pytest
from _torch_models import timm, torchvision

import keras_modern_cnn as kmc
from keras_modern_cnn.weights import convert, download, presets
from keras_modern_cnn.weights.presets import Preset

# --- a local file server ----------------------------------------------------------------------


@contextlib.contextmanager
def file_server(folder):
    """Serve `folder` on 127.0.0.1; yields (base URL, list of requested paths)."""
    requested = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self):  # noqa: N802 (http.server's name)
            requested.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requested
    finally:
        server.shutdown()
        server.server_close()


def closed_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once the socket closes


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def torch_state_dict(model, family, keys):
    """`model`'s weights in the PyTorch layout `keys` name (the converter's mapping, inverted)."""
    state = {}
    for variable, key, _ in convert.match(model, keys, family=family):
        value = np.array(variable)
        state[key] = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T if value.ndim == 2 else value
    return state


@functools.lru_cache(maxsize=None)
def resnet18_keys():
    import torch

    with torch.device("meta"):
        return tuple(torchvision().resnet18().state_dict())


def narrow_resnet18(seed=0, **kwargs):
    """A ResNet-18 at 1/16 width with random weights and moving statistics."""
    model = kmc.ResNet18(width_ratio=1 / 16, input_shape=(32, 32, 3), **kwargs)
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        low = 0.5 if "variance" in variable.path else -0.5
        variable.assign(rng.uniform(low, 1.0, variable.shape).astype("float32"))
    return model


# --- downloads ----------------------------------------------------------------------------------

@pytest.mark.backend_independent
def test_a_preset_downloads_once_with_its_hash_checked_then_loads_from_the_cache(tmp_path, monkeypatch):
    """torchvision's convention end to end: the file name's SHA-256 prefix is checked, the file
    lands in Keras's cache, the second build makes no request, and the model is the one saved."""
    import torch

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    source = narrow_resnet18()
    state = {key: torch.from_numpy(np.ascontiguousarray(value))
             for key, value in torch_state_dict(source, "resnet", resnet18_keys()).items()}
    served = tmp_path / "served"
    served.mkdir()
    torch.save(state, served / "weights.pth")
    digest = sha256(served / "weights.pth")[:8]
    (served / "weights.pth").rename(served / f"resnet18-{digest}.pth")
    images = np.random.default_rng(1).uniform(size=(2, 32, 32, 3)).astype("float32")
    with file_server(served) as (base, requested):
        preset = Preset("resnet18", "TEST", "torchvision", f"{base}/resnet18-{digest}.pth", digest,
                        "torchvision", presets.TORCH, 0.0, "test")
        for _ in range(2):
            model = kmc.ResNet18(weights=preset, width_ratio=1 / 16, input_shape=(32, 32, 3))
            np.testing.assert_allclose(model(images, training=False), source(images, training=False),
                                       rtol=1e-5, atol=1e-6)
        assert requested == [f"/resnet18-{digest}.pth"]  # once: then Keras's cache
        cached = tmp_path / "keras_home" / "models" / f"resnet18-{digest}.pth"
        # A download cut short (kill -9) is fetched again, not loaded.
        cached.write_bytes(cached.read_bytes()[:1000])
        assert download.fetch(preset) == str(cached) and sha256(cached).startswith(digest)
        assert len(requested) == 2

        # A file already in torchvision's own cache is used in place: no request.
        checkpoints = tmp_path / "torch_home" / "hub" / "checkpoints"
        checkpoints.mkdir(parents=True)
        cached.rename(checkpoints / f"resnet18-{digest}.pth")
        assert download.fetch(preset) == str(checkpoints / f"resnet18-{digest}.pth")
        assert len(requested) == 2


@pytest.mark.backend_independent
@pytest.mark.parametrize("algorithm", ["md5", "sha256"])
def test_a_file_that_does_not_match_its_published_hash_is_deleted_and_refused(algorithm, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    served = tmp_path / "served"
    served.mkdir()
    (served / "weights-0000abcd.pth").write_bytes(b"a truncated or tampered file")
    published = "0" * 32 if algorithm == "md5" else "0000abcd"
    with file_server(served) as (base, _):
        with pytest.raises(ValueError, match=r"(?i)(hash|SHA-256).*deleted.*Received: weights='label'"):
            download.fetch_url(f"{base}/weights-0000abcd.pth", file_hash=published,
                               hash_algorithm=algorithm, label="label")
    assert not (tmp_path / "keras_home" / "models" / "weights-0000abcd.pth").exists()


@pytest.mark.backend_independent
def test_a_keras_applications_preset_is_checked_by_md5_and_loads_by_layer_name(tmp_path, monkeypatch):
    """keras.applications' convention: a Keras 2 `.h5` file (`layer_names`, `weight_names`)
    with a published md5; our twin shares its layer names."""
    import h5py

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    source = narrow_resnet18()
    served = tmp_path / "served"
    served.mkdir()
    with h5py.File(served / "weights.h5", "w") as handle:  # Keras 2's layout
        layers = [layer for layer in source.layers if layer.weights]
        handle.attrs["layer_names"] = [layer.name.encode() for layer in layers]
        for layer in layers:
            group = handle.create_group(layer.name)
            names = [f"{layer.name}/{variable.name}:0".encode() for variable in layer.weights]
            group.attrs["weight_names"] = names
            for name, variable in zip(names, layer.weights):
                group[name.decode()] = np.array(variable)
    images = np.random.default_rng(1).uniform(size=(2, 32, 32, 3)).astype("float32")
    with file_server(served) as (base, requested):
        preset = Preset("resnet18", "imagenet", "keras.applications", f"{base}/weights.h5",
                        md5(served / "weights.h5"), "keras", presets.CAFFE, 0.0, "test")
        model = kmc.ResNet18(weights=preset, width_ratio=1 / 16, input_shape=(32, 32, 3))
        np.testing.assert_allclose(model(images, training=False), source(images, training=False), rtol=1e-6)
        # Without the top: the file's head is left alone.
        features = kmc.ResNet18(weights=preset, width_ratio=1 / 16, include_top=False)
        assert features.get_layer("conv1_conv").kernel.shape == source.get_layer("conv1_conv").kernel.shape
        np.testing.assert_array_equal(features.get_layer("conv1_conv").kernel, source.get_layer("conv1_conv").kernel)
        wider = Preset("resnet18", "imagenet", "keras.applications", f"{base}/weights.h5",
                       md5(served / "weights.h5"), "keras", presets.CAFFE, 0.0, "test")
        with pytest.raises(ValueError, match=r"conv1_conv/kernel is \(7, 7, 3, 4\) in the file, "
                                             r"\(7, 7, 3, 8\) in the model"):
            kmc.ResNet18(weights=wider, width_ratio=1 / 8)
        assert len(requested) == 1


@pytest.mark.backend_independent
def test_without_a_network_a_download_fails_at_once_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    url = f"http://127.0.0.1:{closed_port()}/resnet18-f37072fd.pth"
    preset = Preset("resnet18", "IMAGENET1K_V1", "torchvision", url, "f37072fd", "torchvision",
                    presets.TORCH, 69.758, "BSD-3-Clause")
    start = time.monotonic()
    with pytest.raises(ConnectionError) as raised:
        kmc.ResNet18(weights=preset, width_ratio=1 / 16)
    assert time.monotonic() - start < 10
    message = str(raised.value)
    assert "\n" not in message and f"Could not download {url}" in message
    assert "pass its path as `weights`" in message and "Received: weights='resnet18.IMAGENET1K_V1'" in message
    assert not list(tmp_path.rglob("*.pth"))  # no partial file left in the cache


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """huggingface_hub in offline mode (HF_HUB_OFFLINE=1) over a cache in `tmp_path / "hf"`.

    The client reads both variables once, at import: its module constants are set instead.
    """
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path / "hf"


@pytest.mark.backend_independent
def test_an_hf_file_missing_offline_is_one_line_from_the_cli(offline_hub, tmp_path, capsys):
    from keras_modern_cnn.cli import main

    assert main(["convert", "resnet18", "hf://timm/resnet18.a1_in1k", str(tmp_path / "out.keras")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(
        "kmc convert: error: Could not fetch model.safetensors nor pytorch_model.bin of timm/resnet18.a1_in1k "
        "from the Hugging Face Hub (HF_HUB_OFFLINE is set")
    assert not (tmp_path / "out.keras").exists()


def hub_cache(folder, repo, files):
    """A Hugging Face cache holding `files` ({name: bytes}) of `repo` at one revision (the
    layout `huggingface_hub` writes: refs/main -> snapshots/<commit>/<file>)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = folder / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    (root / "snapshots" / commit).mkdir(parents=True)
    for name, content in files.items():
        (root / "snapshots" / commit / name).write_bytes(content)
    return root / "snapshots" / commit


@pytest.mark.backend_independent
def test_an_hf_reference_resolves_through_the_hub_clients_cache_offline(offline_hub, tmp_path):
    """`hf://` goes through `huggingface_hub` (its cache, its offline mode): a file in its cache
    loads without a network; the default file is timm's `model.safetensors`."""
    from safetensors.numpy import save_file

    source = narrow_resnet18()
    buffer = tmp_path / "model.safetensors"
    save_file({k: np.ascontiguousarray(v) for k, v in torch_state_dict(source, "resnet", resnet18_keys()).items()},
              str(buffer))
    snapshot = hub_cache(offline_hub, "timm/resnet18.test", {"model.safetensors": buffer.read_bytes()})
    images = np.random.default_rng(1).uniform(size=(1, 32, 32, 3)).astype("float32")
    model = kmc.ResNet18(weights="hf://timm/resnet18.test", width_ratio=1 / 16, input_shape=(32, 32, 3))
    np.testing.assert_allclose(model(images, training=False), source(images, training=False), rtol=1e-5, atol=1e-6)
    assert download.fetch_hub("hf://timm/resnet18.test/model.safetensors") == str(snapshot / "model.safetensors")


@pytest.mark.backend_independent
def test_hf_references_name_a_repository_a_file_and_a_revision():
    assert download.parse_hub_reference("hf://timm/resnet50.a1_in1k") == ("timm/resnet50.a1_in1k", None, None)
    assert download.parse_hub_reference("hf://me/repo/sub/model.safetensors") == (
        "me/repo", "sub/model.safetensors", None)
    assert download.parse_hub_reference("hf://me/repo@v1.0") == ("me/repo", None, "v1.0")
    with pytest.raises(ValueError, match=r"'hf://owner/repo'.*Received: weights='hf://timm'"):
        download.parse_hub_reference("hf://timm")


# --- the preset table, against its sources ----------------------------------------------------

@pytest.mark.backend_independent
def test_keras_applications_presets_carry_keras_own_urls_and_md5_hashes():
    from keras.src.applications import densenet, resnet, vgg16, vgg19

    for preset in presets.list_presets():
        if preset.source != "keras.applications":
            continue
        if preset.model.startswith("resnet"):
            top, notop = resnet.WEIGHTS_HASHES[preset.model]
            assert preset.url == f"{resnet.BASE_WEIGHTS_PATH}{preset.model}_weights_tf_dim_ordering_tf_kernels.h5"
            assert (preset.file_hash, preset.file_hash_notop) == (top, notop)
        elif preset.model.startswith("densenet"):
            number = preset.model[len("densenet"):]
            assert preset.url == getattr(densenet, f"DENSENET{number}_WEIGHT_PATH")
            assert preset.url_notop == getattr(densenet, f"DENSENET{number}_WEIGHT_PATH_NO_TOP")
            source = open(densenet.__file__).read()
            assert preset.file_hash in source and preset.file_hash_notop in source
        else:
            module = {"vgg16": vgg16, "vgg19": vgg19}[preset.model]
            assert (preset.url, preset.url_notop) == (module.WEIGHTS_PATH, module.WEIGHTS_PATH_NO_TOP)
            source = open(module.__file__).read()
            assert preset.file_hash in source and preset.file_hash_notop in source


@pytest.mark.backend_independent
def test_torchvision_presets_carry_torchvision_urls_accuracies_and_resize():
    models = torchvision()
    enums = {"resnet18": models.ResNet18_Weights, "resnet34": models.ResNet34_Weights,
             "resnet50_tv": models.ResNet50_Weights, "resnet101_tv": models.ResNet101_Weights,
             "resnet152_tv": models.ResNet152_Weights, "densenet121": models.DenseNet121_Weights,
             "densenet169": models.DenseNet169_Weights, "densenet201": models.DenseNet201_Weights,
             "alexnet_tv": models.AlexNet_Weights, "googlenet_tv": models.GoogLeNet_Weights,
             **{f"vgg{d}{bn}": getattr(models, f"VGG{d}{bn.upper()}_Weights")
                for d in (11, 13, 16, 19) for bn in ("", "_bn")}}
    found = [p for p in presets.list_presets() if p.source == "torchvision"]
    assert len(found) == 21
    for preset in found:
        weights = getattr(enums[preset.model], preset.name)
        assert preset.url == weights.url and weights.url.split("-")[-1].startswith(preset.file_hash)
        assert preset.top1 == weights.meta["_metrics"]["ImageNet-1K"]["acc@1"]
        resize = weights.transforms.keywords.get("resize_size", 256)
        assert preset.preprocessing.crop_pct == pytest.approx(224 / resize)
    # torchvision's `DEFAULT` is what `imagenet` names where keras.applications has no file.
    for model, enum in enums.items():
        default = presets.get_preset(model)
        if default.source == "torchvision":
            assert default.alias_of == enum.DEFAULT.name


@pytest.mark.backend_independent
def test_timm_presets_name_timm_hub_repositories_and_their_preprocessing():
    get_pretrained_cfg = timm().models.get_pretrained_cfg
    architectures = {"resnet50_tv": "resnet50", "resnet101_tv": "resnet101", "resnet152_tv": "resnet152"}
    for preset in presets.list_presets():
        if preset.source != "timm":
            continue
        architecture = architectures.get(preset.model, preset.model)
        config = get_pretrained_cfg(f"{architecture}.{preset.name}")
        assert preset.url == f"hf://{config.hf_hub_id}"
        assert (preset.preprocessing.mean, preset.preprocessing.std) == (config.mean, config.std)
        assert (preset.preprocessing.crop_pct, preset.preprocessing.interpolation) == (
            config.crop_pct, config.interpolation)
        assert preset.license.lower() == config.license


@pytest.mark.backend_independent
def test_the_readme_weights_table_is_the_preset_table():
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = re.search(r"<!-- weights-table:start -->\n(.*?)\n<!-- weights-table:end -->", readme, re.S)
    assert table is not None and table.group(1) == presets.markdown_table()


@pytest.mark.backend_independent
def test_every_preset_belongs_to_a_registered_model_and_resolves_by_name():
    for preset in presets.list_presets():
        spec = kmc.get_spec(preset.model)
        assert kmc.validation.resolve_weights(spec.name, preset.name.lower()) == preset
        assert preset.layout in presets.LAYOUTS and preset.classes == 1000
        assert preset.top1 > 50 and preset.license
    assert presets.get_preset("resnet50").source == "keras.applications"
    assert presets.get_preset("resnet50_tv").name == "imagenet"
    assert presets.get_preset("resnet50_tv").alias_of == "IMAGENET1K_V2"


UNKNOWN_PRESETS = [
    ("resnet50", "IMAGENET1K_V2", r"presets of resnet50: 'imagenet'; 'IMAGENET1K_V2' is a preset of "
                                  r"'resnet50_tv', torchvision's and timm's ResNet-50 \(v1.5"),
    ("alexnet", "imagenet", r"alexnet has no pretrained presets; 'imagenet' is a preset of 'alexnet_tv'"),
    ("bn_lenet", "imagenet", r"bn_lenet has no pretrained presets \(models with presets: alexnet_tv, "),
    ("resnet18", "/no/such/file.pth", r"presets of resnet18: 'imagenet', 'IMAGENET1K_V1', 'a1_in1k'"),
]


@pytest.mark.backend_independent
def test_an_unknown_preset_lists_the_model_presets_and_where_the_name_exists():
    for model, weights, message in UNKNOWN_PRESETS:
        with pytest.raises(ValueError, match=message + r".*Received: weights="):
            kmc.get_model(model, weights=weights)


@pytest.mark.backend_independent
def test_pretrained_classes_and_activation_follow_keras_applications():
    preset = presets.get_preset("resnet18")
    with pytest.raises(ValueError, match=r"`classes` should be 1000.*replace_head\(model, 10\).*Received: classes=10"):
        kmc.ResNet18(weights=preset, classes=10)
    with pytest.raises(ValueError, match=r"Only `None` and `softmax`.*Received: classifier_activation='relu'"):
        kmc.ResNet18(weights=preset, classifier_activation="relu")
    with pytest.raises(ValueError, match=r"preset of a registered variant.*Received: weights='imagenet'"):
        kmc.ResNet((2, 2, 2, 2), "basic", weights="imagenet")


# --- preprocessing ------------------------------------------------------------------------------

def raw_images(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape).astype("uint8")


def test_the_preprocessing_layer_equals_preprocess_input():
    images = raw_images((2, 16, 16, 3))
    for mode in presets.MODES:
        layer = kmc.assembly.preprocessing_layer(
            Preset("resnet18", "x", "test", "", None, "keras", presets.MODES[mode], 0.0, ""), 3, None)
        np.testing.assert_allclose(layer(images), kmc.preprocess_input(images, mode), rtol=1e-6, atol=1e-5,
                                   err_msg=mode)


def test_a_model_with_its_preprocessing_takes_raw_images_of_any_size_and_never_trains_its_batch_norm():
    """Raw uint8 images of any size in, resized inside; a plain call leaves BatchNorm statistics
    alone (the keras #23166 leak of `Resizing` does not apply)."""
    plain = narrow_resnet18()
    small = kmc.ResNet18(width_ratio=1 / 16, include_preprocessing=True, input_shape=(32, 32, 3))
    assert small.input_shape == (None, None, None, 3)  # raw images of any size, run at 32x32
    assert small.get_layer("preprocessing").output.shape == (None, 32, 32, 3)
    small.set_weights(plain.get_weights())
    wide = raw_images((2, 64, 96, 3))  # 2x the model's height, 3x its width
    statistics = [np.array(v) for v in small.non_trainable_weights]
    # 64x96 -> 32x32, bilinear with half-pixel centres: rows average pairs, columns take 1, 4, 7, ...
    resized = wide.astype("float32").reshape(2, 32, 2, 96, 3).mean(axis=2)[:, :, 1::3]
    np.testing.assert_allclose(small(wide), plain(kmc.preprocess_input(resized, "torch")), rtol=1e-5, atol=1e-5)
    assert all(np.array_equal(a, np.array(v)) for a, v in zip(statistics, small.non_trainable_weights))
    # Images already at the model's size are not resampled.
    exact = raw_images((2, 32, 32, 3))
    np.testing.assert_allclose(small(exact), plain(kmc.preprocess_input(exact, "torch")), rtol=1e-5, atol=1e-5)


@pytest.mark.backend_independent
def test_preprocess_input_never_writes_to_the_callers_array():
    for dtype in ("float32", "float64", "uint8"):
        images = raw_images((2, 4, 4, 3)).astype(dtype)
        before = images.copy()
        result = kmc.preprocess_input(images, "caffe")
        np.testing.assert_array_equal(images, before)
        assert result.dtype == np.float32 and not np.shares_memory(result, images)
    image = np.full((4, 4, 3), 255.0)
    np.testing.assert_allclose(kmc.preprocess_input(image, "tf"), np.ones((4, 4, 3)))
    np.testing.assert_allclose(kmc.preprocess_input(image, "caffe")[0, 0], [255 - 103.939, 255 - 116.779, 255 - 123.68])
    np.testing.assert_allclose(kmc.preprocess_input(image.transpose(2, 0, 1), "torch", "channels_first")[:, 0, 0],
                               (1 - np.array(presets.IMAGENET_MEAN)) / presets.IMAGENET_STD, rtol=1e-6)
    np.testing.assert_allclose(kmc.preprocess_input(np.zeros((4, 4, 1)), "tf"), -np.ones((4, 4, 1)))
    assert kmc.preprocess_input(image, "resnet50_tv.IMAGENET1K_V2").shape == (4, 4, 3)
    with pytest.raises(ValueError, match=r"Received: preset='nope'"):
        kmc.preprocess_input(image, "nope")
    with pytest.raises(ValueError, match=r"1 or 3 channels.*Received: x with shape \(4, 4, 2\)"):
        kmc.preprocess_input(np.zeros((4, 4, 2)), "torch")


@pytest.mark.backend_independent
def test_decode_predictions_names_imagenet_classes_or_the_runs_own(tmp_path):
    from keras_modern_cnn.config import config_to_json, resolve_config

    classes = kmc.weights.imagenet_classes()
    assert len(classes) == 1000 and classes[0] == ("n01440764", "tench") and classes[-1][1] == "toilet tissue"
    scores = np.zeros((2, 1000), "float32")
    scores[0, [3, 1, 999]] = [0.5, 0.3, 0.2]
    decoded = kmc.decode_predictions(scores, top=3)
    assert decoded[0] == [("n01491361", "tiger shark", 0.5), ("n01443537", "goldfish", pytest.approx(0.3)),
                          ("n15075141", "toilet tissue", pytest.approx(0.2))]
    config = resolve_config("bn_lenet", output_dir=str(tmp_path))
    (tmp_path / "run.json").write_text(config_to_json(config, {"class_names": ["cat", "dog", "emu"]}))
    run_scores = np.array([[0.1, 0.7, 0.2]])
    for source in (tmp_path, tmp_path / "run.json", tmp_path / "model.keras", ["cat", "dog", "emu"]):
        assert kmc.decode_predictions(run_scores, top=2, class_names=source) == [
            [("1", "dog", pytest.approx(0.7)), ("2", "emu", pytest.approx(0.2))]]
    with pytest.raises(ValueError, match=r"shape \(samples, 1000\). Received: preds with shape \(1, 3\)"):
        kmc.decode_predictions(run_scores)
    with pytest.raises(FileNotFoundError, match="No run file"):
        kmc.decode_predictions(run_scores, class_names=tmp_path / "nowhere" / "model.keras")


# Each backend exports the formats Keras exports natively from it (keras_modern_cnn.export):
# the others go through TensorFlow, whose own pass covers them.
NATIVE_SERVING = {"tensorflow": ("saved_model", "onnx"), "jax": ("saved_model",), "torch": ("onnx",)}


def test_a_model_with_its_preprocessing_serves_raw_images_alike_when_saved_and_exported(tmp_path):
    """`.keras` (safe mode) and the exported artefacts give the Keras model's top-5 on raw uint8
    images of another size than the model's."""
    from keras_modern_cnn.export import export, load_served

    model = kmc.ResNet18(width_ratio=1 / 8, include_preprocessing=True, classes=20)
    head = model.get_layer("predictions").kernel
    head.assign(np.asarray(head) * 20)  # spread the scores: a top-5 of near-ties would say little
    raw = raw_images((3, 150, 200, 3))
    expected = np.asarray(model.predict(raw, verbose=0))
    top5 = np.argsort(-expected, axis=1)[:, :5]
    reloaded = kmc.saving.load_model(kmc.saving.save_model(model, tmp_path / "model.keras"))
    np.testing.assert_allclose(reloaded.predict(raw, verbose=0), expected, rtol=1e-5, atol=1e-6)
    for format in NATIVE_SERVING[keras.backend.backend()]:
        path = export(model, tmp_path / ("served.onnx" if format == "onnx" else "served"), format=format)
        served = np.asarray(load_served(path)(raw.astype("float32")))
        np.testing.assert_array_equal(np.argsort(-served, axis=1)[:, :5], top5, err_msg=format)
        np.testing.assert_allclose(served, expected, rtol=1e-4, atol=1e-5, err_msg=format)

"""Converted PyTorch weights give the PyTorch model's outputs, on every Keras backend.

Each test builds the torchvision or timm model itself with random weights (no download), gives
every BatchNorm random `gamma`/`beta` and the statistics of a random batch (so moving means and
variances matter), writes its state dict as a `.pth` and a `.safetensors` file, builds the zoo's
model with `weights=` the `.pth` file, compares outputs in inference mode, then loads the
`.safetensors` file into it and finds every variable equal.

Forward passes run one configuration per family and block type, reduced where the PyTorch class
allows it so that the three backends stay within the suite's budget: ResNet with (2, 1, 1, 1)
blocks of each type, a DenseNet-BC with growth 8 and (2, 2, 2, 2) blocks, VGG-11-BN at a quarter
of the width, and `alexnet_tv` and `googlenet_tv` as registered. VGG and AlexNet run on 64x64
and 127x127 inputs with torchvision's adaptive average pool (the identity at 224x224, which the
Keras model does not have) replaced by the identity, and a classifier of the same module
structure with 16 hidden units (`dense_units=(16, 16)`); the flatten reorder is exercised on
2x2 and 3x3 maps. The mapping of every registered variant at full size, and of timm's tags, is
checked name by name without a forward pass, and their parameter counts equal torchvision's
(tests/test_contract.py).
"""

import keras
import numpy as np
import pytest
from _torch_models import timm, torchvision

import keras_modern_cnn as kmc
from keras_modern_cnn.weights import convert

torch = pytest.importorskip("torch")  # a test dependency (the `test` extra): never skipped there

# rtol: a deep float32 network accumulates ~1e-5 relative rounding differences.
TOLERANCE = dict(rtol=1e-4, atol=1e-4)
SMALL_HEAD = 16
TORCHVISION_RESNET = dict(conv_bias=False, stride_in="3x3", bn_epsilon=1e-5, bn_momentum=0.9)


def small_classifier(features, classes=1000, *, dropout_first=False):
    """torchvision's VGG classifier (Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear), or
    AlexNet's (Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear), with `SMALL_HEAD` units."""
    nn = torch.nn
    first, second, last = (nn.Linear(features, SMALL_HEAD), nn.Linear(SMALL_HEAD, SMALL_HEAD),
                           nn.Linear(SMALL_HEAD, classes))
    if dropout_first:
        return nn.Sequential(nn.Dropout(), first, nn.ReLU(), nn.Dropout(), second, nn.ReLU(), last)
    return nn.Sequential(first, nn.ReLU(), nn.Dropout(), second, nn.ReLU(), nn.Dropout(), last)


def torchvision_resnet(block):
    models = torchvision()
    return models.ResNet(getattr(models.resnet, block), [2, 1, 1, 1])


def torchvision_densenet():
    return torchvision().DenseNet(growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16)


def torchvision_vgg11_bn_quarter():
    models = torchvision()
    config = [16, "M", 32, "M", 64, 64, "M", 128, 128, "M", 128, 128, "M"]  # config A / 4
    model = models.VGG(models.vgg.make_layers(config, batch_norm=True), init_weights=True)
    model.avgpool = torch.nn.Identity()
    model.classifier = small_classifier(128 * 2 * 2)
    return model


def torchvision_alexnet():
    model = torchvision().alexnet()
    model.avgpool = torch.nn.Identity()
    model.classifier = small_classifier(256 * 3 * 3, dropout_first=True)
    return model


def timm_vgg11_quarter():
    model = timm().create_model("vgg11", pretrained=False)
    features = torchvision().vgg.make_layers([16, "M", 32, "M", 64, 64, "M", 128, 128, "M", 128, 128, "M"])
    model.features = features
    # timm's pre-logits are convolutions (the map's size, then 1x1): shrink them the same way.
    model.pre_logits.fc1 = torch.nn.Conv2d(128, SMALL_HEAD, 2, bias=True)
    model.pre_logits.input_kernel_size = 2  # else ConvMlp resamples smaller maps to 7x7
    model.pre_logits.fc2 = torch.nn.Conv2d(SMALL_HEAD, SMALL_HEAD, 1, bias=True)
    model.head.fc = torch.nn.Linear(SMALL_HEAD, 1000)
    return model


# case: (PyTorch model, input side, our builder, family)
REPRESENTATIVES = {
    "resnet_basic": (lambda: torchvision_resnet("BasicBlock"), 64,
                     lambda **a: kmc.ResNet((2, 1, 1, 1), "basic", **TORCHVISION_RESNET, **a), "resnet"),
    "resnet_bottleneck": (lambda: torchvision_resnet("Bottleneck"), 64,
                          lambda **a: kmc.ResNet((2, 1, 1, 1), "bottleneck", **TORCHVISION_RESNET, **a),
                          "resnet"),
    "densenet": (torchvision_densenet, 32,
                 lambda **a: kmc.DenseNet((2, 2, 2, 2), 8, bottleneck=True, stem_filters=16,
                                          conv_bias=False, classes=1000, **a), "densenet"),
    "vgg11_bn": (torchvision_vgg11_bn_quarter, 64,
                 lambda **a: kmc.VGG11BN(width_ratio=0.25, dense_units=(SMALL_HEAD,) * 2, **a), "vgg"),
    "alexnet_tv": (torchvision_alexnet, 127,
                   lambda **a: kmc.AlexNetTV(dense_units=(SMALL_HEAD,) * 2, **a), "alexnet"),
    "googlenet_tv": (lambda: torchvision().googlenet(aux_logits=False, init_weights=True,
                                                     transform_input=False), 64,
                     kmc.GoogLeNetTV, "googlenet"),
    "timm_vgg11": (timm_vgg11_quarter, 64,
                   lambda **a: kmc.VGG11(width_ratio=0.25, dense_units=(SMALL_HEAD,) * 2, **a), "vgg"),
}


def with_random_statistics(model, side):
    """`model` in eval mode, BatchNorm affine parameters random and statistics those of a
    random batch (momentum 1), so normalisation is far from the identity."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        for norm in norms:
            norm.weight.copy_(torch.rand(norm.weight.shape, generator=generator) + 0.5)
            norm.bias.copy_(torch.randn(norm.bias.shape, generator=generator) * 0.2)
            norm.momentum = 1.0
        if norms:
            model.train()
            model(torch.randn(4, 3, side, side, generator=generator))
    return model.eval()


def write_checkpoints(model, folder):
    """The model's state dict as a PyTorch `.pth` and a `.safetensors` file."""
    from safetensors.torch import save_file

    state = {key: value.contiguous() for key, value in model.state_dict().items()}
    torch.save(state, folder / "model.pth")
    save_file(state, str(folder / "model.safetensors"))
    return folder / "model.pth", folder / "model.safetensors"


# Where only the mapping differs (basic blocks, timm's VGG head) the TensorFlow pass suffices:
# the mapping is NumPy, and those blocks run on every backend in tests/test_contract.py.
BACKEND_INDEPENDENT_CASES = ("resnet_basic", "timm_vgg11")
CASES = [
    pytest.param(case, marks=pytest.mark.backend_independent) if case in BACKEND_INDEPENDENT_CASES
    else case
    for case in sorted(REPRESENTATIVES)
]


@pytest.mark.parametrize("case", CASES)
def test_converted_weights_give_the_pytorch_outputs(case, tmp_path):
    make, side, build, family = REPRESENTATIVES[case]
    torch.manual_seed(0)
    reference = with_random_statistics(make(), side)
    images = np.random.default_rng(0).uniform(-1, 1, (2, side, side, 3)).astype("float32")
    with torch.no_grad():
        expected = reference(torch.from_numpy(images.transpose(0, 3, 1, 2))).numpy()
    pth, safetensors_file = write_checkpoints(reference, tmp_path)
    model = build(input_shape=(side, side, 3), classifier_activation=None, weights=str(pth))
    np.testing.assert_allclose(model(images, training=False), expected, **TOLERANCE)
    loaded = [np.array(variable) for variable in model.weights]
    for variable in model.weights:  # a load that assigned nothing would show
        variable.assign(np.zeros(variable.shape, variable.dtype))
    kmc.weights.load_weights(model, safetensors_file, family=family)
    for variable, value in zip(model.weights, loaded):
        np.testing.assert_array_equal(np.array(variable), value, err_msg=variable.path)


@pytest.mark.backend_independent
def test_the_builder_loads_a_file_and_without_the_top_drops_the_head(tmp_path):
    """`weights=FILE` in the builder; `include_top=False` ignores the file's classifier."""
    torch.manual_seed(0)
    reference = with_random_statistics(torchvision().ResNet(torchvision().resnet.BasicBlock, [2, 2, 2, 2], num_classes=5), 32)
    _, safetensors_file = write_checkpoints(reference, tmp_path)
    images = np.random.default_rng(1).uniform(size=(1, 32, 32, 3)).astype("float32")
    with torch.no_grad():
        trunk = torch.nn.Sequential(*list(reference.children())[:-1])
        expected = trunk(torch.from_numpy(images.transpose(0, 3, 1, 2))).flatten(1).numpy()
    features = kmc.ResNet18(include_top=False, pooling="avg", weights=str(safetensors_file),
                            input_shape=(32, 32, 3))
    np.testing.assert_allclose(features(images, training=False), expected, **TOLERANCE)
    with pytest.raises(ValueError, match=r"'fc.weight' of shape \(5, 512\) does not fit "
                                         r"predictions/kernel \(512, 1000\).*Received: weights="):
        kmc.ResNet18(weights=str(safetensors_file), input_shape=(32, 32, 3))


# --- every variant's mapping, by name, without a forward pass --------------------------------

def _torchvision_keys(builder, **kwargs):
    with torch.device("meta"):
        return list(getattr(torchvision(), builder)(**kwargs).state_dict())


def _timm_keys(architecture):
    with torch.device("meta"):
        return list(timm().create_model(architecture, pretrained=False).state_dict())


COVERAGE = {
    # ours: (source, PyTorch architecture). Variants that repeat the names checked here with
    # more blocks are left out (their Keras models take 5-15 s each to build): resnet34,
    # resnet101_tv, resnet152_tv, densenet169, densenet201; VGG's feature indices are checked
    # for one-convolution blocks (A), three-convolution blocks with BatchNorm (D) and
    # four-convolution blocks (E). torchvision's pretrained GoogLeNet file also holds its
    # auxiliary heads (aux1, aux2), which the converter leaves out.
    **{name: ("torchvision", name) for name in ("resnet18", "densenet121", "vgg11", "vgg16_bn", "vgg19")},
    "resnet50_tv": ("torchvision", "resnet50"),
    "alexnet_tv": ("torchvision", "alexnet"),
    "googlenet_tv": ("torchvision", "googlenet"),
    # timm's VGG layout differs from torchvision's (its head); its ResNets and DenseNets do not
    # (next test).
    **{f"timm:{name}": ("timm", name) for name in ("vgg16", "vgg16_bn")},
}


@pytest.mark.backend_independent
def test_timm_names_its_resnets_and_densenets_as_torchvision_does():
    for architecture in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "densenet121",
                         "densenet169", "densenet201"):
        with torch.device("meta"):
            ours = {k: tuple(v.shape) for k, v in getattr(torchvision(), architecture)().state_dict().items()}
            theirs = {k: tuple(v.shape) for k, v in
                      timm().create_model(architecture, pretrained=False).state_dict().items()}
        assert theirs == ours, architecture


@pytest.mark.slow  # every variant at full size
@pytest.mark.backend_independent
def test_every_weight_of_every_variant_has_its_tensor_and_every_tensor_a_weight():
    """One test for all variants: each test's fixture (two `clear_session` calls) costs more
    than a narrow model's build."""
    for case, (source, architecture) in COVERAGE.items():
        name = case.split(":")[-1]
        if source == "timm":
            keys = _timm_keys(architecture)
        elif architecture == "googlenet":
            keys = _torchvision_keys(architecture, aux_logits=True, init_weights=False)
        else:
            keys = _torchvision_keys(architecture)
        family = kmc.get_spec(name).family
        # Names do not depend on width: a narrow model builds fast.
        model = kmc.get_model(name, width_ratio=1 / 16)
        pairs = convert.match(model, keys, family=family)
        assert len({id(variable) for variable, _, _ in pairs}) == len(model.weights), case
        used = {key for _, key, _ in pairs}
        assert all(key in used or convert.IGNORED_KEYS.fullmatch(key) for key in keys), case
        if name in ("resnet18", "vgg16_bn", "googlenet_tv"):
            # Without the top, the head's tensors are the only ones left unused.
            headless = kmc.get_model(name, width_ratio=1 / 16, include_top=False)
            unused = set(keys) - {key for _, key, _ in convert.match(headless, keys, family=family)}
            assert unused and all(
                convert.IGNORED_KEYS.fullmatch(key)
                or key.split(".")[0] in ("fc", "classifier", "pre_logits", "head")
                for key in unused
            ), case
        keras.backend.clear_session()


# --- errors name the first tensor that does not fit ----------------------------------------------

@pytest.mark.backend_independent
def test_a_checkpoint_of_another_architecture_is_refused_naming_the_tensor():
    keys = _torchvision_keys("resnet50")  # bottlenecks where ResNet-18 has basic blocks
    with pytest.raises(ValueError, match=r"no tensor 'layer1.0.conv2.weight'|'layer1.0.conv3.weight' fits no layer"):
        convert.match(kmc.ResNet18(width_ratio=1 / 16), keys, family="resnet", source="r50.pth")
    keys = _torchvision_keys("resnet18") + ["extra.weight"]
    with pytest.raises(ValueError, match=r"the file's tensor 'extra.weight' fits no layer.*Received: weights='x.pth'"):
        convert.match(kmc.ResNet18(width_ratio=1 / 16), keys, family="resnet", source="x.pth")
    with pytest.raises(ValueError, match=r"no tensor 'conv1.bias' for conv1_conv/bias.*Received: weights='v2.pth'"):
        convert.match(kmc.ResNet50V2(width_ratio=1 / 16), _torchvision_keys("resnet50"), family="resnet",
                      source="v2.pth")
    with pytest.raises(ValueError, match=r"no PyTorch layout for the nin family.*Received: weights='n.pth'"):
        convert.match(kmc.NiN(width_ratio=1 / 16), keys, family="nin", source="n.pth")


@pytest.mark.backend_independent
def test_a_shape_misfit_names_the_tensor_and_the_weight_and_nothing_is_assigned():
    keys = _torchvision_keys("resnet18")
    model = kmc.ResNet18(input_shape=(32, 32, 3), width_ratio=1 / 16)
    rng = np.random.default_rng(0)
    # Right names, full-width shapes: the first tensor does not fit the narrow model.
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in torchvision().resnet18().state_dict().items()}
    state = {key: rng.standard_normal(shapes[key]).astype("float32") for key in keys}
    before = [np.array(v) for v in model.weights]
    with pytest.raises(ValueError, match=r"tensor 'conv1.weight' of shape \(64, 3, 7, 7\) does not fit "
                                         r"conv1_conv/kernel \(7, 7, 3, 4\)"):
        convert.load_state_dict(model, state, family="resnet")
    assert all(np.array_equal(a, np.array(v)) for a, v in zip(before, model.weights))


@pytest.mark.backend_independent
def test_old_torchvision_densenet_names_and_wrapped_checkpoints_are_read(tmp_path):
    state = {"module.features.denseblock1.denselayer1.norm.1.weight": torch.ones(2),
             "module.features.conv0.weight": torch.zeros(1, 3, 1, 1)}
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "old.pth")
    tensors = convert.read_state_dict(tmp_path / "old.pth")
    assert sorted(tensors) == ["features.conv0.weight", "features.denseblock1.denselayer1.norm1.weight"]
    assert tensors["features.denseblock1.denselayer1.norm1.weight"].dtype == np.float32
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"Cannot read the PyTorch checkpoint.*Received: weights='.*junk.pth'"):
        convert.read_state_dict(tmp_path / "junk.pth")

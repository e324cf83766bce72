"""The pretrained weights this package knows by name: one table of data, read without Keras.

Each `Preset` says where a file lives (a URL fetched with `keras.utils.get_file`, or an
`hf://` reference fetched with `huggingface_hub`), the hash its source publishes, the state-dict
layout the converter reads (`keras`, `torchvision` or `timm`), the classes, the preprocessing
the weights were trained with, the ImageNet top-1 the source reports and the licence. Sources
of every figure and hash:

- keras.applications: URLs and md5 file hashes from `keras/src/applications/{resnet,resnet_v2,
  densenet,vgg16,vgg19}.py` (Keras 3.15); top-1 from https://keras.io/api/applications/;
  licences from https://github.com/fchollet/deep-learning-models (ResNet: Kaiming He's MIT
  release; VGG: Oxford's CC BY 4.0); keras.applications states none for ResNetV2 and DenseNet.
- torchvision 0.28: URL, `acc@1` and transforms (resize, crop) of each `*_Weights` enum. The
  file name embeds the first hex digits of the file's SHA-256 (what `torch.hub`'s `check_hash`
  verifies, and what is checked here). torchvision's code and weights: BSD-3-Clause.
- timm 1.0.31: `hf_hub_id`, interpolation, crop, mean/std and licence of each pretrained config;
  top-1 from `results/results-imagenet.csv` (huggingface/pytorch-image-models at aa4b5850),
  the row at the input size and crop of the config. No file hash is recorded: timm publishes
  none (the Hub addresses files by revision).

`imagenet` names each model's default preset: keras.applications' file for its twins (as
`keras.applications` spells it), torchvision's best (`DEFAULT`) for torchvision's twins.
"""

import dataclasses
from typing import Optional

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LAYOUTS = ("keras", "torchvision", "timm")
DEFAULT_PRESET = "imagenet"


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How raw pixels (0-255, RGB) become a model's input: `(x * scale)` in `channel_order`,
    minus `mean`, divided by `std` (per channel, in that order).

    `interpolation` and `crop_pct` record the source's evaluation protocol (resize the short
    side to `size / crop_pct`, centre-crop `size`; None where the source does not say): the
    published top-1 was measured with it.
    The model's own preprocessing (`include_preprocessing=True`) resizes the whole image
    (centre-cropped to a square) to the model's input size with `interpolation`.
    """

    name: str
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    scale: float = 1 / 255
    channel_order: str = "rgb"
    interpolation: str = "bilinear"
    crop_pct: Optional[float] = 0.875


# keras.applications' three `preprocess_input` modes (`imagenet_utils.preprocess_input`).
TORCH = Preprocessing("torch")
CAFFE = Preprocessing(
    "caffe", mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0), scale=1.0, channel_order="bgr"
)
TF = Preprocessing("tf", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
MODES = {mode.name: mode for mode in (TORCH, CAFFE, TF)}


@dataclasses.dataclass(frozen=True)
class Preset:
    """One named set of pretrained weights for one registered model.

    Attributes:
        model: the registry name it loads into (e.g. "resnet50_tv").
        name: the preset's name ("imagenet", torchvision's "IMAGENET1K_V2", timm's "a1_in1k").
        source: "keras.applications", "torchvision" or "timm".
        url: an https URL or an `hf://owner/repo` reference.
        file_hash: the published hash (md5 for keras.applications; the SHA-256 prefix of
            torchvision's file names), or None where the source publishes none.
        layout: how the file names its tensors: "keras" (a Keras `.h5`), "torchvision" or
            "timm" (PyTorch state dicts, converted by `keras_modern_cnn.weights.convert`).
        preprocessing: the input the weights expect (`Preprocessing`).
        top1: ImageNet-1k validation top-1 (%) the source reports, at `preprocessing`'s protocol.
        license: the licence the source gives for the weights ("not stated" when none).
        classes: outputs of the head (1000 ImageNet classes, `imagenet_classes.json` order).
        url_notop, file_hash_notop: keras.applications' file without the top, where it has one.
        alias_of: set on the `imagenet` entry of a model whose default has another name.
    """

    model: str
    name: str
    source: str
    url: str
    file_hash: Optional[str]
    layout: str
    preprocessing: Preprocessing
    top1: float
    license: str
    classes: int = 1000
    url_notop: Optional[str] = None
    file_hash_notop: Optional[str] = None
    alias_of: Optional[str] = None

    @property
    def hash_algorithm(self):
        """"md5" (keras.applications' full md5) or "sha256" (a prefix, torchvision's)."""
        return "md5" if self.source == "keras.applications" else "sha256"

    @property
    def qualified_name(self):
        """`model.preset`, as timm names pretrained weights (e.g. "resnet50_tv.IMAGENET1K_V2")."""
        return f"{self.model}.{self.name}"


_KERAS = "https://storage.googleapis.com/tensorflow/keras-applications/"
_KERAS_MD5 = {  # (with top, without top), from keras/src/applications
    "resnet50": ("2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
    "resnet101": ("f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21"),
    "resnet152": ("100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c"),
    "resnet50v2": ("3ef43a0b657b3be2300d5770ece849e0", "fac2f116257151a9d068a22e544a4917"),
    "resnet101v2": ("6343647c601c52e1368623803854d971", "c0ed64b8031c3730f411d2eb4eea35b5"),
    "resnet152v2": ("a49b44d1979771252814e80f8ec446f9", "ed17cf2e0169df9d443503ef94b23b33"),
    "densenet121": ("9d60b8095a5708f2dcce2bca79d332c7", "30ee3e1110167f948a6b9946edeeb738"),
    "densenet169": ("d699b8f76981ab1b30698df4c175e90b", "b8c4d4c20dd625c148057b9ff1c1176b"),
    "densenet201": ("1ceb130c1ea1b78c3bf6114dbdfd8807", "c13680b51ded0fb44dff2d8f86ac8bb1"),
    "vgg16": ("64373286793e3c8b2b4e3219cbf3544b", "6d6bbae143d832006294945121d1f1fc"),
    "vgg19": ("cbe5617147190e668d6c5d5026f83318", "253f8cb515780f3b799900260a226db6"),
}
_KERAS_MODES = {"resnet": CAFFE, "resnetv2": TF, "densenet": TORCH, "vgg": CAFFE}
_KERAS_LICENSES = {"resnet": "MIT (Kaiming He's release)", "vgg": "CC BY 4.0 (Oxford VGG)"}


def _keras(model, top1):
    family = "resnet" if model.startswith("resnet") else model.rstrip("0123456789")
    if model.endswith("v2"):
        family = "resnetv2"
    folder = {"resnetv2": "resnet"}.get(family, family)
    folder = f"{folder}/" if family != "vgg" else f"{model}/"
    file = f"{_KERAS}{folder}{model}_weights_tf_dim_ordering_tf_kernels"
    top, notop = _KERAS_MD5[model]
    return Preset(
        model, "imagenet", "keras.applications", f"{file}.h5", top, "keras",
        # keras.io reports "single center crop" accuracies without the crop's size.
        dataclasses.replace(_KERAS_MODES[family], crop_pct=None), top1,
        _KERAS_LICENSES.get(family, "not stated"),
        url_notop=f"{file}_notop.h5", file_hash_notop=notop,
    )


_TORCHVISION = "https://download.pytorch.org/models/"


def _torchvision(model, name, file, top1, resize=256, preprocessing=TORCH):
    return Preset(
        model, name, "torchvision", _TORCHVISION + file, file.rsplit("-", 1)[1].split(".")[0],
        "torchvision", dataclasses.replace(preprocessing, crop_pct=224 / resize), top1,
        "BSD-3-Clause",
    )


def _timm(model, tag, architecture, top1, crop_pct, interpolation="bicubic"):
    return Preset(
        model, tag, "timm", f"hf://timm/{architecture}.{tag}", None, "timm",
        dataclasses.replace(TORCH, interpolation=interpolation, crop_pct=crop_pct), top1,
        "Apache-2.0",
    )


# torchvision's GoogLeNet weights expect `transform_input=True`, which maps ImageNet-normalised
# inputs to (x - 0.5) / 0.5 before the first convolution: the "tf" scaling, applied directly.
_GOOGLENET_TV = TF

_ROWS = [
    # --- keras.applications (the twins' own files) ---
    _keras("resnet50", 74.9), _keras("resnet101", 76.4), _keras("resnet152", 76.6),
    _keras("resnet50v2", 76.0), _keras("resnet101v2", 77.2), _keras("resnet152v2", 78.0),
    _keras("densenet121", 75.0), _keras("densenet169", 76.2), _keras("densenet201", 77.3),
    _keras("vgg16", 71.3), _keras("vgg19", 71.3),
    # --- torchvision ---
    _torchvision("resnet18", "IMAGENET1K_V1", "resnet18-f37072fd.pth", 69.758),
    _torchvision("resnet34", "IMAGENET1K_V1", "resnet34-b627a593.pth", 73.314),
    _torchvision("resnet50_tv", "IMAGENET1K_V1", "resnet50-0676ba61.pth", 76.13),
    _torchvision("resnet50_tv", "IMAGENET1K_V2", "resnet50-11ad3fa6.pth", 80.858, resize=232),
    _torchvision("resnet101_tv", "IMAGENET1K_V1", "resnet101-63fe2227.pth", 77.374),
    _torchvision("resnet101_tv", "IMAGENET1K_V2", "resnet101-cd907fc2.pth", 81.886, resize=232),
    _torchvision("resnet152_tv", "IMAGENET1K_V1", "resnet152-394f9c45.pth", 78.312),
    _torchvision("resnet152_tv", "IMAGENET1K_V2", "resnet152-f82ba261.pth", 82.284, resize=232),
    _torchvision("densenet121", "IMAGENET1K_V1", "densenet121-a639ec97.pth", 74.434),
    _torchvision("densenet169", "IMAGENET1K_V1", "densenet169-b2777c0a.pth", 75.6),
    _torchvision("densenet201", "IMAGENET1K_V1", "densenet201-c1103571.pth", 76.896),
    _torchvision("vgg11", "IMAGENET1K_V1", "vgg11-8a719046.pth", 69.02),
    _torchvision("vgg11_bn", "IMAGENET1K_V1", "vgg11_bn-6002323d.pth", 70.37),
    _torchvision("vgg13", "IMAGENET1K_V1", "vgg13-19584684.pth", 69.928),
    _torchvision("vgg13_bn", "IMAGENET1K_V1", "vgg13_bn-abd245e5.pth", 71.586),
    _torchvision("vgg16", "IMAGENET1K_V1", "vgg16-397923af.pth", 71.592),
    _torchvision("vgg16_bn", "IMAGENET1K_V1", "vgg16_bn-6c64b313.pth", 73.36),
    _torchvision("vgg19", "IMAGENET1K_V1", "vgg19-dcbb9e9d.pth", 72.376),
    _torchvision("vgg19_bn", "IMAGENET1K_V1", "vgg19_bn-c79401a0.pth", 74.218),
    _torchvision("alexnet_tv", "IMAGENET1K_V1", "alexnet-owt-7be5be79.pth", 56.522),
    _torchvision("googlenet_tv", "IMAGENET1K_V1", "googlenet-1378be20.pth", 69.778,
                 preprocessing=_GOOGLENET_TV),
    # --- timm (Hugging Face Hub) ---
    _timm("resnet18", "a1_in1k", "resnet18", 71.504, 0.95),
    _timm("resnet34", "a1_in1k", "resnet34", 76.420, 0.95),
    _timm("resnet50_tv", "a1_in1k", "resnet50", 80.382, 0.95),
    _timm("resnet101_tv", "a1_in1k", "resnet101", 81.494, 0.95),
    _timm("resnet152_tv", "a1_in1k", "resnet152", 81.998, 0.95),
    _timm("densenet121", "ra_in1k", "densenet121", 75.574, 0.875),
]

# The default (`imagenet`) of each model that has no keras.applications file: torchvision's best.
_DEFAULTS = {
    "resnet18": "IMAGENET1K_V1", "resnet34": "IMAGENET1K_V1", "resnet50_tv": "IMAGENET1K_V2",
    "resnet101_tv": "IMAGENET1K_V2", "resnet152_tv": "IMAGENET1K_V2", "vgg11": "IMAGENET1K_V1",
    "vgg11_bn": "IMAGENET1K_V1", "vgg13": "IMAGENET1K_V1", "vgg13_bn": "IMAGENET1K_V1",
    "vgg16_bn": "IMAGENET1K_V1", "vgg19_bn": "IMAGENET1K_V1", "alexnet_tv": "IMAGENET1K_V1",
    "googlenet_tv": "IMAGENET1K_V1",
}


def _table(rows, defaults):
    table: dict = {}
    for row in rows:
        presets = table.setdefault(row.model, {})
        if row.name in presets:
            raise ValueError(f"Preset {row.qualified_name} is listed twice")
        presets[row.name] = row
    for model, name in defaults.items():
        if DEFAULT_PRESET in table[model]:
            raise ValueError(f"{model} has its own {DEFAULT_PRESET!r} preset; it needs no default")
        table[model][DEFAULT_PRESET] = dataclasses.replace(
            table[model][name], name=DEFAULT_PRESET, alias_of=name
        )
    return table


# {registry name: {preset name: Preset}}
PRESETS = _table(_ROWS, _DEFAULTS)

# Architectures whose weights belong to a twin registered under another name: a hint for the
# error when a preset is asked of the wrong one.
TWIN_HINTS = {
    "resnet50": "resnet50_tv", "resnet101": "resnet101_tv", "resnet152": "resnet152_tv",
    "alexnet": "alexnet_tv", "googlenet": "googlenet_tv", "googlenet_bn": "googlenet_tv",
}
TWIN_REASONS = {
    "resnet50_tv": "torchvision's and timm's ResNet-50 (v1.5: stride in the 3x3 convolution, no "
    "convolution bias)",
    "resnet101_tv": "torchvision's and timm's ResNet-101 (v1.5)",
    "resnet152_tv": "torchvision's and timm's ResNet-152 (v1.5)",
    "alexnet_tv": "torchvision's AlexNet (64-192-384-256-256)",
    "googlenet_tv": "torchvision's GoogLeNet (BatchNorm, 3x3 in the third path)",
}


def preset_names(model: str) -> list[str]:
    """The preset names of a registered model (`imagenet` first), or [] when it has none."""
    names = list(PRESETS.get(model, {}))
    return sorted(names, key=lambda name: (name != DEFAULT_PRESET, name))


def find_preset(model: str, name: str) -> Optional[Preset]:
    """The preset `name` of `model` (case-insensitive), or None."""
    for key, preset in PRESETS.get(model, {}).items():
        if key.lower() == name.lower():
            return preset
    return None


def unknown_preset_message(model: str, name: str) -> str:
    """Why `name` is no preset of `model`, with where it does exist when it does."""
    available = preset_names(model)
    if available:
        listed = f"presets of {model}: {', '.join(map(repr, available))}"
    else:
        listed = f"{model} has no pretrained presets"
    twin = TWIN_HINTS.get(model)
    if twin is not None and find_preset(twin, name) is not None:
        listed += f"; {name!r} is a preset of {twin!r}, {TWIN_REASONS[twin]}"
    elif not available:
        with_presets = sorted(PRESETS)
        listed += f" (models with presets: {', '.join(with_presets)})"
    return listed


def get_preset(model: str, name: str = DEFAULT_PRESET) -> Preset:
    """The `Preset` named `name` of the registered model `model` (e.g. `get_preset("resnet50_tv",
    "IMAGENET1K_V2")`); an unknown name lists the model's presets."""
    preset = find_preset(model, name) if isinstance(name, str) else None
    if preset is None:
        raise ValueError(
            f"Unknown weights preset: {unknown_preset_message(model, str(name))}. "
            f"Received: weights={name!r}"
        )
    return preset


def list_presets(model: Optional[str] = None) -> list[Preset]:
    """Every preset (of `model`, when given), aliases (`imagenet` pointing elsewhere) left out."""
    models = [model] if model is not None else sorted(PRESETS)
    return [
        preset
        for name in models
        for preset in PRESETS.get(name, {}).values()
        if preset.alias_of is None
    ]


def resolve_preprocessing(spec) -> Preprocessing:
    """A `Preprocessing` from a `Preprocessing`, a `Preset`, a mode name ("torch", "caffe",
    "tf") or "MODEL" / "MODEL.PRESET" (e.g. "resnet50_tv.IMAGENET1K_V2")."""
    if isinstance(spec, Preprocessing):
        return spec
    if isinstance(spec, Preset):
        return spec.preprocessing
    if isinstance(spec, str):
        if spec in MODES:
            return MODES[spec]
        model, _, name = spec.partition(".")
        if model in PRESETS:
            return get_preset(model, name or DEFAULT_PRESET).preprocessing
    raise ValueError(
        "`preset` must be a preprocessing mode ('torch', 'caffe', 'tf'), a model with presets "
        "or 'MODEL.PRESET' (e.g. 'resnet50_tv.IMAGENET1K_V2'), or a Preset. "
        f"Received: preset={spec!r}"
    )


def markdown_table() -> str:
    """The README's weights table: every preset, its source, the top-1 the source reports and
    the licence, models in the registry's order (`imagenet` marks each model's default)."""
    from keras_modern_cnn.choices import natural_key

    lines = [
        "| model | preset | source | ImageNet top-1 (source) | eval resize / crop | licence |",
        "|---|---|---|---:|---|---|",
    ]
    for model in sorted(PRESETS, key=natural_key):
        default = PRESETS[model][DEFAULT_PRESET]
        first = default.alias_of or DEFAULT_PRESET
        for preset in sorted(list_presets(model), key=lambda p: (p.name != first, p.source, p.name)):
            name = f"`{preset.name}`"
            if default.alias_of == preset.name:
                name = f"`imagenet` = {name}"
            crop = preset.preprocessing.crop_pct
            protocol = ("not stated" if crop is None
                        else f"{round(224 / crop)} / 224, {preset.preprocessing.interpolation}")
            lines.append(
                f"| `{model}` | {name} | {preset.source} | {preset.top1:g} % | {protocol} | "
                f"{preset.license} |"
            )
    return "\n".join(lines)

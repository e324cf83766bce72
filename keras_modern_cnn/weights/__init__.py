"""Pretrained weights: presets, downloads, converters from PyTorch layouts, preprocessing.

    import keras_modern_cnn as kmc
    model = kmc.ResNet50(weights="imagenet")                      # keras.applications' file
    model = kmc.get_model("resnet50_tv", weights="IMAGENET1K_V2")  # torchvision's, converted
    model = kmc.ResNet18(weights="hf://timm/resnet18.a1_in1k")     # timm's, from the Hub
    x = kmc.preprocess_input(images, "resnet50")                   # or include_preprocessing=True
    kmc.decode_predictions(model.predict(x), top=5)

The preset table (`presets.PRESETS`) is data; `download` fetches with `keras.utils.get_file`
and `huggingface_hub`; `convert` maps torchvision's and timm's state dicts onto the zoo;
`loading.load_weights` is what every builder's `weights=` goes through. Importing this package
loads no backend.
"""

from keras_modern_cnn.weights.convert import read_state_dict
from keras_modern_cnn.weights.download import fetch
from keras_modern_cnn.weights.imagenet import decode_predictions, imagenet_classes, preprocess_input
from keras_modern_cnn.weights.loading import load_weights
from keras_modern_cnn.weights.presets import (
    MODES,
    PRESETS,
    Preprocessing,
    Preset,
    get_preset,
    list_presets,
    preset_names,
)

__all__ = [
    "MODES", "PRESETS", "Preprocessing", "Preset", "decode_predictions", "fetch", "get_preset",
    "imagenet_classes", "list_presets", "load_weights", "preprocess_input", "preset_names",
    "read_state_dict",
]

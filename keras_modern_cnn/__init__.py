"""keras-modern-cnn: the 'Modern CNNs' of Dive into Deep Learning as Keras 3 applications.

    import keras_modern_cnn as kmc
    model = kmc.get_model("bn_lenet")          # or kmc.BNLeNet(), kmc.DenseNet(growth_rate=32)
"""

from keras_modern_cnn import layers, losses, saving, utils
from keras_modern_cnn.applications import *  # noqa: F403  (every builder of the zoo)
from keras_modern_cnn.blocks import batch_norm_implementation
from keras_modern_cnn.export import export
from keras_modern_cnn.features import FeatureInfo, copy_weights_by_name
from keras_modern_cnn.heads import pre_logits, replace_head
from keras_modern_cnn.layers import BatchNorm
from keras_modern_cnn.registry import (
    get_model,
    get_model_meta,
    get_spec,
    list_models,
    register_model,
    unregister_model,
)
from keras_modern_cnn.version import __version__

"""The model zoo: one module per family, each registering its variants.

Installed as `keras_modern_cnn.applications`; every builder is also exported from the
package root (`keras_modern_cnn.BNLeNet`).
"""

from keras_modern_cnn.applications import lenet
from keras_modern_cnn.applications import alexnet, densenet, googlenet, nin, resnet, unet, vgg
from keras_modern_cnn.applications.lenet import *  # noqa: F403
from keras_modern_cnn.applications.alexnet import *  # noqa: F403
from keras_modern_cnn.applications.vgg import *  # noqa: F403
from keras_modern_cnn.applications.nin import *  # noqa: F403
from keras_modern_cnn.applications.googlenet import *  # noqa: F403
from keras_modern_cnn.applications.resnet import *  # noqa: F403
from keras_modern_cnn.applications.densenet import *  # noqa: F403
from keras_modern_cnn.applications.unet import *  # noqa: F403

FAMILY_MODULES = [lenet, alexnet, vgg, nin, googlenet, resnet, densenet, unet]

__all__ = [name for module in FAMILY_MODULES for name in module.__all__]

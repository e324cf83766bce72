"""Datasets for training and tests: the embedded offline shapes dataset (and TFDS, local files)."""

from keras_modern_cnn.data.embedded import SHAPE_CLASSES, load_shapes

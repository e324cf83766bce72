"""Datasets for training and tests: the embedded offline shapes dataset, TFDS, local files."""

from keras_modern_cnn.data.embedded import SHAPE_CLASSES, load_shapes
from keras_modern_cnn.data.pipeline import make_pipeline, prepare_image
from keras_modern_cnn.data.sources import ImageData, load_data, with_class_mapping

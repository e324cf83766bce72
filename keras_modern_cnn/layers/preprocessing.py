"""ImagePreprocessing: raw images (0-255) to the input pretrained weights expect, in the model.

`include_preprocessing=True` (keras.applications' spelling) puts this layer at a model's input,
so every caller (a script, `kmc predict`, each exported format) feeds raw pixels alike.

It resizes with `keras.ops.image.resize`, not `keras.layers.Resizing`: in Keras 3.15 a
`Resizing` layer's `training=True` default leaks through the call context and puts every
BatchNorm after it in training mode on a plain `model(x)` call (keras-team/keras #23166, fixed
after 3.15; tests/test_weights.py holds the regression test). It resizes the whole image, as
`Resizing` does by default, without cropping to the target's aspect ratio: Keras computes that
crop from the input's size in Python, which torch's ONNX exporter freezes at the size it traced
with and JAX's SavedModel export cannot do for an input of any size (measured, BENCHMARKS.md),
so the exported artefacts would disagree with the model on non-square images.
"""

import keras

from keras_modern_cnn.validation import check_bool, check_choice, check_number

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
CHANNEL_ORDERS = ("rgb", "bgr")


@keras.saving.register_keras_serializable(package="keras_modern_cnn")
class ImagePreprocessing(keras.layers.Layer):
    """Resize raw images to `size` (the aspect ratio is not kept: centre-crop non-square images
    first to follow a source's evaluation protocol), multiply by `scale`, put the channels in
    `channel_order`, subtract `mean` and divide by `std`; with `grayscale_to_rgb`, one-channel
    images are repeated into three first (RGB weights on grayscale data).

    Inputs are images with values in [0, 255] (any real or integer dtype) of any size; the
    computation runs in float32. Images already at `size` are not resampled.

    Args:
        size: (height, width) to resize to, or None to keep the input's size.
        interpolation: "bilinear", "bicubic" or "nearest".
        scale: factor applied first (1/255 maps pixels to [0, 1]).
        mean: per-channel values subtracted, in the output's channel order (one value, or one
            per channel).
        std: per-channel divisors, as `mean`.
        channel_order: "rgb" (unchanged) or "bgr" (channels reversed: Caffe's convention).
        grayscale_to_rgb: repeat a one-channel input into three channels.
        data_format: "channels_last" or "channels_first" (default: Keras's setting).
    """

    def __init__(self, size=None, interpolation="bilinear", scale=1 / 255, mean=(0.0,), std=(1.0,),
                 channel_order="rgb", grayscale_to_rgb=False, data_format=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if size is not None:
            if not (isinstance(size, (tuple, list)) and len(size) == 2):
                raise ValueError(f"`size` must be None or (height, width). Received: size={size!r}")
            size = tuple(int(check_number("size", side, low=1)) for side in size)
        self.size = size
        self.interpolation = check_choice("interpolation", interpolation, INTERPOLATIONS)
        self.scale = float(check_number("scale", scale, low=0.0, low_open=True))
        self.mean = tuple(float(check_number("mean", value)) for value in mean)
        self.std = tuple(float(check_number("std", value, low=0.0, low_open=True)) for value in std)
        self.channel_order = check_choice("channel_order", channel_order, CHANNEL_ORDERS)
        self.grayscale_to_rgb = check_bool("grayscale_to_rgb", grayscale_to_rgb)
        self.data_format = keras.config.image_data_format() if data_format is None else data_format
        check_choice("data_format", self.data_format, ("channels_last", "channels_first"))

    @property
    def _channel_axis(self):
        return 1 if self.data_format == "channels_first" else -1

    def build(self, input_shape):
        channels = input_shape[self._channel_axis]
        if self.grayscale_to_rgb:
            if channels != 1:
                raise ValueError(
                    "`grayscale_to_rgb` repeats one-channel images into three. "
                    f"Received: input with {channels} channels"
                )
            channels = 3
        for name in ("mean", "std"):
            values = getattr(self, name)
            if channels is not None and len(values) not in (1, channels):
                raise ValueError(
                    f"`{name}` needs one value or one per channel ({channels}). "
                    f"Received: {name}={values!r}"
                )

    def _per_channel(self, values):
        shape = [1, 1, 1]
        shape[0 if self.data_format == "channels_first" else 2] = len(values)
        return keras.ops.reshape(keras.ops.convert_to_tensor(values, "float32"), shape)

    def call(self, inputs):
        x = keras.ops.cast(inputs, "float32")
        if self.grayscale_to_rgb:
            x = keras.ops.repeat(x, 3, axis=self._channel_axis)
        spatial = tuple(x.shape[2:4] if self.data_format == "channels_first" else x.shape[1:3])
        already = all(isinstance(side, int) for side in spatial) and spatial == self.size
        if self.size is not None and not already:
            x = keras.ops.image.resize(
                x, self.size, interpolation=self.interpolation, data_format=self.data_format
            )
        x = x * self.scale
        if self.channel_order == "bgr":
            x = keras.ops.flip(x, axis=self._channel_axis)
        return (x - self._per_channel(self.mean)) / self._per_channel(self.std)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        if self.grayscale_to_rgb:
            shape[self._channel_axis] = 3
        if self.size is not None:
            first = 2 if self.data_format == "channels_first" else 1
            shape[first:first + 2] = self.size
        return tuple(shape)

    def get_config(self):
        return {
            **super().get_config(), "size": self.size, "interpolation": self.interpolation,
            "scale": self.scale, "mean": self.mean, "std": self.std,
            "channel_order": self.channel_order, "grayscale_to_rgb": self.grayscale_to_rgb,
            "data_format": self.data_format,
        }

"""Image files: which ones are read, the one way they are decoded, and the check made up front.

Training (the image-folder source), `kmc evaluate`, `kmc predict` and export calibration all
read image files through `decode_image` (TensorFlow's decoder, in the tf.data graph or
eagerly) and scale them through `pipeline.prepare_image`, so one file is one model input
whichever command reads it. `check_image_file` runs before any of them uses a file: it
opens the header (PIL, without decoding), refuses bomb-sized images and formats or variants
the decoder does not read (or misreads), then decodes the file with `decode_image` itself;
what fails is reported with the file's name before the first step. Hidden files and folders
(`files.is_hidden`: `.DS_Store`, `.ipynb_checkpoints/`, `__MACOSX/`) are never read.
"""

import os
import warnings

from keras_modern_cnn.files import is_hidden

# What TensorFlow's `decode_image` reads: PNG (8 and 16 bits, palette, grey, alpha), JPEG,
# GIF (first frame), BMP (24/32-bit, 8-bit grey), WebP.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jfif", ".jpeg", ".jpg", ".png", ".webp")
DECODED_FORMATS = ("BMP", "GIF", "JPEG", "MPO", "PNG", "WEBP")  # PIL's names of them
# Image files kmc does not read: reported by name (never silently skipped) when met.
UNSUPPORTED_IMAGE_EXTENSIONS = (
    ".avif", ".cr2", ".dng", ".heic", ".heif", ".ico", ".jp2", ".jxl", ".nef", ".pbm", ".pgm",
    ".ppm", ".psd", ".svg", ".tga", ".tif", ".tiff",
)
# PIL's decompression-bomb threshold: larger images are refused, not decoded.
MAX_IMAGE_PIXELS = 89_478_485
CONVERT_HINT = "convert it to PNG or JPEG"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def list_image_files(folder):
    """`(images, unsupported, other)` under `folder` (recursively, sorted, hidden ones left out):
    the files kmc reads, image files it does not read, and files that are not images."""
    images, unsupported, other = [], [], []
    for root, folders, files in os.walk(folder):
        folders[:] = sorted(name for name in folders if not is_hidden(name))
        for name in sorted(files):
            if is_hidden(name):
                continue
            path = os.path.join(root, name)
            extension = os.path.splitext(name)[1].lower()
            if extension in IMAGE_EXTENSIONS:
                images.append(path)
            elif extension in UNSUPPORTED_IMAGE_EXTENSIONS:
                unsupported.append(path)
            else:
                other.append(path)
    return images, unsupported, other


def unsupported_reason(path):
    extension = os.path.splitext(path)[1].lower() or "(no extension)"
    return (f"a {extension} file, a format kmc does not read (it reads "
            f"{', '.join(IMAGE_EXTENSIONS)}): {CONVERT_HINT}")


def check_image_file(path):
    """Why the image file at `path` cannot be used, or None when it decodes with `decode_image`.

    Reads the header first (size, format) so that a bomb-sized image is never decoded.
    """
    return _header_problem(path) or _decode_problem(path)


def check_image_files(paths):
    """`{path: why it cannot be used}` for the files of `paths` that fail (`check_image_file`).

    The headers are read one by one (PIL, without decoding); the files that pass are decoded by
    `decode_image` in one parallel tf.data pass, and only those that fail there are decoded
    again one by one, for their message.
    """
    problems = {}
    for path in paths:
        reason = _header_problem(path)
        if reason is not None:
            problems[path] = reason
    candidates = [path for path in paths if path not in problems]
    if not candidates:
        return problems
    import tensorflow as tf

    def decodes(path):
        return path, tf.shape(decode_image(tf.io.read_file(path), 3))[0]

    checked = (tf.data.Dataset.from_tensor_slices(candidates)
               .map(decodes, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
               .ignore_errors())
    readable = {path.decode() for path, _ in checked.as_numpy_iterator()}
    for path in candidates:
        if path not in readable:
            problems[path] = _decode_problem(path) or "not decodable"
    return problems


def _header_problem(path):
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                format, (width, height), mode = image.format, image.size, image.mode
    except Image.DecompressionBombError as error:
        return f"too large to decode safely ({error}): a decompression bomb?"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as error:
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            return "an empty file"
        return f"not a readable image ({type(error).__name__}: {' '.join(str(error).split())[:120]})"
    if width * height > MAX_IMAGE_PIXELS:
        return (f"{width}x{height} pixels, more than the {MAX_IMAGE_PIXELS:,} kmc decodes "
                f"(a decompression bomb?)")
    extension = os.path.splitext(path)[1].lower()
    if format not in DECODED_FORMATS:
        return f"a {format} image named {extension or '(no extension)'}, a format kmc does not read: {CONVERT_HINT}"
    if format == "BMP" and mode not in ("RGB", "RGBA", "L"):
        kind = "1-bit" if mode == "1" else "palette"
        return f"a {kind} BMP, which the decoder misreads: {CONVERT_HINT}"
    return None


def _decode_problem(path):
    import tensorflow as tf

    try:
        with open(path, "rb") as handle:
            decode_image(handle.read(), 3)
    except (tf.errors.OpError, OSError, ValueError) as error:
        return f"not decodable ({_op_message(error)})"
    return None


def _op_message(error):
    """TensorFlow's op error without its node name: `Invalid PNG data, size 600`."""
    message = str(getattr(error, "message", error))
    message = message.split("}} ", 1)[-1].split(" [Op:", 1)[0]
    return " ".join(message.split())[:160]


def decode_image(contents, channels):
    """The image of encoded bytes `contents` (a string tensor or bytes) as float32 HxWx`channels`
    holding 8-bit values in [0, 255].

    The one decoder of the package: 16-bit PNGs keep their precision (value / 257), alpha is
    dropped, grey images are repeated to RGB and RGB images weighted to grey
    (`tf.image.rgb_to_grayscale`) as `channels` (1 or 3) asks. Works eagerly and in tf.data.
    """
    import tensorflow as tf

    contents = tf.convert_to_tensor(contents, tf.string)

    def png():  # 8- or 16-bit: decoded as 16-bit, 8-bit values exactly x * 257
        return tf.cast(tf.io.decode_png(contents, channels=0, dtype=tf.uint16), tf.float32) / 257.0

    def other():
        image = tf.io.decode_image(contents, channels=0, expand_animations=False)
        return tf.cast(image, tf.float32)

    image = tf.cond(tf.equal(tf.strings.substr(contents, 0, 8), PNG_SIGNATURE), png, other)
    count = tf.shape(image)[-1]
    # Grey + alpha (2) and RGBA (4): keep the colour channels.
    image = tf.cond(tf.equal(count % 2, 0), lambda: image[..., :-1], lambda: image)
    count = tf.shape(image)[-1]
    if channels == 1:
        image = tf.cond(tf.equal(count, 3), lambda: tf.image.rgb_to_grayscale(image), lambda: image)
    else:
        image = tf.cond(tf.equal(count, 1), lambda: tf.image.grayscale_to_rgb(image), lambda: image)
    image.set_shape([None, None, channels])
    return image


def read_image(path, channels):
    """`decode_image` of the file at `path`, eagerly (float32 HxWxC tensor, values 0-255)."""
    import tensorflow as tf

    return decode_image(tf.io.read_file(path), channels)

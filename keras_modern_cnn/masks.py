"""Segmentation masks as pictures: the class-colour palette, mask PNGs, side-by-side overlays.

A mask PNG is a palette ("P" mode) image, as PASCAL VOC's ground truth is: each pixel stores its
class index (read it back with `numpy.asarray(PIL.Image.open(path))`) and the palette shows
it in colour. Both writers go through `files.atomic_write`.
"""

import colorsys

import numpy as np

from keras_modern_cnn.files import atomic_write

MAX_CLASSES = 256  # a palette PNG holds 8-bit indices


def palette(num_classes):
    """`(num_classes, 3)` uint8 colours: class 0 (background) black, the others evenly spaced
    hues, alternately bright and dark so that neighbouring classes differ."""
    colours = np.zeros((num_classes, 3), np.uint8)
    for index in range(1, num_classes):
        hue = (index - 1) / max(num_classes - 1, 1)
        value = 1.0 if index % 2 else 0.7
        colours[index] = np.round(np.multiply(colorsys.hsv_to_rgb(hue, 0.9, value), 255))
    return colours


def colour(mask, num_classes):
    """An HxW class-index mask as an HxWx3 uint8 RGB image (`palette(num_classes)`)."""
    return palette(num_classes)[np.asarray(mask)]


def write_mask(path, mask, num_classes):
    """Write an HxW class-index mask (`num_classes` <= 256) as a palette PNG, atomically."""
    from PIL import Image

    image = Image.fromarray(np.asarray(mask, np.uint8), mode="P")
    image.putpalette(palette(num_classes).ravel().tolist())
    return atomic_write(path, image.save)


def side_by_side(image, mask, num_classes, alpha=0.5):
    """Input | coloured mask | the mask blended over the input (background left as is), one
    HxW(3W)x3 uint8 picture. `image`: HxWx1 or HxWx3 uint8."""
    rgb = np.broadcast_to(np.asarray(image, np.uint8), (*mask.shape, 3)).astype(np.float32)
    colours = colour(mask, num_classes).astype(np.float32)
    blend = np.where((mask > 0)[..., None], (1 - alpha) * rgb + alpha * colours, rgb)
    return np.concatenate([rgb, colours, blend], axis=1).round().astype(np.uint8)


OVERLAY_MIN_SIDE = 256  # pixels: every panel of an overlay is enlarged to at least this height
OVERLAY_PANELS = ("input", "predicted mask", "mask over the input")


def overlay_picture(image, mask, num_classes, class_names=None):
    """`side_by_side` made readable: each panel enlarged (nearest neighbour, whole pixels) to at
    least `OVERLAY_MIN_SIDE` pixels high, a caption over each, and a legend below naming the
    colour of every class present in the mask (`class_names`, default the class indices)."""
    from PIL import Image, ImageDraw, ImageFont

    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    panels = side_by_side(image, mask, num_classes)
    height, width = mask.shape
    scale = max(1, -(-OVERLAY_MIN_SIDE // height))
    enlarged = Image.fromarray(panels).resize((panels.shape[1] * scale, height * scale), Image.NEAREST)
    font = ImageFont.load_default(size=14)
    line = 22
    present = [int(index) for index in np.unique(mask)]
    columns = max(1, enlarged.width // 170)
    legend_rows = -(-len(present) // columns)
    picture = Image.new("RGB", (enlarged.width, line + enlarged.height + 8 + legend_rows * line), "white")
    picture.paste(enlarged, (0, line))
    draw = ImageDraw.Draw(picture)
    for index, caption in enumerate(OVERLAY_PANELS):
        draw.text((index * width * scale + 4, 4), caption, fill="black", font=font)
    colours = palette(num_classes)
    top = line + enlarged.height + 8
    for position, index in enumerate(present):
        x, y = (position % columns) * 170 + 4, top + (position // columns) * line
        draw.rectangle((x, y + 2, x + 14, y + 16), fill=tuple(int(c) for c in colours[index]), outline="black")
        share = float(np.mean(mask == index))
        draw.text((x + 20, y + 1), f"{names[index]} {share:.0%}", fill="black", font=font)
    return picture


def write_side_by_side(path, image, mask, num_classes, class_names=None):
    """Write `overlay_picture(image, mask, num_classes, class_names)` as a PNG, atomically."""
    return atomic_write(path, overlay_picture(image, mask, num_classes, class_names).save)

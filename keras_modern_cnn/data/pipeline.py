"""The tf.data input pipeline shared by training, evaluation and the benchmark.

Order (fixing the seeds' pipeline, which shuffles whole batches): decode and resize each
image to the model's input size, scale to [0, 1] (or standardise per image), cache, shuffle
*examples*, augment (training only), batch, prefetch. The result feeds `model.fit` on any
Keras backend (TensorFlow and JAX both consume `tf.data`). `prepare_image` is the resize and
scaling step, shared with `kmc predict` (`keras_modern_cnn.inference`): one image, one input.
"""

import keras

from keras_modern_cnn.choices import NORMALIZATIONS, TASKS
from keras_modern_cnn.validation import check_bool, check_choice, check_number, check_positive_int


def prepare_image(image, image_size, normalization="scale", pixel_scale=255.0):
    """One image (HxWxC) as the model reads it: resized bilinearly to `image_size` squared,
    then divided by `pixel_scale` into [0, 1] ("scale"), standardised per image
    ("standardize"), or on the 0-255 scale of 8-bit pixels for a model that normalises itself
    ("none": a dataset already in [0, 1], `pixel_scale` 1, is scaled up)."""
    import tensorflow as tf

    image = tf.image.resize(tf.cast(image, tf.float32), (image_size, image_size))
    if normalization == "scale":
        return image / float(pixel_scale)
    if normalization == "none":
        return image * (255.0 / float(pixel_scale))
    return tf.image.per_image_standardization(image)


def make_pipeline(
    dataset,
    *,
    image_size,
    batch_size,
    training,
    task="classification",
    normalization="scale",
    augment=False,
    cache=True,
    shuffle_buffer=10000,
    seed=None,
    replicas=1,
    processes=1,
    process_index=0,
    pixel_scale=255.0,
):
    """Batched, prefetched `tf.data.Dataset` of `(images, targets)` ready for `model.fit`.

    Args:
        dataset: unbatched `tf.data.Dataset` of `(image HxWxC, target)`, e.g.
            `ImageData.train` from `keras_modern_cnn.data.load_data`.
        image_size: side of the square model input; images are resized (bilinear;
            masks nearest-neighbour) when their size differs.
        batch_size: examples per batch.
        training: shuffle (examples, every epoch) and, with `augment`, augment.
        task: "classification" (integer labels) or "segmentation" (integer HxW masks,
            resized and flipped/cropped together with their images).
        normalization: "scale" divides by `pixel_scale` (255: 8-bit pixels) into [0, 1];
            "standardize" gives every image zero mean and unit variance; "none" keeps raw
            pixels on the 0-255 scale (for a model with its preprocessing inside).
        augment: random horizontal flip and random crop after 4-pixel padding
            (training only; the test split is never augmented).
        cache: keep the decoded, resized examples in memory after the first epoch.
        shuffle_buffer: examples in the shuffle buffer.
        seed: seed of the shuffle and augmentation (None: nondeterministic).
        replicas: devices a data-parallel step splits every batch over. When the last batch
            does not divide evenly, training drops its remainder (at most `replicas - 1`
            examples per epoch, different ones each epoch as the split is reshuffled) and
            evaluation pads it with zero-weight examples, yielding `(images, targets,
            weights)`, so every test example counts exactly once in weighted metrics.
        processes: the processes of a multi-process data-parallel run (their devices count
            in `replicas`).
        process_index: this process's index: it yields its own contiguous share of every
            batch, the `process_index`-th of `processes` equal slices.
        pixel_scale: what the dataset's values are divided by (`ImageData.pixel_scale`).
    """
    import tensorflow as tf

    image_size = check_positive_int("image_size", image_size)
    batch_size = check_positive_int("batch_size", batch_size)
    check_bool("training", training)
    check_choice("task", task, TASKS)
    check_choice("normalization", normalization, NORMALIZATIONS)
    check_bool("augment", augment)
    check_bool("cache", cache)
    check_number("pixel_scale", pixel_scale, low=0.0, low_open=True)
    shuffle_buffer = check_positive_int("shuffle_buffer", shuffle_buffer)
    replicas = check_positive_int("replicas", replicas)
    processes = check_positive_int("processes", processes)
    if replicas % processes:
        raise ValueError(
            f"`replicas` must be a multiple of `processes` ({processes}). Received: replicas={replicas}"
        )
    if check_positive_int("process_index", process_index, minimum=0) >= processes:
        raise ValueError(
            f"`process_index` must be below `processes` ({processes}). "
            f"Received: process_index={process_index!r}"
        )
    segmentation = task == "segmentation"
    channels_first = keras.config.image_data_format() == "channels_first"
    autotune = tf.data.AUTOTUNE

    def prepare(image, target):
        image = prepare_image(image, image_size, normalization, pixel_scale)
        if segmentation:
            size = (image_size, image_size)
            target = tf.image.resize(target[..., None], size, method="nearest")[..., 0]
        return image, tf.cast(target, tf.int32)

    def random_flip_and_crop(image, target):
        channels = tf.shape(image)[-1]
        stacked = image
        if segmentation:  # transform the mask with its image
            stacked = tf.concat([image, tf.cast(target[..., None], tf.float32)], axis=-1)
        stacked = tf.image.random_flip_left_right(stacked, seed=seed)
        padded = tf.image.resize_with_crop_or_pad(stacked, image_size + 8, image_size + 8)
        stacked = tf.image.random_crop(padded, tf.shape(stacked), seed=seed)
        if segmentation:
            return stacked[..., :channels], tf.cast(stacked[..., channels], tf.int32)
        return stacked, target

    def drop_remainder(images, targets):
        keep = tf.shape(images)[0] // replicas * replicas
        return images[:keep], targets[:keep]

    def pad_with_zero_weights(images, targets):
        count = tf.shape(images)[0]
        pad = (replicas - count % replicas) % replicas
        weights = tf.concat([tf.ones([count]), tf.zeros([pad])], axis=0)

        def padded(tensor):
            return tf.pad(tensor, [[0, pad]] + [[0, 0]] * (tensor.shape.rank - 1))

        return padded(images), padded(targets), weights

    def process_share(*batch):
        share = tf.shape(batch[0])[0] // processes
        return tuple(part[process_index * share:(process_index + 1) * share] for part in batch)

    def to_channels_first(images, *rest):
        return (tf.transpose(images, (0, 3, 1, 2)), *rest)

    pipeline = dataset.map(prepare, num_parallel_calls=autotune)
    if cache:
        pipeline = pipeline.cache()
    if training:
        pipeline = pipeline.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        if augment:
            pipeline = pipeline.map(random_flip_and_crop, num_parallel_calls=autotune)
    pipeline = pipeline.batch(batch_size)
    if replicas > 1 and training:
        examples = int(dataset.cardinality())
        pipeline = pipeline.map(drop_remainder).filter(lambda images, _: tf.shape(images)[0] > 0)
        if examples >= 0:  # the filter hides the batch count, and Keras then warns that the
            # "input ran out of data" at the end of the first epoch: state it
            batches = examples // batch_size + (examples % batch_size >= replicas)
            pipeline = pipeline.apply(tf.data.experimental.assert_cardinality(batches))
    elif replicas > 1:
        pipeline = pipeline.map(pad_with_zero_weights)
    if processes > 1:
        pipeline = pipeline.map(process_share)
    if channels_first:
        pipeline = pipeline.map(to_channels_first, num_parallel_calls=autotune)
    return pipeline.prefetch(autotune)

"""The tf.data input pipeline shared by training, evaluation and the benchmark.

Order (fixing the seeds' pipeline, which shuffles whole batches): decode and resize each
image to the model's input size, scale to [0, 1] (or standardise per image), cache, shuffle
*examples*, augment (training only), batch, prefetch. The result feeds `model.fit` on any
Keras backend (TensorFlow and JAX both consume `tf.data`).
"""

import keras

from keras_modern_cnn.choices import NORMALIZATIONS, TASKS
from keras_modern_cnn.validation import check_bool, check_choice, check_positive_int


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
        normalization: "scale" divides by 255; "standardize" gives every image zero
            mean and unit variance; "none" keeps raw 0-255 values (for a model with its
            preprocessing inside).
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
        processes, process_index: the processes of a multi-process data-parallel run (their
            devices count in `replicas`) and this one's index: it yields its own contiguous
            share of every batch, the `process_index`-th of `processes` equal slices.
    """
    import tensorflow as tf

    image_size = check_positive_int("image_size", image_size)
    batch_size = check_positive_int("batch_size", batch_size)
    check_bool("training", training)
    check_choice("task", task, TASKS)
    check_choice("normalization", normalization, NORMALIZATIONS)
    check_bool("augment", augment)
    check_bool("cache", cache)
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
        image = tf.cast(image, tf.float32)
        size = (image_size, image_size)
        image = tf.image.resize(image, size)
        if segmentation:
            target = tf.image.resize(target[..., None], size, method="nearest")[..., 0]
        if normalization == "scale":
            image = image / 255.0
        elif normalization == "standardize":
            image = tf.image.per_image_standardization(image)
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
        pipeline = pipeline.map(drop_remainder).filter(lambda images, _: tf.shape(images)[0] > 0)
    elif replicas > 1:
        pipeline = pipeline.map(pad_with_zero_weights)
    if processes > 1:
        pipeline = pipeline.map(process_share)
    if channels_first:
        pipeline = pipeline.map(to_channels_first, num_parallel_calls=autotune)
    return pipeline.prefetch(autotune)

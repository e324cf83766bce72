"""Data sources (embedded, .npz, image folder, TFDS via mock_data) and the tf.data pipeline."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_modern_cnn.data import SHAPE_CLASSES, load_data, make_pipeline

# The pipelines are tf.data's whatever the backend: run in the TensorFlow pass only (conftest.py).
pytestmark = pytest.mark.backend_independent


def _labels(pipeline):
    return [batch_labels.numpy().tolist() for _, batch_labels in pipeline]


def _write_npz(path, num_train=64, num_test=16, channels=None, seed=0):
    rng = np.random.default_rng(seed)
    shape = (12, 12) if channels is None else (12, 12, channels)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (num_train, *shape), dtype=np.uint8),
        y_train=np.arange(num_train) % 4,
        x_test=rng.integers(0, 256, (num_test, *shape), dtype=np.uint8),
        y_test=np.arange(num_test) % 4,
    )
    return str(path)


def test_npz_source_adds_channel_axis_and_pipeline_resizes_and_scales(tmp_path):
    path = _write_npz(tmp_path / "data.npz")
    data = load_data(path)
    assert (data.channels, data.num_classes, data.num_train, data.num_test) == (1, 4, 64, 16)
    images, labels = next(iter(make_pipeline(data.test, image_size=20, batch_size=16, training=False)))
    assert images.shape == (16, 20, 20, 1) and images.dtype == "float32"
    assert 0.0 <= float(images.numpy().min()) and float(images.numpy().max()) <= 1.0
    assert labels.numpy().tolist() == (np.arange(16) % 4).tolist()  # test split keeps its order
    standardised, _ = next(iter(make_pipeline(
        data.test, image_size=12, batch_size=16, training=False, normalization="standardize"
    )))
    per_image = standardised.numpy().reshape(16, -1)
    np.testing.assert_allclose(per_image.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(per_image.std(axis=1), 1.0, atol=1e-3)


def test_training_pipeline_shuffles_examples_not_batches_every_epoch(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "ordered.npz",
        x_train=rng.integers(0, 256, (64, 8, 8, 1), dtype=np.uint8), y_train=np.arange(64),
        x_test=np.zeros((4, 8, 8, 1), np.uint8), y_test=np.arange(4),
    )
    data = load_data(str(tmp_path / "ordered.npz"))
    pipeline = make_pipeline(data.train, image_size=8, batch_size=8, training=True, seed=1)
    first, second = _labels(pipeline), _labels(pipeline)
    for epoch in (first, second):
        assert sorted(sum(epoch, [])) == list(range(64))  # every example exactly once
        # Batch-level shuffling would keep runs of 8 consecutive indices together.
        assert not any(sorted(batch) == list(range(batch[0] // 8 * 8, batch[0] // 8 * 8 + 8))
                       for batch in map(sorted, epoch))
    assert first != second  # reshuffled each epoch


def test_segmentation_masks_resize_nearest_and_augment_with_their_images(tmp_path):
    data = load_data(task="segmentation", train_examples=16, test_examples=8)
    assert data.num_classes == len(SHAPE_CLASSES) + 1 and data.class_names[0] == "background"
    # Replace the images by their own masks (x 20) to check alignment after flip and crop.
    aligned = data.train.map(lambda image, mask: (tf.cast(mask[..., None] * 20, tf.uint8), mask))
    resized = make_pipeline(aligned, image_size=40, batch_size=16, training=False, task="segmentation")
    images, masks = next(iter(resized))
    assert images.shape == (16, 40, 40, 1) and masks.shape == (16, 40, 40)
    assert set(np.unique(masks.numpy())) <= set(range(11))  # nearest: no blended labels
    augmented = make_pipeline(
        aligned, image_size=28, batch_size=16, training=True, task="segmentation",
        augment=True, seed=3,
    )
    images, masks = next(iter(augmented))
    assert (masks.numpy() > 0).any()
    np.testing.assert_array_equal(np.rint(images.numpy()[..., 0] * 255 / 20), masks.numpy())
    untouched = make_pipeline(aligned, image_size=40, batch_size=16, training=False,
                              task="segmentation", augment=True)
    assert np.array_equal(next(iter(untouched))[0].numpy(), next(iter(untouched))[0].numpy())


def test_image_folder_source_infers_classes_and_splits(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        for index in range(10):
            keras.utils.save_img(
                tmp_path / name / f"{index}.png", rng.integers(0, 256, (10, 14, 3)).astype("uint8")
            )
    data = load_data(str(tmp_path), image_size=16)
    assert data.class_names == ("cat", "dog") and data.channels == 3
    assert (data.num_train, data.num_test) == (16, 4)
    images, labels = next(iter(make_pipeline(data.train, image_size=16, batch_size=32, training=True)))
    assert images.shape == (16, 16, 16, 3) and set(labels.numpy()) == {0, 1}


def test_tfds_source_by_name_with_mock_data():
    with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
        data = load_data("fashion_mnist", data_dir="/nonexistent/tfds")
        images, labels = next(iter(make_pipeline(data.train, image_size=32, batch_size=12, training=True)))
    assert (data.channels, data.num_classes, data.num_train) == (1, 10, 12)
    assert data.class_names[0] == "T-shirt/top"
    assert images.shape == (12, 32, 32, 1) and labels.shape == (12,)


def test_tfds_missing_offline_and_unknown_names_explain_what_to_do(tmp_path):
    with pytest.raises(ValueError, match=r"tfds build mnist --data_dir DIR.*Received: dataset='mnist'"):
        load_data("mnist", data_dir=str(tmp_path), download=False)
    with pytest.raises(ValueError, match="Unknown dataset.*Received: dataset='no_such_data'"):
        load_data("no_such_data")


def test_channels_first_pipeline_transposes_batches(tmp_path):
    keras.config.set_image_data_format("channels_first")
    data = load_data(_write_npz(tmp_path / "rgb.npz", channels=3))
    images, _ = next(iter(make_pipeline(data.train, image_size=10, batch_size=4, training=False)))
    assert images.shape == (4, 3, 10, 10)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(image_size=0), "Received: image_size=0"),
        (dict(normalization="imagenet"), "Received: normalization='imagenet'"),
        (dict(task="detection"), "Received: task='detection'"),
        (dict(replicas=3, processes=2), "multiple of `processes` \\(2\\). Received: replicas=3"),
        (dict(replicas=2, processes=2, process_index=2), "Received: process_index=2"),
    ],
)
def test_pipeline_arguments_are_validated(kwargs, message):
    data = load_data(train_examples=8, test_examples=8)
    arguments = {**dict(image_size=28, batch_size=4, training=True), **kwargs}
    with pytest.raises(ValueError, match=message):
        make_pipeline(data.train, **arguments)


@pytest.mark.backend_independent  # tf.data only
def test_each_process_takes_its_own_share_of_every_padded_batch(tmp_path):
    data = load_data(_write_npz(tmp_path / "data.npz"), test_examples=7)

    def batches(**share):
        pipeline = make_pipeline(data.test, image_size=8, batch_size=4, training=False,
                                 replicas=4, **share)
        return [[np.asarray(part) for part in batch] for batch in pipeline]

    whole = batches()
    shares = [batches(processes=2, process_index=index) for index in range(2)]
    assert [len(batch[0]) for batch in whole] == [4, 4]  # 7 examples, the last one zero-weight
    for batch, first, second in zip(whole, *shares):
        for part, *halves in zip(batch, first, second):
            np.testing.assert_array_equal(np.concatenate(halves), part)
            assert len(halves[0]) == len(halves[1]) == 2


@pytest.mark.backend_independent  # tf.data only
def test_a_data_parallel_training_pipeline_states_how_many_batches_it_yields():
    """Dropping the remainder filters out an emptied last batch; the pipeline still states its
    batch count, so Keras knows the epoch's steps (and does not warn that the input "ran out
    of data")."""
    for examples, expected in [(33, 4), (34, 5), (32, 4)]:  # batches of 8 over 2 replicas
        data = load_data(train_examples=examples, test_examples=1)
        pipeline = make_pipeline(data.train, image_size=28, batch_size=8, training=True, replicas=2)
        assert int(pipeline.cardinality()) == expected == len(list(pipeline)), examples


def _arrays(num=8, size=8, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    return dict(
        x_train=rng.integers(0, 256, (num, size, size, channels)).astype(np.uint8),
        y_train=np.arange(num) % 4,
        x_test=rng.integers(0, 256, (num // 2, size, size, channels)).astype(np.uint8),
        y_test=np.arange(num // 2) % 4,
    )


def _nan_pixel(arrays):
    arrays["x_train"] = arrays["x_train"].astype("float32")
    arrays["x_train"][0, 0, 0, 0] = np.nan


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.update(y_train=np.arange(8) % 4 + 0.5), "y_train must hold integer labels; found 0.5"),
        (lambda a: a.update(y_test=-(np.arange(4) % 4)), "y_test must hold labels >= 0; found -3"),
        (lambda a: a.update(y_train=np.r_[np.arange(7) % 4, 99999]),
         "Label 99999 is far outside the 5 distinct labels observed (0, 1, 2, 3, 99999)"),
        (lambda a: a.update(y_train=np.zeros(8, int), y_test=np.zeros(4, int)), "at least 2"),
        (lambda a: a.update(y_train=np.arange(7) % 4), "x_train holds 8 images but y_train 7 targets"),
        (lambda a: a.update(x_test=a["x_test"][:, 0, 0]), "x_test must have rank 3 (N, H, W) or 4"),
        (lambda a: a.update(x_test=np.repeat(a["x_test"], 3, axis=-1)),
         "different channels: train 1, test 3"),
        (lambda a: a.update(x_test=a["x_test"][:0], y_test=a["y_test"][:0]), "The test split is empty"),
        (_nan_pixel, "x_train must hold finite numbers"),
    ],
)
def test_npz_data_is_checked_before_training(tmp_path, change, message):
    arrays = _arrays()
    change(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=re.escape(message) + ".*Received: dataset="):
        load_data(str(tmp_path / "bad.npz"))


def test_npz_labels_shaped_n_by_1_and_integral_floats_are_accepted(tmp_path):
    arrays = _arrays()
    arrays["y_train"] = arrays["y_train"].astype("float32")[:, None]
    np.savez(tmp_path / "ok.npz", **arrays)
    data = load_data(str(tmp_path / "ok.npz"))
    assert data.num_classes == 4 and [int(y) for _, y in data.train] == (np.arange(8) % 4).tolist()


def _image_folder(root, splits):
    rng = np.random.default_rng(0)
    for split, classes in splits.items():
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for index in range(2):
                keras.utils.save_img(folder / f"{index}.png", rng.integers(0, 256, (9, 9, 3)).astype("uint8"))


def test_image_folder_splits_are_matched_by_class_name(tmp_path):
    # test/ lacks "bird": listing classes by position would name the test labels wrongly.
    _image_folder(tmp_path, {"train": ["bird", "cat", "dog"], "test": ["cat", "dog"]})
    with pytest.raises(ValueError, match="only in train/: bird"):
        load_data(str(tmp_path), image_size=8)
    (tmp_path / "test" / "bird").mkdir()
    keras.utils.save_img(tmp_path / "test" / "bird" / "0.png", np.zeros((9, 9, 3), "uint8"))
    data = load_data(str(tmp_path), image_size=8)
    assert data.class_names == ("bird", "cat", "dog")
    assert [int(y) for _, y in data.test] == [0, 1, 1, 2, 2]


def test_image_folders_need_two_classes_and_readable_files(tmp_path):
    _image_folder(tmp_path / "one", {".": ["cat"]})
    with pytest.raises(ValueError, match="at least 2 classes.*has 1 \\(cat\\)"):
        load_data(str(tmp_path / "one"), image_size=8)
    _image_folder(tmp_path / "two", {".": ["cat", "dog"]})
    broken = tmp_path / "two" / "dog" / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=f"1 image file\\(s\\) cannot be read: {re.escape(str(broken))}"):
        load_data(str(tmp_path / "two"), image_size=8)
    data = load_data(str(tmp_path / "two"), image_size=8, skip_unreadable=True)
    assert data.skipped_files == 1 and data.num_train + data.num_test == 4

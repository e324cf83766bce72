"""TFDS's real download-and-prepare path, served from 127.0.0.1 (no network in tests).

`--recipe d2l` fetches Fashion-MNIST on first use. A missing dependency of tensorflow-datasets'
downloader (once `importlib_resources`) broke that for every user while the mock_data tests
stayed green, because they never download; this test downloads, as a user's first run does.
"""

import functools
import gzip
import http.server
import struct
import threading

import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.image_classification import mnist

from keras_modern_cnn.data import load_data

# TFDS's downloader involves no backend: run in the TensorFlow pass only (conftest.py).
pytestmark = pytest.mark.backend_independent

TRAIN_EXAMPLES, TEST_EXAMPLES = 12, 6


def write_idx_files(folder, prefix, images, labels):
    """The MNIST idx layout Fashion-MNIST is distributed in, gzipped."""
    with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as stream:
        stream.write(struct.pack(">iiii", 2051, len(images), 28, 28) + images.tobytes())
    with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as stream:
        stream.write(struct.pack(">ii", 2049, len(labels)) + labels.tobytes())


@pytest.fixture
def fashion_mnist_server(tmp_path, monkeypatch):
    """A local HTTP server holding a 12 + 6 example Fashion-MNIST; yields the expected arrays."""
    served = tmp_path / "served"
    served.mkdir()
    rng = np.random.default_rng(0)
    train_images = rng.integers(0, 256, (TRAIN_EXAMPLES, 28, 28), dtype=np.uint8)
    train_labels = (np.arange(TRAIN_EXAMPLES) % 10).astype(np.uint8)
    test_images = rng.integers(0, 256, (TEST_EXAMPLES, 28, 28), dtype=np.uint8)
    test_labels = (np.arange(TEST_EXAMPLES) % 10).astype(np.uint8)
    write_idx_files(served, "train", train_images, train_labels)
    write_idx_files(served, "t10k", test_images, test_labels)

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # The real builder, pointed at the local server and told the files' true sizes.
    monkeypatch.setattr(mnist.FashionMNIST, "URL", f"http://127.0.0.1:{server.server_port}/")
    monkeypatch.setattr(mnist, "_TRAIN_EXAMPLES", TRAIN_EXAMPLES)
    monkeypatch.setattr(mnist, "_TEST_EXAMPLES", TEST_EXAMPLES)
    yield train_images, train_labels
    server.shutdown()
    server.server_close()


def test_fashion_mnist_downloads_prepares_and_loads_on_first_use(tmp_path, fashion_mnist_server):
    train_images, train_labels = fashion_mnist_server
    data = load_data("fashion_mnist", data_dir=str(tmp_path / "tfds"))
    assert (data.num_train, data.num_test, data.num_classes) == (TRAIN_EXAMPLES, TEST_EXAMPLES, 10)
    assert data.class_names[0] == "T-shirt/top"
    images, labels = zip(*((image.numpy(), int(label)) for image, label in data.train))
    # TFDS shuffles while preparing: compare as a set of (label, image) pairs.
    loaded = sorted((label, image.tobytes()) for image, label in zip(images, labels))
    expected = sorted((int(label), image[..., None].tobytes())
                      for image, label in zip(train_images, train_labels))
    assert loaded == expected
    assert tfds.builder("fashion_mnist", data_dir=str(tmp_path / "tfds")).is_prepared()

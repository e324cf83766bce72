"""Shared fixtures: every test starts from a clean Keras session and global configuration."""

import os

# Tests run tiny models, so on JAX (and TF jit_compile) XLA's compile time dominates: cheaper
# LLVM passes compile a GoogLeNet gradient ~4x faster. Set before any backend initialises;
# subprocesses started by tests inherit it. Users' runs keep XLA's defaults.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
)

# The suite runs as on a CPU without bfloat16 arithmetic whatever the CI machine's CPU, so its
# numerics (float32 by default on every CPU then) do not depend on it; the device-defaults test
# sets the features it checks (keras_modern_cnn.devices.cpu_features).
os.environ["KMC_CPU_FEATURES"] = ""

import keras  # noqa: E402
import pytest  # noqa: E402

if keras.backend.backend() == "torch":
    import torch

    def _detached_array(tensor, dtype=None, **options):
        """numpy conversion of any torch tensor, including one that autograd tracks.

        Tests compare model outputs with numpy (`np.asarray`, `assert_allclose`); torch refuses
        to convert a tensor that requires grad. Detaching here, once, keeps every assertion the
        same on all three backends; the package itself never relies on it.
        """
        return _tensor_array(tensor.detach().cpu(), dtype, **options)

    _tensor_array = torch.Tensor.__array__
    torch.Tensor.__array__ = _detached_array


# Tests of what no backend changes (argument parsing, tf.data pipelines, packaging, KerasTuner's
# oracle protocol) are marked `backend_independent` and run in the TensorFlow pass of
# `make test` only: the JAX and PyTorch passes would prove the same thing again.
BACKEND_INDEPENDENT_PASS = "tensorflow"


# `make test` hands whole files to its two xdist workers in collection order (`--dist loadfile
# --no-loadscope-reorder`); starting with the longest files (measured with --durations=0) lets
# both workers finish together. Files not listed follow in name order; the order never changes
# a result (every test is seeded and independent).
LONGEST_FIRST = (
    "test_export.py", "test_batch_norm_policies.py", "test_contract.py", "test_training.py",
    "test_tuning.py", "test_safety.py", "test_batch_norm.py", "test_cli.py", "test_readme.py",
    "test_notebooks.py", "test_batch_norm_keras_suite.py", "test_zoo_parity.py",
    "test_distribute.py", "test_gpu_check.py", "test_precise_bn.py", "test_weights_convert.py",
)


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: _file_rank(item.path.name))  # stable: order within a file kept
    if keras.backend.backend() == BACKEND_INDEPENDENT_PASS:
        return
    proven_elsewhere = [item for item in items if item.get_closest_marker("backend_independent")]
    if proven_elsewhere:
        config.hook.pytest_deselected(items=proven_elsewhere)
        proven_elsewhere = set(proven_elsewhere)
        items[:] = [item for item in items if item not in proven_elsewhere]


def _file_rank(name):
    return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)


@pytest.fixture(autouse=True)
def clean_keras_state():
    """Every test starts seeded and from Keras's defaults, whatever ran before it in its process.

    Seeds Python, NumPy and the backend (`keras.utils.set_random_seed`), so weight
    initialisation and random data do not depend on test order or on the xdist split, and
    undoes the global state a test may change (data format, dtype policy, layer-name counters).
    """
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    data_format = keras.config.image_data_format()
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_image_data_format(data_format)
    keras.config.set_dtype_policy(policy)
    keras.backend.clear_session()

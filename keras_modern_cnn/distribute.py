"""Data-parallel training on the backends' own engines: `kmc train --strategy NAME`.

- "mirrored": `tf.distribute.MirroredStrategy` over this machine's GPUs (TensorFlow).
- "multi-worker": `tf.distribute.MultiWorkerMirroredStrategy`, cluster and task read from the
  `TF_CONFIG` environment variable (TensorFlow).
- "data-parallel": `keras.distribution.DataParallel` over every device JAX sees (JAX); across
  processes (hosts) when the standard JAX coordinator variables are set (`jax_cluster`).

Under every strategy the zoo's BatchNorm layers are built with `synchronized=True`, so batch
statistics are taken over the global batch, as single-device training on that batch would
(Ioffe & Szegedy 2015; "cross-GPU BN", Peng et al., MegDet, CVPR 2018): tf.distribute
all-reduces them; under JAX DataParallel the jit-compiled step reduces the sharded batch
globally. Models built outside the zoo's builders need `BatchNorm(synchronized=True)`
themselves on TensorFlow. References: TensorFlow guides "Distributed training with TensorFlow" and
"Multi-worker training with Keras"; Keras guide "Distributed training with Keras 3".
"""

import contextlib
import json
import os

import keras
import numpy as np

from keras_modern_cnn.blocks import synchronized_batch_norm
from keras_modern_cnn.choices import DISTRIBUTIONS
from keras_modern_cnn.validation import check_choice

JAX_CLUSTER_VARIABLES = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
BACKEND_OF = {"mirrored": "tensorflow", "multi-worker": "tensorflow", "data-parallel": "jax"}


@contextlib.contextmanager
def distribution_scope(name):
    """Build, compile, fit and save under the distribution `name`; yields the strategy.

    With the TensorFlow strategies, enter the scope before the program runs any TensorFlow
    op (MultiWorkerMirroredStrategy configures collectives at start-up); with "data-parallel"
    across processes (`jax_cluster`), before any JAX computation (it joins the cluster).

        with distribution_scope("data-parallel"):   # KERAS_BACKEND=jax
            model = keras_modern_cnn.get_model("resnet18", classes=10)
            model.compile(...)
            model.fit(...)
    """
    check_choice("strategy", name, DISTRIBUTIONS)
    backend = keras.config.backend()
    if backend != BACKEND_OF[name]:
        usable = [repr(other) for other, needs in BACKEND_OF.items() if needs == backend]
        hint = (
            f" On {backend!r}, use {' or '.join(usable)}." if usable else
            f" Keras {keras.version()} offers no data-parallel training on {backend!r} "
            "(keras.distribution runs on JAX, tf.distribute on TensorFlow)."
        )
        raise ValueError(
            f"`strategy` {name!r} runs on the {BACKEND_OF[name]!r} backend; the current "
            f"backend is {backend!r} (set KERAS_BACKEND).{hint} Received: strategy={name!r}"
        )
    if name == "data-parallel":
        cluster = jax_cluster(os.environ)
        if cluster is not None:
            _initialize_jax_cluster(*cluster)
        with _keras_distribution(keras.distribution.DataParallel()) as distribution, \
                synchronized_batch_norm():
            yield distribution
        return

    import tensorflow as tf

    if name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    else:
        check_tf_config(os.environ.get("TF_CONFIG"))
        strategy = _multi_worker_mirrored_strategy_class()()
    with strategy.scope(), synchronized_batch_norm():
        yield strategy


def jax_cluster(environ):
    """`(coordinator_address, num_processes, process_id)` from `environ`, or None if unset.

    The standard JAX variables (`jax.distributed.initialize`): JAX_COORDINATOR_ADDRESS
    (`host:port` of process 0), JAX_NUM_PROCESSES and JAX_PROCESS_ID (0 to N - 1); all three
    or none.
    """
    values = {name: environ.get(name) for name in JAX_CLUSTER_VARIABLES}
    if all(value is None for value in values.values()):
        return None
    for name, value in values.items():
        if value is None:
            given = ", ".join(f"{n}={v!r}" for n, v in values.items() if v is not None)
            raise ValueError(
                f"A multi-process `strategy` 'data-parallel' needs all of "
                f"{', '.join(JAX_CLUSTER_VARIABLES)} (given: {given}). Received: {name}=None"
            )
    address, processes, index = values.values()
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(
            "JAX_COORDINATOR_ADDRESS must be process 0's `host:port`, e.g. 10.0.0.1:1234. "
            f"Received: JAX_COORDINATOR_ADDRESS={address!r}"
        )
    if not processes.isdigit() or int(processes) < 1:
        raise ValueError(
            f"JAX_NUM_PROCESSES must be an integer >= 1. Received: JAX_NUM_PROCESSES={processes!r}"
        )
    if not index.isdigit() or int(index) >= int(processes):
        raise ValueError(
            f"JAX_PROCESS_ID must be an integer in [0, {int(processes) - 1}] "
            f"(JAX_NUM_PROCESSES={processes}). Received: JAX_PROCESS_ID={index!r}"
        )
    return address, int(processes), int(index)


def check_same_on_every_process(name, values):
    """Raise unless every process of a multi-process JAX run passes equal integer `values`."""
    import jax
    from jax.experimental import multihost_utils

    if jax.process_count() == 1:
        return
    try:
        multihost_utils.assert_equal(np.asarray(values, dtype="int64"))
    except AssertionError:
        raise ValueError(
            f"Process {jax.process_index()} sees another {name} than process 0; every process "
            f"must see the same (a file system they share). Received: {name}={values!r}"
        ) from None


def _initialize_jax_cluster(address, processes, index):
    """`keras.distribution.initialize`, once per process, before any JAX computation.

    JAX's cross-process CPU collectives default to gloo (`jax_cpu_collectives_implementation`,
    JAX 0.10), so CPU hosts need no setting.
    """
    import jax

    if not jax.distributed.is_initialized():
        keras.distribution.initialize(address, num_processes=processes, process_id=index)


def check_tf_config(tf_config):
    """`TF_CONFIG` (a JSON string) must hold a cluster and this process's task in it."""
    try:
        config = json.loads(tf_config)
        task = config["task"]
        valid = 0 <= task["index"] < len(config["cluster"][task["type"]])
    except (TypeError, KeyError, ValueError):  # unset, not JSON, or missing keys
        valid = False
    if not valid:
        raise ValueError(
            "`strategy` 'multi-worker' reads the cluster from the TF_CONFIG environment "
            "variable: JSON with cluster.worker (list of 'host:port') and task (type, index), "
            'e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}. '
            f"Received: TF_CONFIG={tf_config!r}"
        )
    return config


def _multi_worker_mirrored_strategy_class():
    import tensorflow as tf

    class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        """tf.distribute's strategy with the `reduce` that Keras 3 `fit` expects of it.

        With two or more workers, tf.distribute's `reduce` takes single values only, and
        rejects `axis=0` on scalars; Keras 3 reduces the first `(x, y)` batch (to learn its
        shapes) and its scalar logs with `axis=0` (keras-team/keras#20585). Here nested values
        are reduced one by one, and a scalar's mean over replicas is taken with `axis=None`
        (observed with Keras 3.15 and TensorFlow 2.21).
        """

        def reduce(self, reduce_op, value, axis):
            def reduce_one(one):
                scalar = len(self.experimental_local_results(one)[0].shape) == 0
                return super(MultiWorkerMirroredStrategy, self).reduce(
                    reduce_op, one, None if scalar else axis
                )

            return tf.nest.map_structure(reduce_one, value)

    return MultiWorkerMirroredStrategy


@contextlib.contextmanager
def _keras_distribution(distribution):
    """`keras.distribution.set_distribution` for the duration of the block, then restore."""
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(distribution)
    try:
        yield distribution
    finally:
        keras.distribution.set_distribution(previous)

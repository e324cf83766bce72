"""A functional model's graph run eagerly on torch, each intermediate tensor released after its
last use (issue 31).

Keras runs a functional model by walking its nodes (`Function._run_through_graph`) and keeps
every tensor a call computes in one table until the call returns. Under `jit`/`tf.function`
the compiler frees what is dead; PyTorch runs eagerly, so in inference (no autograd graph
holding them) every activation of the network stays alive at once: each layer's output lands
in memory never used before in the call (page faults, caches cold, and glibc hands the freed
blocks back to the system between calls), where a PyTorch module's `forward` drops each
tensor as it goes and reuses its memory at once. With the tensors released, the memory one
`predict` call of ResNet-50 needs at batch 32 on 224 px falls from 4.4 GiB to 0.31 GiB
(torchvision's own model: 0.38 GiB), and at 64 px it runs 1.05-1.08x faster (BENCHMARKS.md,
"PyTorch backend vs torchvision").

`install(model)` gives a functional model a runner that walks the same nodes in Keras's order
(deepest first, as listed), calls the same operations with the same arguments, and drops a
tensor from its table when the last node reading it has taken it: the same computation, the
same outputs and gradients (tests/test_torch_graph.py holds them equal to Keras's). The
package installs it on the models it builds, derives and loads on the torch backend; on other
backends `install` does nothing. Calls on symbolic tensors, with a `call_fn` (Keras's
symbolic build) and models Keras itself could not run in that order go to Keras's method.
Relies on Keras internals (`keras_modern_cnn._compat.graph_steps`).
"""

import contextlib

import keras

from keras_modern_cnn import _compat


def install(model):
    """Give the functional `model` the releasing runner on the torch backend; returns `model`.
    Other models (subclassed, Sequential) and other backends are left as they are."""
    if keras.backend.backend() != "torch":
        return model
    steps = _release_plan(model)
    if steps is not None:
        _compat.replace_graph_runner(model, _ReleasingRunner(model, steps))
    return model


@contextlib.contextmanager
def disabled(model):
    """Run `model` through Keras's own `_run_through_graph` while the context is open (tests
    holding the two equal, benchmarks measuring what the runner buys)."""
    runner = _compat.remove_graph_runner(model)
    try:
        yield model
    finally:
        if runner is not None:
            _compat.replace_graph_runner(model, runner)


def _release_plan(model):
    """`[(node, its output tensors, tensors released after it)]` in Keras's order (symbolic
    tensors, not their ids, so that a deep copy of the model gets a consistent plan), or None
    when `model` is not functional or a node Keras would skip (inputs not computed) is in it."""
    nodes = _compat.graph_steps(model)
    if nodes is None:
        return None
    available = {id(tensor) for tensor in model.inputs}
    readers = {}
    for node in nodes:
        if any(id(tensor) not in available for tensor in node.input_tensors):
            return None
        available.update(id(tensor) for tensor in node.outputs)
        for tensor in node.input_tensors:
            readers[id(tensor)] = readers.get(id(tensor), 0) + 1
    if any(id(tensor) not in available for tensor in model.outputs):
        return None
    for tensor in model.outputs:
        readers[id(tensor)] = readers.get(id(tensor), 0) + 1  # never released
    steps = []
    for node in nodes:
        released = []
        for tensor in node.input_tensors:
            readers[id(tensor)] -= 1
            if readers[id(tensor)] == 0:
                released.append(tensor)
        steps.append((node, tuple(node.outputs), tuple(released)))
    return steps


class _ReleasingRunner:
    """`Function._run_through_graph` for one model, releasing tensors after their last use."""

    def __init__(self, model, steps):
        self._model = model
        self._steps = steps

    def __call__(self, inputs, operation_fn=lambda operation: operation, call_fn=None):
        import torch

        model = self._model
        flat_inputs = keras.tree.flatten(inputs)
        if call_fn is not None or not all(isinstance(x, torch.Tensor) for x in flat_inputs):
            return type(model)._run_through_graph(model, inputs, operation_fn, call_fn)
        tensors = {id(reference): value for reference, value in zip(model.inputs, flat_inputs)}
        del inputs, flat_inputs
        for node, node_outputs, released in self._steps:
            args, kwargs = node.arguments.fill_in(tensors)
            for tensor in released:
                del tensors[id(tensor)]
            outputs = operation_fn(node.operation)(*args, **kwargs)
            del args, kwargs  # the last reference to a released input, unless autograd keeps it
            if isinstance(outputs, torch.Tensor):
                tensors[id(node_outputs[0])] = outputs
            else:
                for reference, value in zip(node_outputs, keras.tree.flatten(outputs)):
                    tensors[id(reference)] = value
        return keras.tree.pack_sequence_as(
            _compat.outputs_structure(model), [tensors[id(x)] for x in model.outputs]
        )

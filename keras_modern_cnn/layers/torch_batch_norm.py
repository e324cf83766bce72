"""PyTorch's own batch-norm kernels behind `BatchNorm.normalize` on the torch backend.

Keras runs PyTorch eagerly, one kernel and one autograd node per operation. The portable
path (`BatchNorm._moments` and one multiply-add, written with `keras.ops`) is about a dozen of
each per call and trained at 0.54x `keras.layers.BatchNormalization` on torch;
`torch.ops.aten.native_batch_norm` takes the batch statistics and normalises in one kernel
with a fused backward, and `torch.nn.functional.batch_norm` normalises with the moving
statistics in one. `BatchNorm` uses them only where their arithmetic is the portable path's
(float32, no mask, no renorm, no recalibration); the portable path stays the reference and
the tests hold the two equal (`tests/test_batch_norm.py`).
"""

import torch


def normalize(inputs, axis, epsilon, gamma, beta, moving_mean, moving_variance, batch_statistics):
    """`(outputs, mean, variance)` as `BatchNorm.normalize`; tensors are torch tensors, `gamma`
    and `beta` may be None. The statistics returned carry no gradient (they only feed the
    moving-average update)."""
    # PyTorch's kernels want channels on axis 1; for channels-last inputs the moved view is
    # PyTorch's channels_last memory format, which the kernels read without a copy.
    x = inputs if axis == 1 else inputs.movedim(axis, 1)
    if batch_statistics:
        outputs, mean, inverse_stddev = torch.ops.aten.native_batch_norm(
            x, gamma, beta, None, None, True, 0.0, epsilon
        )
        mean, inverse_stddev = mean.detach(), inverse_stddev.detach()
        variance = torch.clamp(inverse_stddev**-2 - epsilon, min=0.0)
        # A variance that overflows float32 (a diverged run) gives inverse_stddev 0, and the
        # kernel then outputs beta where the portable path and Keras give NaN: make the
        # statistics NaN as theirs are, so inference (and the run's NaN check) sees it.
        variance = torch.where(inverse_stddev > 0, variance, torch.nan)
    else:
        mean, variance = moving_mean, moving_variance
        outputs = torch.nn.functional.batch_norm(
            x, mean, variance, gamma, beta, training=False, momentum=0.0, eps=epsilon
        )
    return (outputs if axis == 1 else outputs.movedim(1, axis)), mean, variance


def moments(x, axes):
    """Per-channel `(mean, biased variance)` over `axes` with `torch.var_mean` (Welford's
    accurate single pass, with its own backward), for the portable path on PyTorch."""
    variance, mean = torch.var_mean(x, dim=tuple(axes), correction=0)
    return mean, variance

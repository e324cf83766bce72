"""Metrics the zoo reports beyond Keras's own, identical on every backend."""

import keras


@keras.saving.register_keras_serializable(package="keras_modern_cnn")
class MeanDice(keras.metrics.MeanIoU):
    """Mean Dice coefficient (F1 score) of a per-pixel classification.

    Per class, Dice = 2 TP / (2 TP + FP + FN), from the confusion matrix Keras's `MeanIoU`
    accumulates; the mean is over the classes present (in the labels or the predictions),
    the convention of `MeanIoU`. Keras 3.15 has Dice only as a loss (`keras.losses.Dice`,
    one soft score per batch), not as a confusion-matrix metric. Same arguments as `MeanIoU`.

    Reference: Dice, "Measures of the Amount of Ecologic Association Between Species",
    Ecology 1945, and Sørensen 1948; for segmentation, Milletari, Navab & Ahmadi, "V-Net",
    3DV 2016 (arXiv:1606.04797).
    """

    def result(self):
        confusion = keras.ops.cast(self.total_cm, "float32")
        true_positives = keras.ops.diagonal(confusion)
        denominator = keras.ops.sum(confusion, axis=0) + keras.ops.sum(confusion, axis=1)
        present = keras.ops.greater(denominator, 0)
        dice = keras.ops.where(
            present, 2 * true_positives / keras.ops.maximum(denominator, 1), 0.0
        )
        count = keras.ops.sum(keras.ops.cast(present, "float32"))
        return keras.ops.sum(dice) / keras.ops.maximum(count, 1)

"""Training recipes: each family's default optimizer and learning rate, and the seeds' (d2l
"Modern CNNs") settings per model for `--recipe d2l`.

Reference: Dive into Deep Learning (d2l.ai), chapter 8 "Modern Convolutional Neural
Networks": Fashion-MNIST, 10 epochs, plain SGD, and the input size, learning rate and batch
size each section's training call uses.
"""

from typing import Any

from keras_modern_cnn.validation import check_choice

RECIPES = ("d2l",)

# name -> settings; test accuracy printed in the seeds in the comment.
D2L_RECIPES: dict[str, dict[str, Any]] = {
    "alexnet": dict(image_size=224, learning_rate=0.01, batch_size=128),  # 0.892
    "vgg11": dict(image_size=224, learning_rate=0.05, batch_size=128, width_ratio=0.25),  # 0.926
    "nin": dict(image_size=224, learning_rate=0.1, batch_size=128),  # 0.871
    "googlenet": dict(image_size=96, learning_rate=0.1, batch_size=128),  # 0.898
    "bn_lenet": dict(image_size=28, learning_rate=1.0, batch_size=256),  # 0.874
    "resnet18": dict(image_size=96, learning_rate=0.05, batch_size=256),  # 0.923
    "densenet_d2l": dict(image_size=96, learning_rate=0.1, batch_size=256),  # 0.874
}
D2L_COMMON = dict(epochs=10, optimizer="sgd", dataset="fashion_mnist")

# family -> (optimizer, learning rate) a run uses unless told otherwise: plain SGD at the rate
# d2l trains the family's book model with (D2L_RECIPES above); U-Net, not in the book, Adam
# at Keras's default rate (the rate of BENCHMARKS.md's U-Net runs).
FAMILY_DEFAULTS = {
    "lenet": ("sgd", 1.0),
    "alexnet": ("sgd", 0.01),
    "vgg": ("sgd", 0.05),
    "nin": ("sgd", 0.1),
    "googlenet": ("sgd", 0.1),
    "resnet": ("sgd", 0.05),
    "densenet": ("sgd", 0.1),
    "unet": ("adam", 1e-3),
}
# A family registered outside the zoo: Adam at Keras's default rate, safe for most models.
OTHER_FAMILY_DEFAULTS = ("adam", 1e-3)


def family_defaults(family):
    """(optimizer, learning rate) a model of `family` trains with unless told otherwise."""
    return FAMILY_DEFAULTS.get(family, OTHER_FAMILY_DEFAULTS)


def get_recipe(recipe, model_name):
    """Settings of `recipe` for `model_name`: image_size, learning_rate, batch_size, epochs,
    optimizer, the dataset the book used, and width_ratio where the book narrows the model."""
    check_choice("recipe", recipe, RECIPES)
    if model_name not in D2L_RECIPES:
        raise ValueError(
            f"The d2l recipe covers the seeds' models only: {', '.join(sorted(D2L_RECIPES))}. "
            f"Received: model={model_name!r}"
        )
    return {**D2L_COMMON, **D2L_RECIPES[model_name]}

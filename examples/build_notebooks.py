"""Write the example notebooks from the cells below (outputs are never committed).

    python examples/build_notebooks.py

The notebooks are the source users open; this script keeps them reviewable as plain Python and
regenerates them after an edit. tests/test_notebooks.py executes both and checks that the files
here equal what this script writes.
"""

import pathlib

import nbformat

HERE = pathlib.Path(__file__).resolve().parent

CHAPTER = [
    ("markdown", """\
# Modern CNNs, the chapter in one notebook

Every model of Dive into Deep Learning's "Modern Convolutional Neural Networks" chapter (d2l 8.1-8.7:
AlexNet, VGG, NiN, GoogLeNet, batch normalization in LeNet, ResNet, DenseNet), built with
[keras-modern-cnn](../README.md), summarised, trained briefly on the embedded shapes dataset (no
download), compared in one table and one picture; then a KerasTuner search and an export.

Sized to run in about a minute and a half on a 2-core CPU: narrow models (`width_ratio`), small inputs,
a few thousand examples, one epoch. The book's settings are one call away (`kmc train MODEL
--recipe d2l`, or the README's "The book's models, exactly"). The backend is Keras's:
set `KERAS_BACKEND` (tensorflow, jax or torch) before starting the kernel."""),
    ("code", """\
import os
import pathlib
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up lines
import keras
import numpy as np

import keras_modern_cnn as kmc
from keras_modern_cnn.data.embedded import SHAPE_CLASSES, load_shapes

keras.utils.set_random_seed(0)
work = pathlib.Path(tempfile.mkdtemp(prefix="chapter_"))  # every file this notebook writes
print(keras.config.backend(), keras.__version__, "- files in", work)"""),
    ("markdown", """\
## The data

Ten classes of procedurally drawn shapes on a noisy background, generated from a seed
(`keras_modern_cnn.data.embedded`): grayscale like Fashion-MNIST, drawn at any size."""),
    ("code", """\
def shapes(size, train=1024, test=256):
    (x_train, y_train, _), (x_test, y_test, _) = load_shapes(num_train=train, num_test=test, image_size=size)
    return (x_train / 255.0).astype("float32"), y_train, (x_test / 255.0).astype("float32"), y_test

x_train, y_train, x_test, y_test = shapes(28)
print(x_train.shape, "classes:", ", ".join(SHAPE_CLASSES))"""),
    ("markdown", """\
## Every model of the chapter

One entry per section: the registered model, the input side it is trained at here (the
smallest it accepts, rounded up: AlexNet and NiN downsample by 32 before their first
pooling) and what is narrowed for a CPU. `kmc.get_model` forwards any builder argument."""),
    ("code", """\
CHAPTER = {  # d2l section: (registered model, input side, builder arguments)
    "8.1 AlexNet": ("alexnet", 68, dict(width_ratio=0.125, dense_units=(128, 128))),
    "8.2 VGG-11": ("vgg11", 32, dict(width_ratio=0.125, dense_units=(128, 128))),
    "8.3 NiN": ("nin", 68, dict(width_ratio=0.125)),
    "8.4 GoogLeNet": ("googlenet", 32, dict(width_ratio=0.125)),
    "8.5 BN-LeNet": ("bn_lenet", 28, dict()),
    "8.6 ResNet-18": ("resnet18", 32, dict(width_ratio=0.125)),
    "8.7 DenseNet": ("densenet_d2l", 32, dict(width_ratio=0.25)),
}

def build(name, side, arguments):
    return kmc.get_model(name, input_shape=(side, side, 1), classes=10, **arguments)

for section, (name, side, arguments) in CHAPTER.items():
    model = build(name, side, arguments)
    print(f"{section:15} {name:13} {side}x{side}x1  {model.count_params():>9,} parameters  "
          f"{len(model.layers):>4} layers   reference: {kmc.get_model_meta(name)['reference']}")"""),
    ("markdown", "A model's layer-by-layer summary (any of them: `kmc summary MODEL` prints the same):"),
    ("code", """build("resnet18", 32, dict(width_ratio=0.125)).summary(line_length=100)"""),
    ("markdown", """\
## Train each briefly

Plain SGD at the learning rate d2l trains the family with (`kmc info MODEL` shows it), one
epoch on 1,024 images in batches of 32. One epoch shows who learns fast, not who ends best."""),
    ("code", """\
from keras_modern_cnn.recipes import family_defaults

results = []
for section, (name, side, arguments) in CHAPTER.items():
    x_train, y_train, x_test, y_test = shapes(side)
    model = build(name, side, arguments)
    optimizer, learning_rate = family_defaults(kmc.get_spec(name).family)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=32, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    results.append({"model": name, "section": section, "parameters": model.count_params(),
                    "test_accuracy": accuracy, "test_loss": loss,
                    "examples_per_second": len(x_train) / seconds})
    keras.backend.clear_session()"""),
    ("markdown", "## One table, one picture"),
    ("code", """\
print(f"| {'model':13} | {'section':15} | {'params':>9} | test accuracy | examples/sec |")
for r in results:
    print(f"| {r['model']:13} | {r['section']:15} | {r['parameters']:>9,} | "
          f"{r['test_accuracy']:>13.3f} | {r['examples_per_second']:>12,.0f} |")"""),
    ("code", """\
from IPython.display import Image, display

from keras_modern_cnn.plots import plot_comparison

picture = plot_comparison(results, work / "comparison.png",
                          title="shapes (1,024 train / 256 test), 1 epoch, narrowed models (see above)")
display(Image(filename=str(picture), width=900))"""),
    ("markdown", """\
## A hyperparameter search

Every family has a KerasTuner hypermodel; here ResNet's depth per stack, width and learning
rate, two trials of one epoch (`kmc tune resnet` runs the same from the command line, with
resumable state and `results.csv`/`trials.png`)."""),
    ("code", """\
from keras_modern_cnn.tuning import HyperResNet, make_tuner

x_train, y_train, x_test, y_test = shapes(32)
hypermodel = HyperResNet(input_shape=(32, 32, 1), classes=10, width_ratio=0.125, optimizer="sgd",
                         block_type="basic", stack_depth_1=[1, 2], stack_depth_2=1, stack_depth_3=1,
                         stack_depth_4=1, learning_rate=(0.01, 0.1))
tuner = make_tuner(hypermodel, "random", max_trials=2, directory=work, project_name="resnet", seed=0)
tuner.search(x_train, y_train, validation_data=(x_test, y_test), epochs=1, batch_size=32, verbose=0)
best = tuner.get_best_models(1)[0]
print(tuner.get_best_hyperparameters(1)[0].values)"""),
    ("markdown", """\
## Export

`kmc.export` writes an artefact that serves without Keras (BatchNorm folded into the
convolutions): here LiteRT, checked against the Keras model in LiteRT's own interpreter.
SavedModel, ONNX and OpenVINO are one `format=` away."""),
    ("code", """\
from keras_modern_cnn.export import load_served

path = kmc.export(best, work / "resnet.tflite", format="litert")
served = load_served(path)
difference = np.abs(served(x_test[:8]) - best.predict(x_test[:8], verbose=0)).max()
print(f"{path}: {pathlib.Path(path).stat().st_size / 1e6:.2f} MB, largest difference {difference:.1e}")"""),
]

FINE_TUNING = [
    ("markdown", """\
# Fine-tuning a backbone, and U-Net masks

Two short recipes with [keras-modern-cnn](../README.md), on the embedded shapes dataset (no
download), in about a minute on a 2-core CPU:

1. train a ResNet-18 on five of the ten shapes, then fine-tune it on the other five: copy its
   weights into a new model by layer name, freeze its BatchNorm statistics, train the new head,
   then everything;
2. train a small U-Net to segment the shapes and look at its masks."""),
    ("code", """\
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up lines
import keras
import numpy as np

import keras_modern_cnn as kmc
from keras_modern_cnn.data.embedded import SHAPE_CLASSES, load_shapes

keras.utils.set_random_seed(0)
(x_train, y_train, m_train), (x_test, y_test, m_test) = load_shapes(num_train=1500, num_test=300, image_size=32)
x_train, x_test = (x_train / 255.0).astype("float32"), (x_test / 255.0).astype("float32")

def split(first_five):
    keep_train, keep_test = (y_train < 5) == first_five, (y_test < 5) == first_five
    return (x_train[keep_train], y_train[keep_train] % 5, x_test[keep_test], y_test[keep_test] % 5)"""),
    ("markdown", "## 1. A backbone trained on disk, square, triangle, diamond and ring"),
    ("code", """\
def compiled(model, learning_rate):
    model.compile(optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model

a_train, a_labels, a_test, a_test_labels = split(first_five=True)
source = compiled(kmc.ResNet18(input_shape=(32, 32, 1), classes=5, width_ratio=0.25), 0.05)
source.fit(a_train, a_labels, batch_size=64, epochs=2, verbose=0)
print("source task accuracy:", round(source.evaluate(a_test, a_test_labels, verbose=0)[1], 3))"""),
    ("markdown", """\
## Fine-tuned on plus, bars, x-cross and frame

`kmc.copy_weights_by_name` copies every layer of the same name (all but the new
`predictions`); `kmc.layers.freeze_batch_norm` keeps the BatchNorm statistics the backbone
learnt (timm's `freeze_batch_norm_2d`, torchvision's `FrozenBatchNorm2d`), which
`model.trainable = True` does not undo. First the head alone, then everything at a lower rate."""),
    ("code", """\
b_train, b_labels, b_test, b_test_labels = split(first_five=False)
target = kmc.ResNet18(input_shape=(32, 32, 1), classes=5, width_ratio=0.25)
copied = kmc.copy_weights_by_name(source, target)
print(f"copied {len(copied)} layers; the new head starts from scratch")
kmc.layers.freeze_batch_norm(target)
for layer in target.layers:
    layer.trainable = layer.name == "predictions"
compiled(target, 0.05).fit(b_train, b_labels, batch_size=64, epochs=1, verbose=0)
print("head only:    ", round(target.evaluate(b_test, b_test_labels, verbose=0)[1], 3))
target.trainable = True  # BatchNorm stays frozen
compiled(target, 0.01).fit(b_train, b_labels, batch_size=64, epochs=1, verbose=0)
print("fine-tuned:   ", round(target.evaluate(b_test, b_test_labels, verbose=0)[1], 3))"""),
    ("markdown", """\
`kmc.replace_head(model, classes=n)` (timm's `reset_classifier`) swaps the head of a model
you already have; `kmc.pre_logits(model)` gives the features it reads."""),
    ("code", """\
features = kmc.pre_logits(source)
print(kmc.replace_head(source, classes=5).output_shape, "features:", features.output_shape,
      "=", kmc.num_features(source))"""),
    ("markdown", """\
## 2. U-Net masks

The same images, each pixel labelled 0 (background) or its shape's class + 1. A classic
U-Net two levels deep, narrowed; `kmc.losses.SparseCategoricalCrossentropy` trains per-pixel
softmax on every backend (Keras's string loss fails on PyTorch, see the README's known issues)."""),
    ("code", """\
unet = kmc.UNet(input_shape=(32, 32, 1), classes=len(SHAPE_CLASSES) + 1, depth=2, width_ratio=0.25,
                batch_norm=True)
unet.compile(optimizer=keras.optimizers.Adam(3e-3), loss=kmc.losses.SparseCategoricalCrossentropy(),
             metrics=[keras.metrics.MeanIoU(num_classes=11, sparse_y_pred=False, name="mean_iou")])
unet.fit(x_train, m_train, batch_size=32, epochs=2, verbose=0)
print({name: round(value, 3) for name, value in unet.evaluate(x_test, m_test, verbose=0, return_dict=True).items()})"""),
    ("code", """\
from IPython.display import display

from keras_modern_cnn.masks import overlay_picture

predicted = np.argmax(unet.predict(x_test[:3], verbose=0), axis=-1)
names = ("background",) + SHAPE_CLASSES
for image, mask in zip(x_test[:3], predicted):
    display(overlay_picture((image * 255).astype("uint8"), mask, len(names), names))"""),
]


def notebook(cells):
    book = nbformat.v4.new_notebook()
    book.cells = [
        nbformat.v4.new_markdown_cell(text) if kind == "markdown" else nbformat.v4.new_code_cell(text)
        for kind, text in cells
    ]
    for index, cell in enumerate(book.cells):
        cell["id"] = f"cell-{index}"  # stable ids: a rewrite changes nothing
    book.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    return book


NOTEBOOKS = {"chapter.ipynb": CHAPTER, "fine_tuning_and_unet.ipynb": FINE_TUNING}


def main():
    for name, cells in NOTEBOOKS.items():
        nbformat.write(notebook(cells), HERE / name)


if __name__ == "__main__":
    main()

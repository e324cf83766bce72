"""Writes the model cards (`model_cards.json`) that `get_model_meta` reads.

    python -m keras_modern_cnn.cards

builds every registered model at its default configuration and records what it costs:
parameter counts, forward FLOPs at the default input (`keras_modern_cnn.utils.flops`) and the
channels of each stage. tests/test_contract.py checks every card against the built model, so
a changed architecture fails there until the cards are regenerated.
"""

import json
import os
import tempfile

import keras

from keras_modern_cnn.features import channels_of


def card(spec, model):
    """The card of `model`, built by `spec.builder()` with its defaults."""
    from keras_modern_cnn.utils import flops

    return {
        "params": int(model.count_params()),
        "trainable_params": int(sum(keras.ops.size(w) for w in model.trainable_weights)),
        "flops": int(flops(model)),
        "feature_info": [
            [layer, int(channels_of(model.get_layer(layer).output)), reduction]
            for layer, reduction in spec.stages
        ],
    }


def write_cards(path):
    """Build every registered model and write their cards to `path` atomically."""
    import keras_modern_cnn as kmc

    cards = {}
    for name in kmc.list_models():
        spec = kmc.get_spec(name)
        cards[name] = card(spec, spec.builder())
        keras.backend.clear_session()
    directory = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile("w", dir=directory, suffix=".tmp", delete=False) as file:
        json.dump(cards, file, indent=1, sort_keys=True)
        file.write("\n")
    os.chmod(file.name, 0o644)  # a package data file, readable by all (not mkstemp's 0600)
    os.replace(file.name, path)


if __name__ == "__main__":
    from keras_modern_cnn.registry import CARDS_PATH

    write_cards(CARDS_PATH)
    print(f"Wrote {CARDS_PATH}")

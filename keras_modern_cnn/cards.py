"""Writes the model cards (`model_cards.json`) that `get_model_meta` reads.

    python -m keras_modern_cnn.cards

builds every registered model at its default configuration and records what it costs:
parameter counts, forward FLOPs at the default input (`keras_modern_cnn.utils.flops`) and the
channels of each stage. tests/test_contract.py checks every card against the built model, so
a changed architecture fails there until the cards are regenerated.
"""

import json

import keras

from keras_modern_cnn import rundir
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
    rundir.write_text(path, json.dumps(cards, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    from keras_modern_cnn.registry import CARDS_PATH

    write_cards(CARDS_PATH)
    print(f"Wrote {CARDS_PATH}")

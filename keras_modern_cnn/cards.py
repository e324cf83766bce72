"""The model cards (`model_cards.json`): what every registered model is and costs, without Keras.

    python -m keras_modern_cnn.cards

builds every registered model at its default configuration and records its registry entry
(family, task, reference, default and minimum input), parameter counts, forward FLOPs at the
default input (`keras_modern_cnn.utils.flops`) and the channels of each stage. `kmc list` and
`kmc info` read the cards (`keras_modern_cnn.registry.read_cards`) instead of building models (and so never import a backend);
tests/test_contract.py checks every card against the registry and the built model, so a changed
architecture fails there until the cards are regenerated.
"""

import json

from keras_modern_cnn.registry import CARDS_PATH, get_spec, list_models


def card(spec, model):
    """The card of `model`, built by `spec.builder()` with its defaults."""
    import keras

    from keras_modern_cnn.features import channels_of
    from keras_modern_cnn.utils import flops

    return {
        "family": spec.family,
        "task": spec.task,
        "reference": spec.reference,
        "default_input_shape": list(spec.default_input_shape),
        "min_input_size": spec.min_input_size,
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
    import keras

    from keras_modern_cnn.files import write_text

    cards = {}
    for name in list_models():
        spec = get_spec(name)
        cards[name] = card(spec, spec.builder())
        keras.backend.clear_session()
    # The models in `list_models` order (natural), each card's fields sorted.
    cards = {name: dict(sorted(fields.items())) for name, fields in cards.items()}
    write_text(path, json.dumps(cards, indent=1) + "\n")


if __name__ == "__main__":
    write_cards(CARDS_PATH)
    print(f"Wrote {CARDS_PATH}")

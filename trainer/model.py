"""The tutorial's model: Dense(h1, relu) -> Dense(h2, relu) -> Dense(10, softmax) on 784 pixels.

The one definition of it: ``mnist-train`` and the benchmarks (the tutorial's ``model.fit``
included) build it here.
"""

from __future__ import annotations

from typing import Any

from trainer.data.sources import NUM_CLASSES, NUM_PIXELS


def build_model(
    first_layer_neurons: int = 300,
    second_layer_neurons: int = 100,
    learning_rate: float = 0.001,
) -> Any:
    """The tutorial's Sequential model, compiled as the tutorial compiled it: RMSprop at
    ``learning_rate``, categorical cross-entropy, accuracy, and Keras's other defaults.

    Under a mixed-precision policy the softmax stays float32 so that the loss is computed in
    full precision. To train it another way, compile it again (``model.compile`` replaces the
    optimizer and the loss).
    """
    import keras

    model = keras.Sequential(
        [
            keras.Input(shape=(NUM_PIXELS,), name="pixels"),
            keras.layers.Dense(first_layer_neurons, activation="relu", name="hidden1"),
            keras.layers.Dense(second_layer_neurons, activation="relu", name="hidden2"),
            keras.layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32", name="output"),
        ],
        name="mnist_dnn",
    )
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model

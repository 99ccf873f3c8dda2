"""The seed's model: Dense(h1, relu) -> Dense(h2, relu) -> Dense(10, softmax) on 784 pixels."""

from __future__ import annotations

from typing import Any

NUM_PIXELS = 784
NUM_CLASSES = 10


def build_model(
    first_layer_neurons: int = 300,
    second_layer_neurons: int = 100,
    learning_rate: float = 0.001,
    *,
    compile: bool = True,
) -> Any:
    """The tutorial's Sequential model, compiled as the seed did (RMSprop, categorical CE).

    ``compile`` uses Keras's defaults on purpose: that is the seed's method the benchmarks
    compare against. Under a mixed-precision policy the softmax stays float32 so that the loss
    is computed in full precision.
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
    if compile:
        model.compile(
            optimizer=keras.optimizers.RMSprop(learning_rate=learning_rate),
            loss="categorical_crossentropy",
            metrics=["accuracy"],
        )
    return model

"""A user's own Keras model builders, as a package in the image would hold them (tests).

Each is `function(num_features=, num_outputs=, seed=, **kwargs)` -> an uncompiled
`tf.keras.Model`, named by a contract's `model.builder: "tests.support.user_models:<name>"`.
"""

from __future__ import annotations


def small_mlp(num_features: int, num_outputs: int, seed: int, hidden: int = 8):
    """One hidden tanh layer of `hidden` units; softmax (classes) or linear (regression)."""
    import tensorflow as tf

    init = tf.keras.initializers.GlorotUniform(seed=seed)
    return tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(num_features,)),
            tf.keras.layers.Dense(hidden, activation="tanh", kernel_initializer=init),
            tf.keras.layers.Dense(
                num_outputs, activation="softmax" if num_outputs > 1 else "linear"
            ),
        ],
        name="small_mlp",
    )


def with_batch_norm(num_features: int, num_outputs: int, seed: int):
    """A model with a BatchNormalization layer (refused: it mixes examples in a batch)."""
    import tensorflow as tf

    return tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(num_features,)),
            tf.keras.layers.Dense(4, activation="relu"),
            tf.keras.layers.BatchNormalization(name="bn_after_dense"),
            tf.keras.layers.Dense(num_outputs, activation="softmax"),
        ]
    )


def three_outputs(num_features: int, num_outputs: int, seed: int):
    """Ignores `num_outputs` and always predicts 3 classes (refused for other contracts)."""
    import tensorflow as tf

    return tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(num_features,)),
            tf.keras.layers.Dense(3, activation="softmax"),
        ]
    )

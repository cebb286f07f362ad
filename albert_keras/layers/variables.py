"""Reading a Keras variable at its stored precision inside a mixed-precision call."""

import tensorflow as tf
from keras.src.backend.common.variables import AutocastScope


def stored_value(variable):
    """A Keras variable's value in its own dtype (float32), not autocast.

    Inside a mixed-precision layer call Keras hands out variables already cast to the
    compute dtype. The encoder casts kernels itself (once per step for shared ones),
    keeps biases and LayerNorm parameters in float32, and the embedding gathers rows
    from its float32 tables before casting them.
    """
    with AutocastScope(None):
        return tf.convert_to_tensor(variable.value)

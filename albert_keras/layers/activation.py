"""Activation functions by their unambiguous internal names (see config.ACTIVATIONS)."""

import keras


def gelu_tanh(x):
    """The reference ALBERT gelu: the tanh approximation."""
    return keras.activations.gelu(x, approximate=True)


def gelu_erf(x):
    """Exact GELU, x * Phi(x) (transformers' "gelu")."""
    return keras.activations.gelu(x, approximate=False)


_ACTIVATIONS = {
    "gelu_tanh": gelu_tanh,
    "gelu_erf": gelu_erf,
    "relu": keras.activations.relu,
    "tanh": keras.activations.tanh,
    "silu": keras.activations.silu,
    "linear": keras.activations.linear,
}


def get_activation(name: str):
    if name not in _ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; use one of {', '.join(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]

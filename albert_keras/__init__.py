"""ALBERT (A Lite BERT) in TensorFlow 2 / Keras 3."""

from albert_keras.config import AlbertConfig

__all__ = ["AlbertConfig"]

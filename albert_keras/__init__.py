"""ALBERT (A Lite BERT) in TensorFlow 2 / Keras 3."""

from albert_keras.config import AlbertConfig
from albert_keras.models import AlbertBackbone, AlbertClassifier, AlbertPretrainer

__all__ = ["AlbertBackbone", "AlbertClassifier", "AlbertConfig", "AlbertPretrainer"]

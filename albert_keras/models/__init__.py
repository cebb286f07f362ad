"""Functional Keras models: the backbone and the pretraining model."""

from albert_keras.models.backbone import AlbertBackbone
from albert_keras.models.pretrainer import AlbertPretrainer

__all__ = ["AlbertBackbone", "AlbertPretrainer"]

"""Functional Keras models: the backbone, the pretraining model and the classifier."""

from albert_keras.models.backbone import AlbertBackbone
from albert_keras.models.classifier import AlbertClassifier
from albert_keras.models.kernels import with_kernels
from albert_keras.models.pretrainer import AlbertPretrainer

__all__ = ["AlbertBackbone", "AlbertClassifier", "AlbertPretrainer", "with_kernels"]

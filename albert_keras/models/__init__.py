"""Functional Keras models: the backbone, the pretraining model, the classifier and the
tagger."""

from albert_keras.models.backbone import AlbertBackbone
from albert_keras.models.classifier import AlbertClassifier
from albert_keras.models.kernels import with_kernels
from albert_keras.models.pretrainer import AlbertPretrainer
from albert_keras.models.tagger import AlbertTagger

__all__ = ["AlbertBackbone", "AlbertClassifier", "AlbertPretrainer", "AlbertTagger",
           "with_kernels"]

"""Functional Keras models: the backbone, the pretraining model, the classifier, the
tagger and the question answerer."""

from albert_keras.models.backbone import AlbertBackbone
from albert_keras.models.classifier import AlbertClassifier
from albert_keras.models.fusion import with_fusion
from albert_keras.models.pretrainer import AlbertPretrainer
from albert_keras.models.question_answerer import AlbertQuestionAnswerer
from albert_keras.models.squad2_answerer import AlbertSquad2Answerer
from albert_keras.models.tagger import AlbertTagger

__all__ = ["AlbertBackbone", "AlbertClassifier", "AlbertPretrainer", "AlbertQuestionAnswerer",
           "AlbertSquad2Answerer", "AlbertTagger", "with_fusion"]

"""ALBERT (A Lite BERT) in TensorFlow 2 / Keras 3.

albert_keras.data (pipelines), albert_keras.vocabulary (SentencePiece) and
albert_keras.tokenizer (tensorflow_text) are imported on their own:
`from albert_keras.data import pretraining_dataset`.
"""

from albert_keras import convert, optimization
from albert_keras.config import AlbertConfig
from albert_keras.models import (AlbertBackbone, AlbertClassifier, AlbertPretrainer,
                                 AlbertQuestionAnswerer, AlbertSquad2Answerer, AlbertTagger)

__all__ = ["AlbertBackbone", "AlbertClassifier", "AlbertConfig", "AlbertPretrainer",
           "AlbertQuestionAnswerer", "AlbertSquad2Answerer", "AlbertTagger", "convert",
           "optimization"]

"""Keras layers for ALBERT: factorized embedding, shared encoder, heads."""

from albert_keras.layers.attention import SelfAttention
from albert_keras.layers.block import TransformerBlock
from albert_keras.layers.embedding import FactorizedEmbedding
from albert_keras.layers.encoder import SharedEncoder
from albert_keras.layers.feed_forward import FeedForward
from albert_keras.layers.heads import MaskedLMHead, Pooler, SentenceOrderHead

__all__ = [
    "FactorizedEmbedding",
    "FeedForward",
    "MaskedLMHead",
    "Pooler",
    "SelfAttention",
    "SentenceOrderHead",
    "SharedEncoder",
    "TransformerBlock",
]

"""Keras layers for ALBERT: factorized embedding, shared encoder, heads."""

from albert_keras.layers.embedding import FactorizedEmbedding
from albert_keras.layers.encoder import FeedForward, SelfAttention, SharedEncoder, TransformerBlock
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

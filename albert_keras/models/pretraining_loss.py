"""The pretraining loss: masked-LM cross entropy plus sentence-order cross entropy.

    mlm_loss = sum_i w_i * CE(mlm_logits_i, id_i) / sum_i w_i   (i: masked positions,
               w: masked_lm_weights, 0 at padded predictions; sums over the global batch)
    sop_loss = mean over the global batch of CE(sop_logits, label)
    loss     = mlm_loss + sop_loss

Sums are over the global batch (all replicas), so that the replicas' summed gradients
equal the single-device gradient of the same batch whatever the padding share. With
gradient accumulation the global batch is the whole update: each micro-batch's sums
are divided by the update's denominators (loss_denominators), so that the micro-batches'
summed gradients equal the gradient of the update's batch in one piece.

The MLM cross entropy has two forms, chosen by the model's fusion
(fused_ops.sparse_softmax_cross_entropy): TensorFlow's op ("plain") and an XLA kernel
("xla", "xla_cpu").
"""

import tensorflow as tf

from albert_keras.layers.fused_ops import sparse_softmax_cross_entropy
from albert_keras.models.gradient_accumulation import sum_over_replicas


def loss_denominators(mlm_weights):
    """{"masked_lm_weight": sum of mlm_weights, "sequences": batch size}, float32 scalars
    summed over all replicas: what the two losses divide by. mlm_weights: [batch, P]."""
    mlm_weights = tf.cast(mlm_weights, tf.float32)
    return {
        "masked_lm_weight": sum_over_replicas(tf.reduce_sum(mlm_weights)),
        "sequences": sum_over_replicas(tf.cast(tf.shape(mlm_weights)[0], tf.float32)),
    }


def pretraining_losses(mlm_logits, mlm_ids, mlm_weights, sop_logits, sop_labels, fusion,
                       denominators=None):
    """(mlm_loss, sop_loss, per-prediction MLM losses, per-example SOP losses), float32.

    mlm_logits [batch, P, V], mlm_ids int [batch, P], mlm_weights [batch, P];
    sop_logits [batch, 2], sop_labels int [batch]. denominators: loss_denominators of
    the whole update when this batch is one micro-batch of it; by default this batch's.
    """
    if denominators is None:
        denominators = loss_denominators(mlm_weights)
    mlm_losses = sparse_softmax_cross_entropy(mlm_ids, mlm_logits, fusion)
    mlm_loss = (tf.reduce_sum(mlm_losses * mlm_weights)
                / tf.maximum(denominators["masked_lm_weight"], 1e-5))
    sop_losses = tf.nn.sparse_softmax_cross_entropy_with_logits(sop_labels, sop_logits)
    sop_loss = tf.reduce_sum(sop_losses) / denominators["sequences"]
    return mlm_loss, sop_loss, mlm_losses, sop_losses

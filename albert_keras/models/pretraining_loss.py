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

The MLM cross entropy has two forms, chosen by the model's kernels: TensorFlow's op
("plain") and an XLA kernel ("xla", "xla_cpu"). TensorFlow's op writes the
[rows, V] gradient in its forward pass and is single-pass slow on CPU; the XLA form
reads the logits twice and writes the gradient only in the backward pass, from the
saved log-sum-exp (2.5-2.7x, benchmarks/kernel_choices.py).
"""

import tensorflow as tf

from albert_keras.layers.fused_ops import is_fused, last_axis_sum
from albert_keras.models.gradient_accumulation import sum_over_replicas


def loss_denominators(mlm_weights):
    """{"masked_lm_weight": sum of mlm_weights, "sequences": batch size}, float32 scalars
    summed over all replicas: what the two losses divide by. mlm_weights: [batch, P]."""
    mlm_weights = tf.cast(mlm_weights, tf.float32)
    return {
        "masked_lm_weight": sum_over_replicas(tf.reduce_sum(mlm_weights)),
        "sequences": sum_over_replicas(tf.cast(tf.shape(mlm_weights)[0], tf.float32)),
    }


def pretraining_losses(mlm_logits, mlm_ids, mlm_weights, sop_logits, sop_labels, kernels,
                       denominators=None):
    """(mlm_loss, sop_loss, per-prediction MLM losses, per-example SOP losses), float32.

    mlm_logits [batch, P, V], mlm_ids int [batch, P], mlm_weights [batch, P];
    sop_logits [batch, 2], sop_labels int [batch]. denominators: loss_denominators of
    the whole update when this batch is one micro-batch of it; by default this batch's.
    """
    if denominators is None:
        denominators = loss_denominators(mlm_weights)
    mlm_losses = sparse_softmax_cross_entropy(mlm_ids, mlm_logits, kernels)
    mlm_loss = (tf.reduce_sum(mlm_losses * mlm_weights)
                / tf.maximum(denominators["masked_lm_weight"], 1e-5))
    sop_losses = tf.nn.sparse_softmax_cross_entropy_with_logits(sop_labels, sop_logits)
    sop_loss = tf.reduce_sum(sop_losses) / denominators["sequences"]
    return mlm_loss, sop_loss, mlm_losses, sop_losses


@tf.function(jit_compile=True, autograph=False)
def _cross_entropy_forward(logits, labels, by_matvec):
    logits = tf.cast(logits, tf.float32)
    top = tf.reduce_max(logits, axis=-1, keepdims=True)
    log_sum_exp = top + tf.math.log(last_axis_sum(tf.exp(logits - top), by_matvec))
    vocab = tf.shape(logits)[-1]
    valid = (labels >= 0) & (labels < vocab)
    picked = tf.gather(logits, tf.clip_by_value(labels, 0, vocab - 1)[:, None],
                       batch_dims=1)[:, 0]
    nan = tf.constant(float("nan"), tf.float32)
    return tf.where(valid, log_sum_exp[:, 0] - picked, nan), log_sum_exp


@tf.function(jit_compile=True, autograph=False)
def _cross_entropy_backward(logits, labels, log_sum_exp, upstream):
    probs = tf.exp(tf.cast(logits, tf.float32) - log_sum_exp)
    target = tf.one_hot(labels, tf.shape(logits)[-1], dtype=tf.float32)
    return tf.cast((probs - target) * upstream[:, None], logits.dtype)


def sparse_softmax_cross_entropy(labels, logits, kernels):
    """Per-row -log softmax(logits)[label], in float32. labels: int [...]; logits: [..., V].

    In the XLA form a label outside [0, V) gives a NaN loss, as TensorFlow's op does
    on GPU (on CPU TensorFlow's op raises).
    """
    labels = tf.cast(labels, tf.int32)
    if not is_fused(kernels):
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, tf.cast(logits, tf.float32))
    batch_shape = tf.shape(labels)
    flat_labels = tf.reshape(labels, (-1,))
    by_matvec = kernels == "xla_cpu"

    @tf.custom_gradient
    def fused(flat_logits):
        losses, log_sum_exp = _cross_entropy_forward(flat_logits, flat_labels, by_matvec)

        def grad(upstream):
            return _cross_entropy_backward(flat_logits, flat_labels, log_sum_exp, upstream)
        return losses, grad

    losses = fused(tf.reshape(logits, (-1, tf.shape(logits)[-1])))
    return tf.reshape(losses, batch_shape)

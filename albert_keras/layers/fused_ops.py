"""The element-wise parts of an encoder block, and the masked-LM cross entropy, in both
forms: plain TensorFlow ops and fused XLA kernels. Which form runs is the model's
`fusion` (config.FUSIONS), passed to every function here; nothing in this module is a
setting.

Between the block's GEMMs sit bias + GELU, the attention softmax and residual +
LayerNorm. As separate TensorFlow ops each is several passes over memory, forward and
backward, with casts around every float32 step under mixed precision; profiled on a
CPU they were more than half of a bf16 training step's op time. In the "xla" forms
each of them (and its gradient, written out with tf.custom_gradient) is one
XLA-compiled function that reads the compute-dtype tensors, does all arithmetic in
float32 and writes the compute dtype once. The GEMMs stay outside XLA: on CPU,
TensorFlow's oneDNN bf16 GEMMs are 2-3x faster than XLA's (BENCHMARKS.md).

The plain forms are the ones exported for a stock TF Serving, which does not compile
XLA on CPU by default; there grappler's remapper fuses MatMul + BiasAdd + GELU into
one oneDNN kernel when no gradient is needed. Each fused form is tested against its
plain form and against numpy (tests/test_fused_ops.py).
"""

import functools
import math

import tensorflow as tf

from albert_keras.config import check_fusion
from albert_keras.layers.activation import get_activation

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# Activations that have a fused kernel; others always use the plain form.
FUSED_ACTIVATIONS = ("gelu_tanh", "gelu_erf")


def fusion_for_this_host() -> str:
    """The fastest fusion for training here: "xla_cpu" on a host without GPU or TPU, else "xla".

    Read when a program builds its model (the training programs' fusion "auto").
    """
    accelerators = tf.config.list_logical_devices("GPU") + tf.config.list_logical_devices("TPU")
    return "xla" if accelerators else "xla_cpu"


def resolve_fusion(choice: str) -> str:
    """"auto" -> fusion_for_this_host(); any of config.FUSIONS as it is."""
    return fusion_for_this_host() if choice == "auto" else check_fusion(choice, "fusion")


def is_fused(fusion: str) -> bool:
    """Whether `fusion` names the XLA forms."""
    return check_fusion(fusion, "fusion") != "plain"


def _f32(x):
    return tf.cast(x, tf.float32)


def _row_sum(x):
    """Sum over every axis but the last (a bias gradient)."""
    return tf.reduce_sum(tf.reshape(x, (-1, tf.shape(x)[-1])), axis=0)


def last_axis_sum(x, by_matvec=False):
    """sum(x, axis=-1, keepdims=True) of float32 x (any rank; the last axis may be
    dynamic, e.g. the keys of a batch padded to its longest sequence).

    by_matvec (the "xla_cpu" kernels): as a product with a ones vector. XLA's CPU
    backend rewrites a row reduction into a tree of reduce-window passes, each a
    separate loop over memory; a GEMV is one pass: the LayerNorm kernel at [1024, 768]
    runs 1.4-1.5x faster fwd+bwd (benchmarks/kernel_choices.py).
    """
    if not by_matvec:
        return tf.reduce_sum(x, axis=-1, keepdims=True)
    return tf.matmul(x, tf.ones(tf.stack([tf.shape(x)[-1], 1]), x.dtype))


def _last_axis_mean(x, by_matvec=False):
    if not by_matvec:
        return tf.reduce_mean(x, axis=-1, keepdims=True)
    return last_axis_sum(x, True) / tf.cast(tf.shape(x)[-1], x.dtype)


# --- bias + activation -------------------------------------------------------------

def _activation_and_slope(y, activation):
    """(act(y), act'(y)) in float32, for the activations in FUSED_ACTIVATIONS."""
    if activation == "gelu_tanh":
        t = tf.tanh(_SQRT_2_OVER_PI * (y + _GELU_CUBIC * y * y * y))
        value = 0.5 * y * (1.0 + t)
        slope = 0.5 * (1.0 + t) + 0.5 * y * (1.0 - t * t) * _SQRT_2_OVER_PI * (
            1.0 + 3.0 * _GELU_CUBIC * y * y)
        return value, slope
    cdf = 0.5 * (1.0 + tf.math.erf(y * _INV_SQRT_2))
    return y * cdf, cdf + y * _INV_SQRT_2PI * tf.exp(-0.5 * y * y)


@functools.lru_cache(maxsize=None)
def _bias_activation_kernel(activation):
    @tf.function(jit_compile=True, autograph=False)
    def forward(h, bias):
        value, _ = _activation_and_slope(_f32(h) + bias, activation)
        return tf.cast(value, h.dtype)

    @tf.function(jit_compile=True, autograph=False)
    def backward(h, bias, upstream):
        _, slope = _activation_and_slope(_f32(h) + bias, activation)
        grad = _f32(upstream) * slope
        return tf.cast(grad, h.dtype), _row_sum(grad)

    @tf.custom_gradient
    def fused(h, bias):
        return forward(h, bias), lambda upstream: backward(h, bias, upstream)

    return fused


def bias_activation(h, bias, activation, fusion):
    """act(h + bias). h: [..., N] in the compute dtype; bias: float32 [N]."""
    if activation in FUSED_ACTIVATIONS and is_fused(fusion):
        return _bias_activation_kernel(activation)(h, tf.cast(bias, tf.float32))
    # keras' gelu is tf.nn.gelu, whose pattern grappler fuses with MatMul + BiasAdd.
    return get_activation(activation)(tf.nn.bias_add(h, tf.cast(bias, h.dtype)))


# --- residual + LayerNorm ----------------------------------------------------------

def _residual_sum(x, y, bias):
    return _f32(x) + _f32(y) + bias


def _normalize(h, epsilon, by_matvec=False):
    """(h - mean) / std over the last axis of float32 h, and 1 / std."""
    centered = h - _last_axis_mean(h, by_matvec)
    rstd = tf.math.rsqrt(_last_axis_mean(tf.square(centered), by_matvec) + epsilon)
    return centered * rstd, rstd


@functools.lru_cache(maxsize=None)
def _residual_layer_norm_kernel(epsilon, by_matvec):
    @tf.function(jit_compile=True, autograph=False)
    def forward(x, y, bias, gamma, beta):
        normed, _ = _normalize(_residual_sum(x, y, bias), epsilon, by_matvec)
        return tf.cast(normed * gamma + beta, x.dtype)

    @tf.function(jit_compile=True, autograph=False)
    def backward(x, y, bias, gamma, upstream):
        normed, rstd = _normalize(_residual_sum(x, y, bias), epsilon, by_matvec)
        upstream = _f32(upstream)
        d_normed = upstream * gamma
        d_h = rstd * (d_normed - _last_axis_mean(d_normed, by_matvec)
                      - normed * _last_axis_mean(d_normed * normed, by_matvec))
        return (tf.cast(d_h, x.dtype), tf.cast(d_h, y.dtype), _row_sum(d_h),
                _row_sum(upstream * normed), _row_sum(upstream))

    @tf.custom_gradient
    def fused(x, y, bias, gamma, beta):
        def grad(upstream):
            return backward(x, y, bias, gamma, upstream)
        return forward(x, y, bias, gamma, beta), grad

    return fused


def residual_layer_norm(x, y, bias, gamma, beta, epsilon, fusion):
    """LayerNorm(x + y + bias) * gamma + beta, statistics in float32, output in x's dtype.

    bias may be None (no bias); gamma, beta and bias are float32 [H].
    """
    hidden = x.shape[-1]
    bias = tf.zeros((hidden,), tf.float32) if bias is None else tf.cast(bias, tf.float32)
    gamma, beta = tf.cast(gamma, tf.float32), tf.cast(beta, tf.float32)
    if is_fused(fusion):
        kernel = _residual_layer_norm_kernel(float(epsilon), fusion == "xla_cpu")
        return kernel(x, y, bias, gamma, beta)
    # Plain form: the residual sum in the compute dtype, then one cast (as a Keras
    # Dense + LayerNorm would do); casts are what bf16 costs outside a fusion.
    h = tf.cast(x + tf.cast(y, x.dtype) + tf.cast(bias, x.dtype), tf.float32)
    normed, _ = _normalize(h, epsilon)
    return tf.cast(normed * gamma + beta, x.dtype)


# --- attention softmax ---------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _masked_softmax_kernel(by_matvec):
    @tf.function(jit_compile=True, autograph=False)
    def forward(scores, mask_bias):
        logits = _f32(scores) + mask_bias
        exp = tf.exp(logits - tf.reduce_max(logits, axis=-1, keepdims=True))
        return tf.cast(exp / last_axis_sum(exp, by_matvec), scores.dtype)

    @tf.function(jit_compile=True, autograph=False)
    def backward(probs, upstream):
        probs, upstream_f32 = _f32(probs), _f32(upstream)
        d_logits = probs * (upstream_f32 - last_axis_sum(upstream_f32 * probs, by_matvec))
        return tf.cast(d_logits, upstream.dtype)

    @tf.custom_gradient
    def fused(scores, mask_bias):
        # The gradient reads the probabilities the forward pass wrote (kept anyway for
        # the probabilities x values product) instead of recomputing them from the
        # scores: no exp or max in the backward pass, and the scores need not be kept.
        probs = forward(scores, mask_bias)

        def grad(upstream):
            return backward(probs, upstream), None
        return probs, grad

    return fused


def masked_softmax(scores, mask_bias, fusion):
    """softmax(scores + mask_bias) over the last axis, computed in float32.

    scores: [batch, heads, q, k] in the compute dtype, already scaled (SelfAttention
    folds 1/sqrt(d) into its queries); mask_bias: float32, broadcastable (large negative
    at padded keys). Returns probabilities in scores' dtype.
    """
    if is_fused(fusion):
        return _masked_softmax_kernel(fusion == "xla_cpu")(scores, mask_bias)
    return tf.cast(tf.nn.softmax(_f32(scores) + mask_bias, axis=-1), scores.dtype)


# --- the masked-LM cross entropy -----------------------------------------------------
# TensorFlow's op writes the [rows, V] gradient in its forward pass and is single-pass
# slow on CPU; the XLA form reads the logits twice and writes the gradient only in the
# backward pass, from the saved log-sum-exp (2.5-2.7x, benchmarks/kernel_choices.py).

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


def sparse_softmax_cross_entropy(labels, logits, fusion):
    """Per-row -log softmax(logits)[label], in float32. labels: int [...]; logits: [..., V].

    In the XLA form a label outside [0, V) gives a NaN loss, as TensorFlow's op does
    on GPU (on CPU TensorFlow's op raises).
    """
    labels = tf.cast(labels, tf.int32)
    if not is_fused(fusion):
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, tf.cast(logits, tf.float32))
    batch_shape = tf.shape(labels)
    flat_labels = tf.reshape(labels, (-1,))
    by_matvec = fusion == "xla_cpu"

    @tf.custom_gradient
    def fused(flat_logits):
        losses, log_sum_exp = _cross_entropy_forward(flat_logits, flat_labels, by_matvec)

        def grad(upstream):
            return _cross_entropy_backward(flat_logits, flat_labels, log_sum_exp, upstream)
        return losses, grad

    losses = fused(tf.reshape(logits, (-1, tf.shape(logits)[-1])))
    return tf.reshape(losses, batch_shape)

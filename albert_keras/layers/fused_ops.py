"""The element-wise parts of an encoder block as fused kernels, for training speed.

Between the block's GEMMs sit bias + GELU, the attention softmax and residual +
LayerNorm. As separate TensorFlow ops each is several passes over memory, forward and
backward, with casts around every float32 step under mixed precision; profiled on a
CPU they were more than half of a bf16 training step's op time. Here each of them
(and its gradient, written out with tf.custom_gradient) is one XLA-compiled function
that reads the compute-dtype tensors, does all arithmetic in float32 and writes the
compute dtype once. The GEMMs stay outside XLA: on CPU, TensorFlow's oneDNN bf16
GEMMs are 2-3x faster than XLA's (BENCHMARKS.md).

Every function here also has a plain form (TensorFlow ops, no XLA), used for
inference: exported SavedModels must run on a stock TF Serving, which does not
compile XLA on CPU by default, and grappler's remapper already fuses the plain
MatMul + BiasAdd + GELU into one oneDNN kernel when no gradient is needed.

Which form runs is set by `set_fusion("auto" | "xla" | "plain")`: "auto" (the
default) uses XLA for training calls (training=True) and the plain form otherwise.
The setting is process-wide and read when a function is traced: set it before the
model's first call (the training programs do, from --fusion).
"""

import contextlib
import functools
import math

import tensorflow as tf

from albert_keras.layers.activation import get_activation

MODES = ("auto", "xla", "plain")
_mode = "auto"

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# Activations that have a fused kernel; others always use the plain form.
FUSED_ACTIVATIONS = ("gelu_tanh", "gelu_erf")


def set_fusion(mode):
    """Choose the kernels: "auto" (XLA when training), "xla" (always), "plain" (never)."""
    global _mode
    if mode not in MODES:
        raise ValueError(f"fusion mode must be one of {MODES}, got {mode!r}")
    _mode = mode


def get_fusion():
    return _mode


@contextlib.contextmanager
def fusion(mode):
    """Temporarily set_fusion(mode); the exporter traces with "plain" this way."""
    previous = _mode
    set_fusion(mode)
    try:
        yield
    finally:
        set_fusion(previous)


def use_xla(training):
    return _mode == "xla" or (_mode == "auto" and bool(training))


def _f32(x):
    return tf.cast(x, tf.float32)


def _row_sum(x):
    """Sum over every axis but the last (a bias gradient)."""
    return tf.reduce_sum(tf.reshape(x, (-1, tf.shape(x)[-1])), axis=0)


@functools.lru_cache(maxsize=None)
def _reduce_by_matvec():
    """Whether last-axis sums inside the kernels are matrix-vector products.

    XLA's CPU backend rewrites a row reduction into a tree of reduce-window passes,
    each a separate loop over memory; a product with a ones vector is one pass through
    its GEMV and took the LayerNorm kernel from 3.19 to 2.29 ms fwd+bwd at [1024, 768]
    (benchmarks/kernel_choices.py, BENCHMARKS.md). Only on CPU hosts: float32 dots on
    GPU (TF32) and TPU (bf16 passes) round their inputs, which statistics must not.
    """
    return not (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def _by_matvec(choice):
    """choice: None for this host's (_reduce_by_matvec), or a forced True / False."""
    return _reduce_by_matvec() if choice is None else choice


def _last_axis_sum(x, by_matvec=None):
    """sum(x, axis=-1, keepdims=True) of float32 x (any rank; the last axis may be
    dynamic, e.g. the keys of a batch padded to its longest sequence)."""
    if not _by_matvec(by_matvec):
        return tf.reduce_sum(x, axis=-1, keepdims=True)
    return tf.matmul(x, tf.ones(tf.stack([tf.shape(x)[-1], 1]), x.dtype))


def _last_axis_mean(x, by_matvec=None):
    if not _by_matvec(by_matvec):
        return tf.reduce_mean(x, axis=-1, keepdims=True)
    return _last_axis_sum(x, True) / tf.cast(tf.shape(x)[-1], x.dtype)


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


def bias_activation(h, bias, activation, training=None):
    """act(h + bias). h: [..., N] in the compute dtype; bias: float32 [N]."""
    if activation in FUSED_ACTIVATIONS and use_xla(training):
        return _bias_activation_kernel(activation)(h, tf.cast(bias, tf.float32))
    # keras' gelu is tf.nn.gelu, whose pattern grappler fuses with MatMul + BiasAdd.
    return get_activation(activation)(tf.nn.bias_add(h, tf.cast(bias, h.dtype)))


# --- residual + LayerNorm ----------------------------------------------------------

def _residual_sum(x, y, bias):
    return _f32(x) + _f32(y) + bias


def _normalize(h, epsilon, by_matvec=None):
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


def residual_layer_norm(x, y, bias, gamma, beta, epsilon, training=None):
    """LayerNorm(x + y + bias) * gamma + beta, statistics in float32, output in x's dtype.

    bias may be None (no bias); gamma, beta and bias are float32 [H].
    """
    hidden = x.shape[-1]
    bias = tf.zeros((hidden,), tf.float32) if bias is None else tf.cast(bias, tf.float32)
    gamma, beta = tf.cast(gamma, tf.float32), tf.cast(beta, tf.float32)
    if use_xla(training):
        kernel = _residual_layer_norm_kernel(float(epsilon), _reduce_by_matvec())
        return kernel(x, y, bias, gamma, beta)
    # Plain form: the residual sum in the compute dtype, then one cast (as a Keras
    # Dense + LayerNorm would do); casts are what bf16 costs outside a fusion.
    h = tf.cast(x + tf.cast(y, x.dtype) + tf.cast(bias, x.dtype), tf.float32)
    normed, _ = _normalize(h, epsilon, by_matvec=False)
    return tf.cast(normed * gamma + beta, x.dtype)


# --- attention softmax ---------------------------------------------------------------

def _probabilities(scores, mask_bias, scale):
    logits = _f32(scores) * scale + mask_bias
    exp = tf.exp(logits - tf.reduce_max(logits, axis=-1, keepdims=True))
    return exp / _last_axis_sum(exp)


@tf.function(jit_compile=True, autograph=False)
def _softmax_forward(scores, mask_bias, scale):
    return tf.cast(_probabilities(scores, mask_bias, scale), scores.dtype)


@tf.function(jit_compile=True, autograph=False)
def _softmax_backward(probs, scale, upstream):
    probs, upstream_f32 = _f32(probs), _f32(upstream)
    d_logits = probs * (upstream_f32 - _last_axis_sum(upstream_f32 * probs))
    return tf.cast(d_logits * scale, upstream.dtype)


@tf.custom_gradient
def _fused_softmax(scores, mask_bias, scale):
    # The gradient reads the probabilities the forward pass wrote (kept anyway for
    # the probabilities x values product) instead of recomputing them from the
    # scores: no exp or max in the backward pass, and the scores need not be kept.
    probs = _softmax_forward(scores, mask_bias, scale)

    def grad(upstream):
        return _softmax_backward(probs, scale, upstream), None, None
    return probs, grad


def scaled_masked_softmax(scores, mask_bias, scale, training=None):
    """softmax(scores * scale + mask_bias) over the last axis, in float32.

    scores: [batch, heads, q, k] in the compute dtype; mask_bias: float32, broadcastable
    (large negative at padded keys); returns probabilities in scores' dtype. The plain
    form expects scores already scaled (scaling q is cheaper outside a fusion) and
    ignores `scale`.
    """
    if use_xla(training):
        return _fused_softmax(scores, mask_bias, tf.constant(scale, tf.float32))
    return tf.cast(tf.nn.softmax(_f32(scores) + mask_bias, axis=-1), scores.dtype)


# --- one cast of a shared kernel for all its uses -------------------------------------

@tf.function(jit_compile=True, autograph=False)
def _sum_in_float32(grads):
    return tf.add_n([_f32(g) for g in grads])


def cast_for_uses(kernel, dtype, uses, training=None):
    """`uses` copies of float32 `kernel` cast to `dtype`, cast once.

    ALBERT applies one kernel in every layer; under mixed precision Keras would cast it
    again at each use (12 casts of every shared weight per step for base). The gradient
    sums the uses' gradients in float32, as the per-use casts did, in one fused pass.
    """
    kernel = tf.convert_to_tensor(kernel)
    if uses == 1 or kernel.dtype == tf.as_dtype(dtype) or not use_xla(training):
        # Separate casts keep the per-use float32 gradient sum; grappler merges the
        # forward casts into one when no gradient is taken.
        return [tf.cast(kernel, dtype) for _ in range(uses)]

    @tf.custom_gradient
    def fan_out(value):
        cast = tf.cast(value, dtype)

        def grad(*upstream):
            present = [g for g in upstream if g is not None]
            if not present:
                return tf.zeros_like(value)
            return _sum_in_float32(present)

        return [tf.identity(cast) for _ in range(uses)], grad

    return fan_out(kernel)


# --- sparse softmax cross entropy (the MLM loss) -------------------------------------

@tf.function(jit_compile=True, autograph=False)
def _cross_entropy_forward(logits, labels):
    logits = _f32(logits)
    top = tf.reduce_max(logits, axis=-1, keepdims=True)
    log_sum_exp = top + tf.math.log(_last_axis_sum(tf.exp(logits - top)))
    vocab = tf.shape(logits)[-1]
    valid = (labels >= 0) & (labels < vocab)
    picked = tf.gather(logits, tf.clip_by_value(labels, 0, vocab - 1)[:, None],
                       batch_dims=1)[:, 0]
    nan = tf.constant(float("nan"), tf.float32)
    return tf.where(valid, log_sum_exp[:, 0] - picked, nan), log_sum_exp


@tf.function(jit_compile=True, autograph=False)
def _cross_entropy_backward(logits, labels, log_sum_exp, upstream):
    probs = tf.exp(_f32(logits) - log_sum_exp)
    target = tf.one_hot(labels, tf.shape(logits)[-1], dtype=tf.float32)
    return tf.cast((probs - target) * upstream[:, None], logits.dtype)


def sparse_softmax_cross_entropy(labels, logits, training=None):
    """Per-row -log softmax(logits)[label], in float32. labels: int [...]; logits: [..., V].

    TensorFlow's fused op writes the [rows, V] gradient in the forward pass and is
    single-pass slow on CPU; the XLA form reads the logits twice and writes the
    gradient only in the backward pass (from the saved log-sum-exp). A label outside
    [0, V) gives a NaN loss, as TensorFlow's op does on GPU (on CPU it raises).
    """
    labels = tf.cast(labels, tf.int32)
    if not use_xla(training):
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, _f32(logits))
    batch_shape = tf.shape(labels)
    flat_labels = tf.reshape(labels, (-1,))

    @tf.custom_gradient
    def fused(flat_logits):
        losses, log_sum_exp = _cross_entropy_forward(flat_logits, flat_labels)

        def grad(upstream):
            return _cross_entropy_backward(flat_logits, flat_labels, log_sum_exp, upstream)
        return losses, grad

    losses = fused(tf.reshape(logits, (-1, tf.shape(logits)[-1])))
    return tf.reshape(losses, batch_shape)

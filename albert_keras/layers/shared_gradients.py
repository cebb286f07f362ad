"""The gradient plumbing of shared weights: a kernel that L layers use is cast to the
compute dtype once, and its L per-layer gradients are summed in float32, either all at
once (cast_once_for_uses) or as they come during a recomputed backward pass
(cast_in_chain_for_uses)."""

import tensorflow as tf

from albert_keras.layers import fused_ops


@tf.function(jit_compile=True, autograph=False)
def _sum_in_float32(grads):
    return tf.add_n([tf.cast(g, tf.float32) for g in grads])


def cast_once_for_uses(kernel, dtype, uses, fusion):
    """`uses` copies of float32 `kernel` cast to `dtype`, cast once.

    ALBERT applies one kernel in every layer; under mixed precision each use would
    cast it again (12 casts of every shared weight per step for base). The gradient
    sums the uses' gradients in float32, as the per-use casts did, in one fused pass
    (an XLA kernel, so only with fused kernels; plain ops keep the per-use casts,
    which grappler merges into one when no gradient is taken).
    """
    kernel = tf.convert_to_tensor(kernel)
    if uses == 1 or kernel.dtype == tf.as_dtype(dtype) or not fused_ops.is_fused(fusion):
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


@tf.function(jit_compile=True, autograph=False)
def _add_in_float32(running_sum, gradient):
    return running_sum + tf.cast(gradient, tf.float32)


def cast_in_chain_for_uses(kernel, dtype, uses, fusion):
    """`uses` copies of float32 `kernel` cast to `dtype` (cast once, as in
    cast_once_for_uses), whose gradients are summed one by one, in float32, as the
    backward pass produces them.

    A kernel used in L layers gets L weight-sized gradients; summed at the end (as
    cast_once_for_uses and TensorFlow's own aggregation do) they are all alive at once:
    for ALBERT-xlarge 24 x 200 MB, more than its activations at small batches. Here use
    i comes out of link i of a chain, whose gradient is use i's gradient plus link
    i+1's: a running sum, two weight-sized tensors at a time. With fused kernels each
    partial sum is an XLA call: grappler's arithmetic optimizer had merged a chain of
    TensorFlow's own gradient sums back into one sum of all L. The plain adds here were
    measured to stay a chain (BENCHMARKS.md, rematerialization).
    """
    kernel = tf.convert_to_tensor(kernel)
    cast = tf.cast(kernel, dtype)
    add = _add_in_float32 if fused_ops.is_fused(fusion) else (
        lambda running_sum, g: running_sum + tf.cast(g, tf.float32))

    @tf.custom_gradient
    def link(running, shared_cast):
        def grad(use_gradient, next_gradient):
            if use_gradient is None:
                use_gradient = tf.zeros_like(shared_cast)
            total = (tf.cast(use_gradient, tf.float32) if next_gradient is None
                     else add(next_gradient, use_gradient))
            return total, None  # the gradient reaches the kernel through the chain

        return (tf.identity(shared_cast), tf.identity(running)), grad

    copies, running = [], kernel
    for _ in range(uses):
        use, running = link(running, cast)
        copies.append(use)
    return copies

"""Exact gradient accumulation: one optimizer update from K micro-batches.

    model.compile(optimizer=..., gradient_accumulation_steps=K)

The batch a train step receives is the whole update (fit's batch, global_batch_size
sequences over all replicas). The step splits each replica's share into K equal
micro-batches, runs forward and backward on one at a time (a tf.while_loop: only one
micro-batch's activations are alive at once), sums the K gradients and applies them
once. So the update is the one the whole batch would give in one piece:

- every loss term divides by the whole update's denominator, not the micro-batch's:
  the model's `loss_denominators` computes them over the update (all replicas) before
  the loop; the masked-LM loss is then normalized by the update's masked-position count
  however unevenly the masks fall across micro-batches;
- the optimizer sees the summed gradient once: clipping by its global norm, LAMB's trust
  ratio, weight decay and the learning-rate schedule act per update, and
  optimizer.iterations (the step of checkpoints and TensorBoard) counts updates.

Keras' own `gradient_accumulation_steps` (an optimizer argument) averages the gradients
of K fit steps whose losses were each normalized by their own micro-batch, and counts
micro-batches in `iterations`; with uneven mask counts that is a different update.
"""

import keras
import tensorflow as tf


def sum_over_replicas(value):
    """Sums a per-replica value over all replicas (identity outside tf.distribute): the
    loss denominators of an update span every replica."""
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        return context.all_reduce(tf.distribute.ReduceOp.SUM, value)
    return value


def _split(tensor, parts):
    """[batch, ...] -> [parts, batch / parts, ...]; the batch must divide evenly."""
    if tensor is None:
        return None
    tensor = tf.convert_to_tensor(tensor)
    message = (f"gradient accumulation: a replica's batch of {{}} sequences does not split "
               f"into {parts} equal micro-batches")
    static_batch = tensor.shape[0]
    if static_batch is not None and static_batch % parts:
        raise ValueError(message.format(static_batch))
    batch = tf.shape(tensor)[0]
    tf.debugging.assert_equal(batch % parts, 0, message=message.format("some number of"))
    return tf.reshape(tensor, tf.concat([[parts, batch // parts], tf.shape(tensor)[1:]], 0))


def _check_mean_reductions(loss):
    """The default micro_batch_loss divides by K: exact for losses that average over
    the batch ("sum_over_batch_size", Keras' default), not for others."""
    for item in keras.tree.flatten(loss):
        reduction = getattr(item, "reduction", "sum_over_batch_size")
        if reduction != "sum_over_batch_size":
            raise ValueError(f"gradient accumulation needs losses that average over the "
                             f"batch (reduction 'sum_over_batch_size'); {item.name} has "
                             f"reduction {reduction!r}")


class GradientAccumulation:
    """Mixin for keras.Model subclasses (listed before keras.Model): compile() takes
    gradient_accumulation_steps, and train_step accumulates exactly (module docstring).

    A model whose loss is not a mean over the batch overrides `loss_denominators` and
    `micro_batch_loss`; the default suits Keras' compiled losses, which average over
    the batch: K equal micro-batches' means, each divided by K, sum to the batch mean.
    """

    gradient_accumulation_steps = 1

    def compile(self, optimizer="rmsprop", loss=None, *args, gradient_accumulation_steps=1,
                **kwargs):
        steps = gradient_accumulation_steps
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"gradient_accumulation_steps must be a positive integer, got "
                             f"{steps!r}")
        if steps > 1:
            inner = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer
            if getattr(inner, "gradient_accumulation_steps", None):
                raise ValueError("the optimizer accumulates gradients itself (its "
                                 "gradient_accumulation_steps); give the steps to compile "
                                 "only")
            if type(self).micro_batch_loss is GradientAccumulation.micro_batch_loss:
                _check_mean_reductions(loss)
        self.gradient_accumulation_steps = steps
        super().compile(optimizer, loss, *args, **kwargs)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config:
            config["gradient_accumulation_steps"] = self.gradient_accumulation_steps
        return config

    def compile_from_config(self, config):
        # Keras skips the compile of a loaded model whose compile() is overridden
        # unless the model restores it itself.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def loss_denominators(self, x, y, sample_weight):
        """What the loss divides by, over the whole update and all replicas (a dict of
        scalars), or None when micro_batch_loss needs nothing."""
        return None

    def micro_batch_loss(self, x, y, y_pred, sample_weight, denominators):
        """One micro-batch's share of the update's loss (float32 scalar)."""
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                 training=True)
        return tf.cast(loss, tf.float32) / self.gradient_accumulation_steps

    def train_step(self, data):
        steps = self.gradient_accumulation_steps
        if steps == 1:
            return super().train_step(data)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        denominators = self.loss_denominators(x, y, sample_weight)
        micro = keras.tree.map_structure(lambda t: _split(t, steps), (x, y, sample_weight))
        variables = self.trainable_weights
        without_gradient = []  # variables the loss does not reach (found while tracing)

        def micro_step(index, loss_sum, sums):
            mx, my, msw = keras.tree.map_structure(
                lambda t: None if t is None else t[index], micro)
            with tf.GradientTape() as tape:
                y_pred = self(mx, training=True)
                loss = self.micro_batch_loss(mx, my, y_pred, msw, denominators)
                scaled = self.optimizer.scale_loss(loss)
            gradients = tape.gradient(scaled, variables)
            without_gradient[:] = [i for i, g in enumerate(gradients) if g is None]
            self.compute_metrics(mx, my, y_pred, sample_weight=msw)
            # Embedding gradients come as IndexedSlices; the sum is kept dense.
            sums = [total if g is None else total + tf.cast(tf.convert_to_tensor(g), total.dtype)
                    for total, g in zip(sums, gradients)]
            return index + 1, loss_sum + loss, sums

        zeros = [tf.zeros(v.shape, v.dtype) for v in variables]
        _, loss, gradients = tf.while_loop(
            lambda index, *_: index < steps, micro_step, (tf.constant(0), tf.constant(0.0), zeros),
            parallel_iterations=1)  # one micro-batch's activations at a time
        # The "loss" metric that Keras' train_step keeps (there is no public handle),
        # given the loss of the global batch as Keras' train_step gives it.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        self._loss_tracker.update_state(
            loss * replicas,
            sample_weight=tf.shape(next(t for t in keras.tree.flatten(x) if t is not None))[0])
        self.optimizer.apply_gradients(
            [(g, v) for i, (g, v) in enumerate(zip(gradients, variables))
             if i not in without_gradient])
        return self.get_metrics_result()

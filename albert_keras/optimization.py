"""Optimisation as in the reference recipe: LAMB (or AdamW), linear warmup then
polynomial decay to zero, weight decay excluded for LayerNorm and bias variables,
gradient clipping by global norm."""

import keras
import tensorflow as tf
from keras import ops

from albert_keras.config import check_fusion

# Variables whose names contain any of these get no weight decay and, in LAMB,
# no layer-wise trust ratio (reference: "LayerNorm", "layer_norm", "bias").
NO_DECAY_NAMES = ("bias", "gamma", "beta", "layer_norm", "LayerNorm")


@keras.saving.register_keras_serializable(package="albert_keras")
class WarmupPolynomialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """The reference schedule: lr * step / warmup_steps while step < warmup_steps,
    else lr * (1 - step / total_steps) ** power (polynomial decay to end_learning_rate)."""

    def __init__(self, learning_rate, total_steps, warmup_steps=0, power=1.0,
                 end_learning_rate=0.0):
        if total_steps <= 0:
            raise ValueError(f"total_steps must be positive, got {total_steps}")
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"warmup_steps must be in [0, total_steps], got {warmup_steps}")
        self.learning_rate = learning_rate
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.power = power
        self.end_learning_rate = end_learning_rate

    def __call__(self, step):
        step = ops.cast(step, "float32")
        progress = ops.minimum(step, float(self.total_steps)) / float(self.total_steps)
        decayed = ((self.learning_rate - self.end_learning_rate)
                   * ops.power(1.0 - progress, self.power) + self.end_learning_rate)
        if not self.warmup_steps:
            return decayed
        warmup = self.learning_rate * step / float(self.warmup_steps)
        return ops.where(step < float(self.warmup_steps), warmup, decayed)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "power": self.power,
                "end_learning_rate": self.end_learning_rate}


class GlobalNormClipAfterAllReduce:
    """Clips gradients by their global norm after the replicas' gradients are summed.

    Keras 3.15 applies global_clipnorm before the cross-replica all-reduce, so each
    replica clips its own partial gradient and MirroredStrategy trains differently
    from one device on the same global batch. This mixin clips the summed gradient,
    as the reference does, and gives the update dense gradients.
    """

    def _init_clipping(self, clip_norm):
        self.clip_norm = clip_norm

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        values = [v.value if isinstance(v, keras.Variable) else v for v in trainable_variables]
        grads_and_vars = self._all_reduce_sum_gradients(list(zip(grads, values)))
        # An embedding's gradient arrives as IndexedSlices with one slice per token
        # occurrence. The global norm and Adam's squared gradient need the summed rows
        # (the norm of the slices is not the gradient's norm), so they are made dense,
        # as the reference's optimizers do.
        grads_and_vars = [(tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g, v)
                          for g, v in grads_and_vars]
        if self.clip_norm:
            clipped, _ = tf.clip_by_global_norm([g for g, _ in grads_and_vars], self.clip_norm)
            grads_and_vars = list(zip(clipped, [v for _, v in grads_and_vars]))
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._distributed_tf_update_step, self._distribution_strategy, grads_and_vars,
            learning_rate)


def _decays(variable) -> bool:
    name = getattr(variable, "path", None) or variable.name
    return not any(part in name for part in NO_DECAY_NAMES)


def _lamb_math(gradient, variable, m, v, lr, step, beta_1, beta_2, epsilon,
               weight_decay_rate, decays, bias_correction):
    """The reference LAMB update of one variable -> (new m, new v, amount to subtract)."""
    m = beta_1 * m + (1.0 - beta_1) * gradient
    v = beta_2 * v + (1.0 - beta_2) * tf.square(gradient)
    m_hat, v_hat = m, v
    if bias_correction:
        m_hat = m / (1.0 - tf.pow(tf.cast(beta_1, m.dtype), step))
        v_hat = v / (1.0 - tf.pow(tf.cast(beta_2, v.dtype), step))
    update = m_hat / (tf.sqrt(v_hat) + epsilon)
    if decays:
        update = update + weight_decay_rate * variable
        w_norm = tf.norm(variable)
        u_norm = tf.norm(update)
        ratio = tf.where(w_norm > 0, tf.where(u_norm > 0, w_norm / u_norm, 1.0), 1.0)
        update = ratio * update
    return m, v, lr * update


_lamb_math_fused = tf.function(_lamb_math, jit_compile=True, autograph=False)


@keras.saving.register_keras_serializable(package="albert_keras")
class AlbertLamb(GlobalNormClipAfterAllReduce, keras.optimizers.Lamb):
    """keras.optimizers.Lamb with the reference ALBERT update.

    The reference LAMB adds weight decay to the update before the trust ratio
    (not decoupled after it), skips both decay and trust ratio for LayerNorm and
    bias variables, and has no bias correction of the moments. clip_norm clips the
    global gradient norm after the cross-replica sum. fusion (config.FUSIONS):
    "plain" computes each variable's update with TensorFlow ops, the others as one
    XLA pass per variable (same arithmetic; the update was ~6% of a CPU training
    step's op time as a dozen element-wise ops).
    """

    def __init__(self, learning_rate=0.00176, beta_1=0.9, beta_2=0.999, epsilon=1e-6,
                 weight_decay_rate=0.01, bias_correction=False, clip_norm=None,
                 fusion="plain", name="albert_lamb", **kwargs):
        kwargs.pop("weight_decay", None)  # decay is applied inside update_step
        fusion = kwargs.pop("kernels", fusion)  # the name in optimizers saved before
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, name=name, **kwargs)
        self.weight_decay_rate = weight_decay_rate
        self.bias_correction = bias_correction
        self.fusion = check_fusion(fusion, "AlbertLamb fusion")
        self._init_clipping(clip_norm)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        step = ops.cast(self.iterations + 1, dtype)
        hyper = dict(beta_1=float(self.beta_1), beta_2=float(self.beta_2),
                     epsilon=float(self.epsilon), weight_decay_rate=float(self.weight_decay_rate),
                     decays=_decays(variable), bias_correction=bool(self.bias_correction))
        math = _lamb_math if self.fusion == "plain" else _lamb_math_fused
        new_m, new_v, delta = math(gradient, *map(tf.convert_to_tensor, (variable, m, v)),
                                   lr, step, **hyper)
        self.assign(m, new_m)
        self.assign(v, new_v)
        self.assign_sub(variable, delta)

    def get_config(self):
        config = super().get_config()
        config.pop("weight_decay", None)
        config.update(weight_decay_rate=self.weight_decay_rate,
                      bias_correction=self.bias_correction, clip_norm=self.clip_norm,
                      fusion=self.fusion)
        return config


@keras.saving.register_keras_serializable(package="albert_keras")
class AlbertAdamW(GlobalNormClipAfterAllReduce, keras.optimizers.AdamW):
    """keras.optimizers.AdamW with clip_norm applied after the cross-replica sum and
    no weight decay for LayerNorm and bias variables."""

    def __init__(self, *args, clip_norm=None, name="albert_adamw", **kwargs):
        super().__init__(*args, name=name, **kwargs)
        self.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
        self._init_clipping(clip_norm)

    def get_config(self):
        config = super().get_config()
        config.update(clip_norm=self.clip_norm)
        return config


def create_optimizer(name="lamb", learning_rate=0.00176, total_steps=125000,
                     warmup_steps=3125, weight_decay=0.01, beta_1=0.9, beta_2=0.999,
                     epsilon=1e-6, clip_norm=1.0, fusion="plain"):
    """The optimizer of the reference recipe ("lamb") or AdamW ("adamw"), with the
    warmup + polynomial decay schedule and global-norm gradient clipping. fusion:
    the model's (config.FUSIONS), for LAMB's update."""
    schedule = WarmupPolynomialDecay(learning_rate, total_steps, warmup_steps)
    if name == "lamb":
        return AlbertLamb(learning_rate=schedule, beta_1=beta_1, beta_2=beta_2,
                          epsilon=epsilon, weight_decay_rate=weight_decay, clip_norm=clip_norm,
                          fusion=fusion)
    if name == "adamw":
        return AlbertAdamW(learning_rate=schedule, weight_decay=weight_decay, beta_1=beta_1,
                           beta_2=beta_2, epsilon=epsilon, clip_norm=clip_norm)
    raise ValueError(f"Unknown optimizer {name!r}: use 'lamb' or 'adamw'")

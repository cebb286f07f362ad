"""The one place where Keras 3.15's model.fit is fixed for tf.distribute strategies.

Upstream bug (keras-team/keras issue 20585): fit() under MultiWorkerMirroredStrategy
fails in keras/src/backend/tensorflow/trainer.py, in two places:
1. TensorFlowTrainer._maybe_symbolic_build reduces the first distributed batch with
   strategy.reduce("MEAN", ...), which collective all-reduce cannot do eagerly
   ("Attempt to convert a value (PerReplica ...) to a Tensor"). The batch is only
   needed for its shapes and dtypes, so the local replica's batch is used instead.
   Under every strategy that batch is taken from the training iterator and never
   trained on; for a model that is already built (ours are functional) nothing but
   the optimizer needs building, so no batch is taken at all.
2. reduce_per_replica, for multi-worker "mean", calls strategy.reduce("MEAN", v, axis=0)
   on scalar logs ("Invalid reduction dimension 0 for input with 0 dimensions").
   Scalars are averaged over replicas with axis=None.

apply() patches both, once per process. The training programs call it whenever they
build a strategy other than the default one.
"""

import tensorflow as tf
from keras.src import tree
from keras.src.backend.tensorflow import trainer as keras_tf_trainer

_original_reduce_per_replica = keras_tf_trainer.reduce_per_replica
_original_maybe_symbolic_build = keras_tf_trainer.TensorFlowTrainer._maybe_symbolic_build


def _reduce_per_replica(values, strategy, reduction):
    if (reduction in ("auto", "mean")
            and keras_tf_trainer._collective_all_reduce_multi_worker(strategy)):
        def reduce_one(value):
            if not keras_tf_trainer._is_per_replica_instance(value):
                return value
            rank = value.values[0].shape.rank
            return strategy.reduce("MEAN", value, axis=0 if rank else None)

        return tree.map_structure(reduce_one, values)
    return _original_reduce_per_replica(values, strategy, reduction)


def _needs_a_batch_to_build(model) -> bool:
    return (not all(layer.built for layer in model._flatten_layers())
            or (model._compile_metrics is not None and not model._compile_metrics.built)
            or (model._compile_loss is not None and not model._compile_loss.built))


def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    strategy = self._distribute_strategy
    if strategy is None or iterator is None:
        return _original_maybe_symbolic_build(self, iterator=iterator, data_batch=data_batch)
    if not _needs_a_batch_to_build(self):
        with strategy.scope():
            if self.optimizer is not None and not self.optimizer.built:
                self.optimizer.build(self.trainable_variables)
        return
    for _, _, it in iterator:
        batch = next(it)
        data_batch = tree.map_structure(
            lambda v: (strategy.experimental_local_results(v)[0]
                       if isinstance(v, tf.distribute.DistributedValues) else v),
            batch)
        break
    with strategy.scope():
        self._symbolic_build(data_batch=data_batch)


def apply():
    """Installs the fix (idempotent)."""
    keras_tf_trainer.reduce_per_replica = _reduce_per_replica
    keras_tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build


def is_applied() -> bool:
    return keras_tf_trainer.reduce_per_replica is _reduce_per_replica

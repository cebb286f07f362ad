"""AlbertQuestionAnswerer: the span head of the reference run_squad_v1.py and of
transformers' AlbertForQuestionAnswering. One Dense(2) over the sequence output gives
each position a start and an end logit; for SQuAD 2.0, "no answer" is the span at [CLS]
(position 0), as transformers trains it.

fit() takes batches of feature dicts: the backbone's inputs plus "start_positions" and
"end_positions", int32 [batch], the gold span's first and last piece in the window (0
and 0 for a window without the answer).

    loss = sum_b (CE(start_logits_b, start_b) + CE(end_logits_b, end_b)) / 2 / B

over the B windows of the global batch (all replicas; with gradient accumulation the
whole update). The softmax runs over every position, padding included, as in both
sources, so that converted models train and predict as they did there.
"""

import keras
import tensorflow as tf
from keras import ops

from albert_keras.models.backbone import TakesFeatureDicts, backbone_inputs, task_backbone
from albert_keras.models.gradient_accumulation import GradientAccumulation, sum_over_replicas
from albert_keras.tasks.question_answering.settings import model_settings

POSITION_NAMES = ("start_positions", "end_positions")


@keras.saving.register_keras_serializable(package="albert_keras")
class AlbertQuestionAnswerer(TakesFeatureDicts, GradientAccumulation, keras.Model):
    """Inputs: the backbone's "input_ids", "segment_ids", "input_mask".
    Outputs: {"start_logits", "end_logits"}, float32 [batch, seq].
    settings records how the model was fine-tuned and evaluated
    (tasks.question_answering.settings.AnsweringSettings, or its config: windows and
    answer rule, the null threshold chosen on the dev file among them), so that the
    exporter answers the way evaluation did (None: unknown). answer_settings: the flat
    dict that models saved before AnsweringSettings recorded."""

    def __init__(self, config=None, backbone=None, settings=None, answer_settings=None,
                 **kwargs):
        backbone = task_backbone(config, backbone, "AlbertQuestionAnswerer")
        dtype = kwargs.pop("dtype", None)
        inputs = backbone_inputs()
        sequence = backbone.sequence_output_at(inputs)
        head = keras.layers.Dense(
            2, kernel_initializer=keras.initializers.TruncatedNormal(
                stddev=backbone.config.initializer_range), dtype=dtype, name="qa_outputs")
        logits = ops.cast(head(sequence), "float32")
        outputs = {
            "start_logits": keras.layers.Activation("linear", dtype="float32",
                                                    name="start_logits")(logits[..., 0]),
            "end_logits": keras.layers.Activation("linear", dtype="float32",
                                                  name="end_logits")(logits[..., 1]),
        }
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        backbone.pooler.trainable = False
        self.backbone = backbone
        self.config = backbone.config
        self.qa_outputs = head
        self.settings = model_settings(settings, answer_settings)
        self.span_accuracy = keras.metrics.Mean(name="span_accuracy")

    def _positions(self, x):
        return [ops.reshape(ops.cast(value, "int32"), [-1])
                for value in self.label_features(x, POSITION_NAMES)]

    def loss_denominators(self, x, y, sample_weight):
        start, _ = self._positions(x)
        return {"windows": sum_over_replicas(ops.cast(ops.shape(start)[0], "float32"))}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return self._span_loss(x, y_pred, self.loss_denominators(x, y, sample_weight))

    def micro_batch_loss(self, x, y, y_pred, sample_weight, denominators):
        return self._span_loss(x, y_pred, denominators)

    def _span_loss(self, x, y_pred, denominators):
        start, end = self._positions(x)
        start_logits = ops.cast(y_pred["start_logits"], "float32")
        end_logits = ops.cast(y_pred["end_logits"], "float32")
        losses = (tf.nn.sparse_softmax_cross_entropy_with_logits(start, start_logits)
                  + tf.nn.sparse_softmax_cross_entropy_with_logits(end, end_logits)) / 2.0
        both = ops.logical_and(ops.equal(ops.argmax(start_logits, -1), start),
                               ops.equal(ops.argmax(end_logits, -1), end))
        self.span_accuracy.update_state(ops.cast(both, "float32"))
        return tf.reduce_sum(losses) / tf.maximum(denominators["windows"], 1.0)

    def get_config(self):
        return {"backbone": keras.saving.serialize_keras_object(self.backbone),
                "settings": self.settings.to_config() if self.settings else None,
                "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

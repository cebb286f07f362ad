"""AlbertSquad2Answerer: the SQuAD 2.0 head of the reference (google-research/albert
squad_utils.create_v2_model, taken from XLNet), with which the paper's SQuAD 2.0 results
were obtained.

Windows are laid out [CLS] question [SEP] context [SEP] pad. An answer may start and end
only at [CLS] (position 0, "no answer") and at the context pieces; every other position
(the reference's p_mask) gets logit -1e30 before each softmax.

- start: Dense(H -> 1) over the sequence output, masked, log-softmax;
- end, given a start s: concat(h_i, h_s) -> Dense(2H -> H, tanh) -> LayerNorm ->
  Dense(H -> 1), masked, log-softmax over i. Inference runs it for the start_n_top best
  starts and keeps the end_n_top best ends of each (a beam); training for the gold start;
- answerability: concat(sum_i p_start(i) h_i, h_[CLS]) -> Dense(2H -> H, tanh) ->
  dropout -> Dense(H -> 1, no bias) = cls_logits (logit of "no answer"). The gradient
  flows through p_start, as in the reference (no stop_gradient).

fit() takes batches of feature dicts: the backbone's inputs plus "start_positions" and
"end_positions" (int [batch], 0 and 0 for a window without the answer) and
"is_impossible" ([batch], 1 for a window without the answer).

    loss = sum_b [ (NLL(start_b) + NLL(end_b | gold start_b)) / 2
                   + 0.5 * sigmoid_CE(cls_logits_b, is_impossible_b) ] / B

over the B windows of the global batch (all replicas; with gradient accumulation the
whole update); for one batch it is the reference's mean-based loss.
"""

import keras
import tensorflow as tf
from keras import ops

from albert_keras.models.backbone import (INPUT_NAMES, TakesFeatureDicts, backbone_inputs,
                                          task_backbone)
from albert_keras.models.gradient_accumulation import GradientAccumulation, sum_over_replicas
from albert_keras.tasks.question_answering.settings import model_settings

LABEL_NAMES = ("start_positions", "end_positions", "is_impossible")
# The reference's additive mask: exp(-1e30 - max) is 0 in float32.
MASKED_LOGIT = -1e30


def p_mask(segment_ids, input_mask):
    """bool [batch, seq], True where an answer cannot start or end (the reference's
    p_mask): the question, both [SEP] and the padding; False at [CLS] (position 0) and
    at the context pieces (segment 1, real, before the last real position, the final
    [SEP])."""
    positions = ops.cumsum(ops.ones_like(input_mask), axis=1) - 1
    last_real = ops.sum(input_mask, axis=1, keepdims=True) - 1
    context = ops.logical_and(
        ops.logical_and(ops.equal(segment_ids, 1), ops.equal(input_mask, 1)),
        ops.not_equal(positions, last_real))
    return ops.logical_not(ops.logical_or(context, ops.equal(positions, 0)))


def _masked_log_softmax(logits, mask):
    """float32 log-softmax over the last axis with `mask` (True: excluded) at -1e30."""
    return tf.nn.log_softmax(tf.where(mask, MASKED_LOGIT, tf.cast(logits, tf.float32)))


@keras.saving.register_keras_serializable(package="albert_keras")
class Squad2Head(keras.layers.Layer):
    """The three parts of the reference head; the sub-layers are named after the
    reference's variable scopes (start_logits/dense, end_logits/dense_0, ...).

    call(sequence_output [batch, seq, H], segment_ids, input_mask, start_positions=None)
    -> float32 "start_log_probs" [batch, seq], "start_top_log_probs" [batch, n],
    int32 "start_top_index" [batch, n], "end_top_log_probs" and int32 "end_top_index"
    [batch, n, m] (n = start_n_top, m = end_n_top), "cls_logits" [batch]; with
    start_positions (int [batch]) also "end_log_probs" [batch, seq] for those starts.
    """

    def __init__(self, hidden_size, initializer_range=0.02, dropout=0.1, start_n_top=5,
                 end_n_top=5, layer_norm_eps=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.initializer_range = initializer_range
        self.dropout_rate = dropout
        self.start_n_top = start_n_top
        self.end_n_top = end_n_top
        self.layer_norm_eps = layer_norm_eps

        def dense(units, name, **options):
            return keras.layers.Dense(
                units, kernel_initializer=keras.initializers.TruncatedNormal(
                    stddev=initializer_range), dtype=self.dtype_policy, name=name, **options)

        self.start_dense = dense(1, "start_logits_dense")
        self.end_dense_0 = dense(hidden_size, "end_logits_dense_0", activation="tanh")
        self.end_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=self.dtype_policy, name="end_logits_layer_norm")
        self.end_dense_1 = dense(1, "end_logits_dense_1")
        self.answer_dense_0 = dense(hidden_size, "answer_class_dense_0", activation="tanh")
        self.answer_dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy,
                                                   name="answer_class_dropout")
        self.answer_dense_1 = dense(1, "answer_class_dense_1", use_bias=False)

    def build(self, sequence_output_shape, segment_ids_shape=None, input_mask_shape=None,
              start_positions_shape=None):
        hidden = self.hidden_size
        self.start_dense.build((None, None, hidden))
        self.end_dense_0.build((None, None, 2 * hidden))
        self.end_layer_norm.build((None, None, hidden))
        self.end_dense_1.build((None, None, hidden))
        self.answer_dense_0.build((None, 2 * hidden))
        self.answer_dense_1.build((None, hidden))
        self.built = True

    def call(self, sequence_output, segment_ids, input_mask, start_positions=None,
             training=None):
        mask = p_mask(segment_ids, input_mask)
        start_logits = ops.squeeze(self.start_dense(sequence_output), -1)
        start_log_probs = _masked_log_softmax(start_logits, mask)
        # Windows shorter than the beam (a served batch of tiny texts) keep what they have.
        width = tf.shape(start_log_probs)[1]
        start_top_log_probs, start_top_index = tf.math.top_k(
            start_log_probs, tf.minimum(self.start_n_top, width))
        end_log_probs = self.end_log_probs(
            sequence_output, tf.gather(sequence_output, start_top_index, batch_dims=1), mask)
        end_top_log_probs, end_top_index = tf.math.top_k(
            end_log_probs, tf.minimum(self.end_n_top, width))
        outputs = {
            "start_log_probs": start_log_probs,
            "start_top_log_probs": start_top_log_probs,
            "start_top_index": tf.cast(start_top_index, tf.int32),
            "end_top_log_probs": end_top_log_probs,
            "end_top_index": tf.cast(end_top_index, tf.int32),
            "cls_logits": self.cls_logits(sequence_output, start_log_probs, training),
        }
        if start_positions is not None:
            starts = tf.reshape(tf.cast(start_positions, tf.int32), [-1, 1])
            outputs["end_log_probs"] = self.end_log_probs(
                sequence_output, tf.gather(sequence_output, starts, batch_dims=1), mask)[:, 0]
        return outputs

    def end_log_probs(self, sequence_output, start_features, mask):
        """float32 [batch, k, seq]: log p(end | start) for k starts whose hidden states
        are start_features [batch, k, H]; mask: p_mask."""
        shape = tf.concat([tf.shape(start_features)[:2], tf.shape(sequence_output)[1:]], 0)
        hidden = tf.broadcast_to(sequence_output[:, None], shape)
        starts = tf.broadcast_to(start_features[:, :, None], shape)
        x = self.end_dense_0(tf.concat([hidden, starts], -1))
        logits = ops.squeeze(self.end_dense_1(self.end_layer_norm(x)), -1)
        return _masked_log_softmax(logits, mask[:, None])

    def cls_logits(self, sequence_output, start_log_probs, training=None):
        """float32 [batch]: the logit that the window holds no answer."""
        start_feature = tf.einsum("bsh,bs->bh", tf.cast(sequence_output, tf.float32),
                                  tf.exp(start_log_probs))
        x = tf.concat([tf.cast(start_feature, sequence_output.dtype), sequence_output[:, 0]], -1)
        x = self.answer_dropout(self.answer_dense_0(x), training=training)
        return tf.cast(ops.squeeze(self.answer_dense_1(x), -1), tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, initializer_range=self.initializer_range,
                      dropout=self.dropout_rate, start_n_top=self.start_n_top,
                      end_n_top=self.end_n_top, layer_norm_eps=self.layer_norm_eps)
        return config


def _forward(backbone, head, inputs, start_positions=None):
    sequence = backbone.sequence_output_at(inputs)
    return head(sequence, inputs["segment_ids"], inputs["input_mask"],
                start_positions=start_positions)


@keras.saving.register_keras_serializable(package="albert_keras")
class AlbertSquad2Answerer(TakesFeatureDicts, GradientAccumulation, keras.Model):
    """Inputs: the backbone's "input_ids", "segment_ids", "input_mask".
    Outputs (Squad2Head): "start_log_probs", "start_top_log_probs", "start_top_index",
    "end_top_log_probs", "end_top_index", "cls_logits"; and "end_log_probs" when the
    features carry "start_positions". start_n_top, end_n_top: the beam (5 and 5 in the
    reference); dropout: before the answerability layer's output (0.1 in the reference).
    settings (answer_settings in models saved before): as AlbertQuestionAnswerer's,
    how the model was fine-tuned and evaluated, for the exporter."""

    def __init__(self, config=None, backbone=None, start_n_top=5, end_n_top=5, dropout=0.1,
                 settings=None, answer_settings=None, **kwargs):
        backbone = task_backbone(config, backbone, "AlbertSquad2Answerer")
        dtype = kwargs.pop("dtype", None)
        # layer_norm_eps 1e-12: the reference's contrib layer_norm has it fixed.
        head = Squad2Head(backbone.config.hidden_size, backbone.config.initializer_range,
                          dropout=dropout, start_n_top=start_n_top, end_n_top=end_n_top,
                          dtype=dtype, name="squad2_head")
        inputs = backbone_inputs()
        super().__init__(inputs=inputs, outputs=_forward(backbone, head, inputs), **kwargs)
        backbone.pooler.trainable = False  # no output reads the pooler
        self.backbone = backbone
        self.config = backbone.config
        self.head = head
        self.start_n_top = start_n_top
        self.end_n_top = end_n_top
        self.dropout_rate = dropout
        self.settings = model_settings(settings, answer_settings)
        self.span_accuracy = keras.metrics.Mean(name="span_accuracy")
        self.no_answer_accuracy = keras.metrics.Mean(name="no_answer_accuracy")

    def call(self, inputs, training=None):
        # The graph's forward pass, plus the end log-probs at the gold start when the
        # batch carries it: the loss needs them from the same pass (same dropout), and
        # the functional graph, whose inputs are fixed, cannot take the gold start.
        features = {name: ops.cast(inputs[name], "int32") for name in INPUT_NAMES}
        return _forward(self.backbone, self.head, features, inputs.get("start_positions"))

    def _labels(self, x):
        start, end, impossible = self.label_features(x, LABEL_NAMES)
        return (ops.reshape(ops.cast(start, "int32"), [-1]),
                ops.reshape(ops.cast(end, "int32"), [-1]),
                ops.reshape(ops.cast(impossible, "float32"), [-1]))

    def loss_denominators(self, x, y, sample_weight):
        start, _, _ = self._labels(x)
        return {"windows": sum_over_replicas(ops.cast(ops.shape(start)[0], "float32"))}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return self._squad2_loss(x, y_pred, self.loss_denominators(x, y, sample_weight))

    def micro_batch_loss(self, x, y, y_pred, sample_weight, denominators):
        return self._squad2_loss(x, y_pred, denominators)

    def _squad2_loss(self, x, y_pred, denominators):
        start, end, impossible = self._labels(x)
        start_log_probs, end_log_probs = y_pred["start_log_probs"], y_pred["end_log_probs"]
        start_nll = -tf.gather(start_log_probs, start, batch_dims=1)
        end_nll = -tf.gather(end_log_probs, end, batch_dims=1)
        cls_logits = y_pred["cls_logits"]
        no_answer_loss = tf.nn.sigmoid_cross_entropy_with_logits(impossible, cls_logits)
        losses = (start_nll + end_nll) / 2.0 + 0.5 * no_answer_loss
        both = ops.logical_and(ops.equal(ops.argmax(start_log_probs, -1), start),
                               ops.equal(ops.argmax(end_log_probs, -1), end))
        self.span_accuracy.update_state(ops.cast(both, "float32"))
        self.no_answer_accuracy.update_state(
            ops.cast(ops.equal(ops.cast(cls_logits > 0, "float32"), impossible), "float32"))
        return tf.reduce_sum(losses) / tf.maximum(denominators["windows"], 1.0)

    def get_config(self):
        return {"backbone": keras.saving.serialize_keras_object(self.backbone),
                "start_n_top": self.start_n_top, "end_n_top": self.end_n_top,
                "dropout": self.dropout_rate,
                "settings": self.settings.to_config() if self.settings else None,
                "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

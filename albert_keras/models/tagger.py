"""AlbertTagger: sequence output -> dropout -> Dense(num_tags) at every position, for
part-of-speech, named-entity and other word tagging (transformers'
AlbertForTokenClassification).

fit() takes batches of feature dicts: the backbone's inputs plus "label_ids" int32
[batch, seq] (the tag id at each word's first piece) and "label_weights" float32
[batch, seq] (1 there, 0 at every other position); albert_keras.tasks.tagging.data makes them.

    loss = sum_i w_i * CE(logits_i, label_i) / sum_i w_i

over the positions i of the global batch (all replicas; with gradient accumulation the
whole update): each labeled word counts once, however the words fall into sequences.
"""

import keras
import tensorflow as tf
from keras import ops

from albert_keras.models.backbone import TakesFeatureDicts, backbone_inputs, task_backbone
from albert_keras.models.gradient_accumulation import GradientAccumulation, sum_over_replicas
from albert_keras.tasks.tagging.settings import TaggingSettings

LABEL_NAMES = ("label_ids", "label_weights")


@keras.saving.register_keras_serializable(package="albert_keras")
class AlbertTagger(TakesFeatureDicts, GradientAccumulation, keras.Model):
    """Inputs: the backbone's "input_ids", "segment_ids", "input_mask".
    Output: float32 logits [batch, seq, num_tags]. tag_names: the tags, in id order.
    settings: the windows the model was fine-tuned on (tasks.tagging.settings
    .TaggingSettings, or its config dict), so that the exporter tags the way evaluation
    did (None: unknown). window_length and window_stride: the same, as models saved
    before TaggingSettings recorded them."""

    def __init__(self, config=None, backbone=None, tag_names=None, dropout=0.1,
                 settings=None, window_length=None, window_stride=None, **kwargs):
        if settings is None and window_length:
            settings = TaggingSettings(window_length, window_stride)
        if isinstance(settings, dict):
            settings = TaggingSettings.from_config(settings)
        if not tag_names or len(set(tag_names)) != len(tag_names):
            raise ValueError(f"tag_names must list distinct tags, got {tag_names!r}")
        backbone = task_backbone(config, backbone, "AlbertTagger")
        dtype = kwargs.pop("dtype", None)
        inputs = backbone_inputs()
        sequence = backbone.sequence_output_at(inputs)
        dropout_layer = keras.layers.Dropout(dropout, dtype=dtype, name="tagger_dropout")
        head = keras.layers.Dense(
            len(tag_names), kernel_initializer=keras.initializers.TruncatedNormal(
                stddev=backbone.config.initializer_range), dtype=dtype, name="tagger")
        logits = keras.layers.Activation("linear", dtype="float32", name="logits")(
            head(dropout_layer(sequence)))
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        # The pooler stays in the backbone (saved with it) but no tag reads it.
        backbone.pooler.trainable = False
        self.backbone = backbone
        self.config = backbone.config
        self.tag_names = [str(name) for name in tag_names]
        self.dropout_rate = dropout
        self.settings = settings
        self.classifier = head
        self.tagger_dropout = dropout_layer
        self.tag_accuracy = keras.metrics.Mean(name="tag_accuracy")

    def _labels(self, x):
        ids, weights = self.label_features(x, LABEL_NAMES)
        return ops.cast(ids, "int32"), ops.cast(weights, "float32")

    def loss_denominators(self, x, y, sample_weight):
        _, weights = self._labels(x)
        return {"labels": sum_over_replicas(tf.reduce_sum(weights))}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return self._tagging_loss(x, y_pred, self.loss_denominators(x, y, sample_weight))

    def micro_batch_loss(self, x, y, y_pred, sample_weight, denominators):
        return self._tagging_loss(x, y_pred, denominators)

    def _tagging_loss(self, x, y_pred, denominators):
        labels, weights = self._labels(x)
        logits = ops.cast(y_pred, "float32")
        # Unlabeled positions hold label 0, a valid id, and weigh 0.
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        correct = ops.cast(ops.equal(ops.argmax(logits, -1), labels), "float32")
        self.tag_accuracy.update_state(correct, sample_weight=weights)
        return tf.reduce_sum(losses * weights) / tf.maximum(denominators["labels"], 1.0)

    def get_config(self):
        return {"backbone": keras.saving.serialize_keras_object(self.backbone),
                "tag_names": self.tag_names, "dropout": self.dropout_rate,
                "settings": self.settings.to_config() if self.settings else None,
                "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

"""AlbertClassifier: pooled output -> dropout -> Dense(num_labels), for GLUE-style tasks."""

import keras
from keras import ops

from albert_keras.models.backbone import TakesFeatureDicts, backbone_inputs, task_backbone
from albert_keras.models.gradient_accumulation import GradientAccumulation

TASK_TYPES = ("classification", "regression")


@keras.saving.register_keras_serializable(package="albert_keras")
class AlbertClassifier(TakesFeatureDicts, GradientAccumulation, keras.Model):
    """Sentence and sentence-pair classification or regression.

    Inputs: the backbone's "input_ids", "segment_ids", "input_mask".
    Output: float32 logits [batch, num_labels] for classification, or scores
    [batch, 1] for regression (num_labels is then 1). The loss is the compiled one
    (a mean over the batch); compile(gradient_accumulation_steps=K) trains on K
    micro-batches per update, exactly (models/gradient_accumulation.py).
    """

    def __init__(self, config=None, backbone=None, num_labels=2, task_type="classification",
                 dropout=0.1, label_names=None, **kwargs):
        if task_type not in TASK_TYPES:
            raise ValueError(f"task_type must be one of {TASK_TYPES}, got {task_type!r}")
        if task_type == "regression":
            num_labels = 1
        if not isinstance(num_labels, int) or num_labels < 1:
            raise ValueError(f"num_labels must be a positive integer, got {num_labels!r}")
        backbone = task_backbone(config, backbone, "AlbertClassifier")
        dtype = kwargs.pop("dtype", None)
        inputs = backbone_inputs()
        # The pooler reads row 0 ([CLS]) only: the last block computes just that row.
        first_row = ops.zeros_like(inputs["input_ids"][:, :1])
        pooled = backbone.pooler(backbone.sequence_output_at(inputs, first_row))
        dropout_layer = keras.layers.Dropout(dropout, dtype=dtype, name="classifier_dropout")
        head = keras.layers.Dense(
            num_labels, kernel_initializer=keras.initializers.TruncatedNormal(
                stddev=backbone.config.initializer_range), dtype=dtype, name="classifier")
        logits = keras.layers.Activation("linear", dtype="float32", name="logits")(
            head(dropout_layer(pooled)))
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone
        self.config = backbone.config
        self.num_labels = num_labels
        self.task_type = task_type
        self.dropout_rate = dropout
        self.label_names = list(label_names) if label_names is not None else None
        self.classifier = head
        self.classifier_dropout = dropout_layer

    def get_config(self):
        return {"backbone": keras.saving.serialize_keras_object(self.backbone),
                "num_labels": self.num_labels, "task_type": self.task_type,
                "dropout": self.dropout_rate, "label_names": self.label_names,
                "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

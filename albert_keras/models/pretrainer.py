"""AlbertPretrainer: backbone + MLM and SOP heads, trainable with compile() + fit().

fit() takes a dataset of feature dicts in the reference record layout: the inputs
plus "masked_lm_ids", "masked_lm_weights" and "next_sentence_labels" (the SOP label).
No separate y is needed.
"""

import keras
import tensorflow as tf
from keras import ops

from albert_keras.layers import MaskedLMHead, SentenceOrderHead
from albert_keras.models.backbone import (INPUT_NAMES, TakesFeatureDicts, backbone_inputs,
                                          task_backbone)
from albert_keras.models.gradient_accumulation import GradientAccumulation
from albert_keras.models.pretraining_loss import loss_denominators, pretraining_losses

LABEL_NAMES = ("masked_lm_ids", "masked_lm_weights", "next_sentence_labels")


@keras.saving.register_keras_serializable(package="albert_keras")
class AlbertPretrainer(TakesFeatureDicts, GradientAccumulation, keras.Model):
    """Inputs: the backbone's three inputs and "masked_lm_positions" int32 [batch, P].
    Outputs: "mlm_logits" float32 [batch, P, V] and "sop_logits" float32 [batch, 2].

    Loss = masked-LM cross entropy (mean over real predictions, weighted by
    masked_lm_weights) + sentence-order cross entropy (mean over the batch); see
    models/pretraining_loss.py. compile(gradient_accumulation_steps=K) trains on K
    micro-batches per update, exactly (models/gradient_accumulation.py).
    """

    def __init__(self, config=None, backbone=None, **kwargs):
        backbone = task_backbone(config, backbone, "AlbertPretrainer", dtype=kwargs.get("dtype"))
        config = backbone.config
        inputs = backbone_inputs()
        inputs["masked_lm_positions"] = keras.Input(
            shape=(None,), dtype="int32", name="masked_lm_positions")
        dtype = kwargs.pop("dtype", None)
        mlm_head = MaskedLMHead(
            backbone.embedding, activation=config.hidden_act,
            layer_norm_eps=config.layer_norm_eps, initializer_range=config.initializer_range,
            dtype=dtype, name="mlm_head")
        sop_head = SentenceOrderHead(
            dropout=config.hidden_dropout_prob, initializer_range=config.initializer_range,
            dtype=dtype, name="sop_head")

        # The heads read row 0 (the pooler's [CLS]) and the masked positions: the
        # backbone's last block computes only those rows.
        positions = inputs["masked_lm_positions"]
        head_rows = ops.concatenate([ops.zeros_like(positions[:, :1]), positions], axis=1)
        states = backbone.sequence_output_at(inputs, head_rows)
        outputs = {
            "mlm_logits": mlm_head(states[:, 1:]),
            "sop_logits": sop_head(backbone.pooler(states)),
        }
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        self.backbone = backbone
        self.config = config
        self.mlm_head = mlm_head
        self.sop_head = sop_head
        self.masked_lm_loss = keras.metrics.Mean(name="masked_lm_loss")
        self.masked_lm_accuracy = keras.metrics.Mean(name="masked_lm_accuracy")
        self.sentence_order_loss = keras.metrics.Mean(name="sentence_order_loss")
        self.sentence_order_accuracy = keras.metrics.Mean(name="sentence_order_accuracy")

    @property
    def input_names(self):
        return list(INPUT_NAMES) + ["masked_lm_positions"]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return self._pretraining_loss(x, y_pred, denominators=None)

    def loss_denominators(self, x, y, sample_weight):
        self._check_labels(x)
        return loss_denominators(x["masked_lm_weights"])

    def micro_batch_loss(self, x, y, y_pred, sample_weight, denominators):
        return self._pretraining_loss(x, y_pred, denominators,
                                      share=1.0 / self.gradient_accumulation_steps)

    def _check_labels(self, x):
        self.label_features(x, LABEL_NAMES)

    def _pretraining_loss(self, x, y_pred, denominators, share=1.0):
        """MLM + SOP loss (divided by denominators, by default this batch's), plus
        `share` of the regularization losses; updates the four metrics."""
        self._check_labels(x)
        mlm_logits = ops.cast(y_pred["mlm_logits"], "float32")
        sop_logits = ops.cast(y_pred["sop_logits"], "float32")
        mlm_ids = ops.cast(x["masked_lm_ids"], "int32")
        mlm_weights = ops.cast(x["masked_lm_weights"], "float32")
        sop_labels = ops.cast(ops.reshape(x["next_sentence_labels"], (-1,)), "int32")

        mlm_loss, sop_loss, mlm_losses, sop_losses = pretraining_losses(
            mlm_logits, mlm_ids, mlm_weights, sop_logits, sop_labels, self.config.fusion,
            denominators)

        mlm_correct = ops.cast(ops.equal(ops.argmax(mlm_logits, -1), mlm_ids), "float32")
        sop_correct = ops.cast(ops.equal(ops.argmax(sop_logits, -1), sop_labels), "float32")
        self.masked_lm_loss.update_state(mlm_losses, sample_weight=mlm_weights)
        self.masked_lm_accuracy.update_state(mlm_correct, sample_weight=mlm_weights)
        self.sentence_order_loss.update_state(sop_losses)
        self.sentence_order_accuracy.update_state(sop_correct)

        total = mlm_loss + sop_loss
        if self.losses:  # each replica adds its share: the replicas' gradients are summed
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            for loss in self.losses:
                total = total + share / replicas * ops.cast(ops.sum(loss), "float32")
        return total

    def get_config(self):
        return {"backbone": keras.saving.serialize_keras_object(self.backbone),
                "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

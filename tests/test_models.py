"""AlbertBackbone and AlbertPretrainer: shapes, padding, loss, fit, saving, precision."""

import numpy as np
import pytest
import tensorflow as tf

import keras

from albert_keras import AlbertBackbone, AlbertPretrainer
from albert_keras.models.backbone import INPUT_NAMES
from model_harness import (assert_keras_round_trip, backbone_batch, pretraining_batch,
                           small_config)


def test_backbone_outputs_and_hidden_states():
    config = small_config()
    model = AlbertBackbone(config, output_hidden_states=True)
    out = model(backbone_batch(config))
    assert out["sequence_output"].shape == (3, 12, 32)
    assert out["pooled_output"].shape == (3, 32)
    assert len(out["hidden_states"]) == config.num_hidden_layers + 1
    np.testing.assert_allclose(out["hidden_states"][-1], out["sequence_output"])


def test_padding_content_does_not_change_real_positions():
    config = small_config()
    model = AlbertBackbone(config)
    batch = backbone_batch(config)
    changed = {k: v.copy() for k, v in batch.items()}
    changed["input_ids"][batch["input_mask"] == 0] = 77
    a = model(batch)["sequence_output"].numpy()
    b = model(changed)["sequence_output"].numpy()
    real = batch["input_mask"] == 1
    np.testing.assert_allclose(a[real], b[real], atol=1e-5)


@pytest.mark.parametrize("sharing", ["all", "none"])
def test_backbone_round_trip(tmp_path, sharing):
    config = small_config(sharing=sharing)
    assert_keras_round_trip(AlbertBackbone(config), backbone_batch(config), tmp_path, atol=1e-5)


def test_pretrainer_round_trip_keeps_tied_weights(tmp_path):
    config = small_config()
    model = AlbertPretrainer(config)
    batch = pretraining_batch(config)
    restored = assert_keras_round_trip(model, batch, tmp_path, atol=1e-5)
    assert restored.mlm_head.embedding is restored.backbone.embedding


def test_pretrainer_loss_is_weighted_mlm_mean_plus_sop_mean():
    config = small_config()
    model = AlbertPretrainer(config)
    batch = pretraining_batch(config)
    out = model(batch)
    loss = float(model.compute_loss(x=batch, y_pred=out))

    logits = out["mlm_logits"].numpy().astype("float64")
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = np.take_along_axis(logp, batch["masked_lm_ids"][..., None], -1)[..., 0]
    w = batch["masked_lm_weights"]
    mlm = -(picked * w).sum() / w.sum()
    sop_logits = out["sop_logits"].numpy().astype("float64")
    sop_logp = sop_logits - np.log(np.exp(sop_logits).sum(-1, keepdims=True))
    sop = -np.take_along_axis(sop_logp, batch["next_sentence_labels"], -1).mean()
    assert loss == pytest.approx(mlm + sop, rel=1e-5)
    assert float(model.masked_lm_loss.result()) == pytest.approx(mlm, rel=1e-5)


def test_pretrainer_fit_on_feature_dicts_lowers_loss():
    config = small_config()
    model = AlbertPretrainer(config)
    batch = pretraining_batch(config, batch=8)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=30,
                        epochs=2, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.6 * losses[0]
    for name in ("masked_lm_accuracy", "masked_lm_loss", "sentence_order_accuracy",
                 "sentence_order_loss"):
        assert name in history.history
    evaluation = model.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0, return_dict=True)
    assert evaluation["masked_lm_accuracy"] > 0.5


def test_pretrainer_without_labels_is_a_clear_error():
    config = small_config()
    model = AlbertPretrainer(config)
    batch = pretraining_batch(config)
    del batch["masked_lm_weights"]
    with pytest.raises(ValueError, match="masked_lm_weights"):
        model.compute_loss(x=batch, y_pred=model(batch))


def test_pretrainer_needs_config_or_backbone():
    with pytest.raises(ValueError, match="config or a backbone"):
        AlbertPretrainer()


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_pretrainer_mixed_precision_close_to_float32(policy):
    config = small_config()
    batch = pretraining_batch(config)
    reference = AlbertPretrainer(config)
    expected = reference(batch)
    keras.config.set_dtype_policy(policy)
    model = AlbertPretrainer(config)
    model.set_weights(reference.get_weights())
    out = model(batch)
    assert out["mlm_logits"].dtype == "float32" and out["sop_logits"].dtype == "float32"
    tolerance = 0.15 if policy == "mixed_bfloat16" else 0.02
    np.testing.assert_allclose(out["mlm_logits"], expected["mlm_logits"], atol=tolerance)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=3,
                        verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_classifier_learns_and_round_trips(tmp_path):
    from albert_keras import AlbertClassifier
    config = small_config()
    batch = backbone_batch(config, batch=8, padded=False)
    labels = (batch["input_ids"][:, 1] > 50).astype("int32")
    model = AlbertClassifier(config, num_labels=2, label_names=["low", "high"], dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(tf.data.Dataset.from_tensors((batch, labels)).repeat(), steps_per_epoch=30,
              verbose=0)
    assert model.evaluate(batch, labels, verbose=0, return_dict=True)["accuracy"] == 1.0
    restored = assert_keras_round_trip(model, batch, tmp_path, atol=1e-5)
    assert restored.label_names == ["low", "high"]
    regression = AlbertClassifier(config, task_type="regression")
    assert regression(batch).shape == (8, 1)


def _outputs_loss_grads(model, run, batch):
    with tf.GradientTape() as tape:
        out = run(batch)
        if isinstance(out, dict):
            loss = model.compute_loss(x=batch, y_pred=out)
        else:  # classifier logits: any loss that weighs every output differently
            loss = tf.reduce_sum(out * np.arange(1, out.shape[-1] + 1, dtype="float32"))
    grads = [tf.cast(tf.convert_to_tensor(g), "float32")
             for g in tape.gradient(loss, model.trainable_weights)]
    return tf.nest.flatten(out), float(loss), grads


def _assert_same_outputs_loss_grads(got, want, num_weights, atol):
    """Two _outputs_loss_grads results agree: outputs and loss within atol, every weight's
    gradient within 10 * atol."""
    np.testing.assert_allclose(got[1], want[1], rtol=atol, atol=atol)
    for a, b in zip(got[0], want[0]):
        np.testing.assert_allclose(np.asarray(tf.cast(a, "float32")),
                                   np.asarray(tf.cast(b, "float32")), atol=atol)
    assert len(got[2]) == len(want[2]) == num_weights
    for a, b in zip(got[2], want[2]):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=10 * atol)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_with_fusion_copies_a_model_that_computes_the_same(policy):
    """with_fusion (the exporter's --fusion) rebuilds a pretrainer or classifier with
    another kernel choice and the same weights: outputs, loss and gradients agree."""
    from albert_keras import AlbertClassifier
    from albert_keras.models import with_fusion
    keras.config.set_dtype_policy(policy)
    config = small_config(fusion="xla_cpu")
    batch = pretraining_batch(config)
    atol = 1e-5 if policy == "float32" else 2e-2
    for model in (AlbertPretrainer(config), AlbertClassifier(config, num_labels=3, dropout=0.0)):
        copy = with_fusion(model, "plain")
        assert copy.config.fusion == "plain" and model.config.fusion == "xla_cpu"
        assert copy.backbone.encoder.get_config()["fusion"] == "plain"
        assert with_fusion(model, "xla_cpu") is model
        _assert_same_outputs_loss_grads(
            _outputs_loss_grads(model, lambda b, m=model: m(b, training=True), batch),
            _outputs_loss_grads(copy, lambda b, m=copy: m(b, training=True), batch),
            len(model.trainable_weights), atol)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_models_with_the_last_block_at_the_heads_rows_equal_the_full_computation(policy):
    """AlbertPretrainer and AlbertClassifier build their graphs with the last block at
    the rows their heads read. Outputs, loss and every gradient equal those of the
    backbone's full sequence_output followed by the heads' gather / the pooler."""
    from albert_keras import AlbertClassifier
    keras.config.set_dtype_policy(policy)
    config = small_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                          fusion="xla_cpu")
    batch = pretraining_batch(config)
    atol = 1e-5 if policy == "float32" else 2e-2
    pretrainer = AlbertPretrainer(config)
    classifier = AlbertClassifier(config, num_labels=3, dropout=0.0)
    names = list(INPUT_NAMES)

    def pretrainer_in_full(b):
        encoded = pretrainer.backbone({n: b[n] for n in names}, training=True)
        return {"mlm_logits": pretrainer.mlm_head(encoded["sequence_output"],
                                                  b["masked_lm_positions"]),
                "sop_logits": pretrainer.sop_head(encoded["pooled_output"], training=True)}

    def classifier_in_full(b):
        pooled = classifier.backbone({n: b[n] for n in names}, training=True)["pooled_output"]
        return tf.cast(classifier.classifier(pooled), "float32")

    for model, in_full in ((pretrainer, pretrainer_in_full), (classifier, classifier_in_full)):
        _assert_same_outputs_loss_grads(
            _outputs_loss_grads(model, lambda b, m=model: m(b, training=True), batch),
            _outputs_loss_grads(model, in_full, batch), len(model.trainable_weights), atol)


def test_with_fusion_keeps_the_dtype_policies_the_model_was_built_with():
    from albert_keras import AlbertClassifier
    from albert_keras.models import with_fusion
    config = small_config(fusion="xla_cpu")
    for model in (AlbertPretrainer(config, dtype="mixed_bfloat16"),
                  AlbertClassifier(backbone=AlbertBackbone(config, dtype="mixed_bfloat16"),
                                   num_labels=2, dtype="mixed_bfloat16")):
        assert keras.config.dtype_policy().name == "float32"  # the global policy
        copy = with_fusion(model, "plain")
        assert copy.backbone.encoder.compute_dtype == "bfloat16"
        head = copy.mlm_head if hasattr(copy, "mlm_head") else copy.classifier
        assert head.compute_dtype == "bfloat16"


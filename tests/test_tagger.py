"""AlbertTagger: the loss against its formula, gradient accumulation against one batch,
mixed precision, saving, and AlbertForTokenClassification / AlbertForSequenceClassification
read from transformers with logits within 1e-4."""

import numpy as np
import pytest
import tensorflow as tf

import keras

from albert_keras import AlbertClassifier, AlbertTagger
from albert_keras.models import with_fusion
from albert_keras.tasks.tagging.settings import TaggingSettings
from model_harness import (assert_accumulation_matches_one_batch, assert_keras_round_trip,
                           backbone_batch, small_config)

TAGS = ["O", "B-PER", "I-PER", "B-LOC"]


def tagging_batch(config, batch=4, seq=12, seed=0):
    rng = np.random.default_rng(seed)
    features = backbone_batch(config, batch=batch, seq=seq, seed=seed)
    weights = (rng.random((batch, seq)) < 0.5).astype("float32") * features["input_mask"]
    weights[:, 0] = 0.0  # [CLS]
    weights[0, :] = 0.0  # a sequence with no labeled word
    weights[1, 1] = 1.0
    features["label_weights"] = weights
    features["label_ids"] = (rng.integers(0, len(TAGS), (batch, seq)) * (weights > 0)).astype(
        "int32")
    return features


def test_loss_is_the_mean_over_labeled_words():
    config = small_config()
    model = AlbertTagger(config, tag_names=TAGS, dropout=0.0)
    batch = tagging_batch(config)
    logits = model(batch).numpy().astype(np.float64)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_probs, batch["label_ids"][..., None], -1)[..., 0]
    expected = -(picked * batch["label_weights"]).sum() / batch["label_weights"].sum()
    loss = model.compute_loss(x=batch, y_pred=model(batch))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert logits.shape == (4, 12, len(TAGS))


def test_accumulation_equals_one_batch():
    """Labeled words spread unevenly over the micro-batches (none in the first):
    K = 2 and 4 give the weights of K = 1."""
    config = small_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    batch = tagging_batch(config, batch=8, seed=3)
    assert_accumulation_matches_one_batch(
        lambda: AlbertTagger(config, tag_names=TAGS, dropout=0.0), batch)


def test_learns_round_trips_and_keeps_its_windows(tmp_path):
    config = small_config()
    batch = tagging_batch(config, batch=8, seed=1)
    batch["label_weights"] = batch["input_mask"].astype("float32")
    batch["label_ids"] = (batch["input_ids"] % 2).astype("int32")  # tag = parity of the id
    model = AlbertTagger(config, tag_names=["even", "odd"], dropout=0.0, window_length=12,
                         window_stride=5)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=60, verbose=0)
    assert model.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0,
                          return_dict=True)["tag_accuracy"] == 1.0
    assert not model.backbone.pooler.trainable  # no gradient reaches it
    restored = assert_keras_round_trip(model, batch, tmp_path, atol=1e-5)
    assert restored.tag_names == ["even", "odd"]
    assert restored.settings == TaggingSettings(window_length=12, window_stride=5)
    assert restored.get_config()["settings"] == {"window_length": 12, "window_stride": 5}
    copy = with_fusion(restored, "xla_cpu")
    np.testing.assert_allclose(copy(batch), restored(batch), atol=1e-4)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision(policy):
    config = small_config()
    batch = tagging_batch(config)
    reference = AlbertTagger(config, tag_names=TAGS)
    expected = reference(batch)
    keras.config.set_dtype_policy(policy)
    model = AlbertTagger(config, tag_names=TAGS)
    model.set_weights(reference.get_weights())
    out = model(batch)
    assert out.dtype == "float32"
    np.testing.assert_allclose(out, expected, atol=0.15 if policy == "mixed_bfloat16" else 0.02)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=3,
                        verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_bad_arguments():
    config = small_config()
    with pytest.raises(ValueError, match="distinct tags"):
        AlbertTagger(config, tag_names=["O", "O"])
    model = AlbertTagger(config, tag_names=TAGS)
    with pytest.raises(ValueError, match="label_weights"):
        model.compute_loss(x={"label_ids": 0}, y_pred=None)


# ---------------------------------------------------------------- from transformers
def test_token_classification_from_transformers(tmp_path):
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from albert_keras.convert import from_transformers
    from test_convert_transformers import hf_config, randomized, saved, torch_outputs

    config = hf_config(num_labels=len(TAGS), id2label=dict(enumerate(TAGS)),
                       label2id={t: i for i, t in enumerate(TAGS)})
    reference = randomized(transformers.AlbertForTokenClassification(config))
    model = from_transformers(saved(reference, tmp_path))
    assert isinstance(model, AlbertTagger) and model.tag_names == TAGS
    features = backbone_batch(model.config, batch=3, seq=12)
    expected = torch_outputs(reference, features).logits.numpy()
    ours = model(features).numpy()
    real = features["input_mask"] > 0  # transformers computes padding rows differently
    assert np.abs(ours - expected)[real].max() <= 1e-4
    assert np.std(expected[real]) > 0.1


@pytest.mark.parametrize("num_labels", [3, 1])
def test_sequence_classification_from_transformers(tmp_path, num_labels):
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from albert_keras.convert import from_transformers
    from test_convert_transformers import hf_config, randomized, saved, torch_outputs

    config = hf_config(num_labels=num_labels)
    reference = randomized(transformers.AlbertForSequenceClassification(config))
    model = from_transformers(saved(reference, tmp_path))
    assert isinstance(model, AlbertClassifier)
    assert model.task_type == ("regression" if num_labels == 1 else "classification")
    features = backbone_batch(model.config, batch=3, seq=12)
    expected = torch_outputs(reference, features).logits.numpy()
    np.testing.assert_allclose(model(features).numpy(), expected, atol=1e-4, rtol=0)

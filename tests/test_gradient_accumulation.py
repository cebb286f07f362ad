"""Gradient accumulation is exact: K micro-batches give the update of one batch of K x b
(float32, uneven padding and uneven masked-position counts across micro-batches,
clipping active), and the step counter, the loss and the metrics count updates.
Under MirroredStrategy: test_distributed.py."""

import numpy as np
import pytest
import tensorflow as tf

import keras

from albert_keras import AlbertClassifier, AlbertConfig, AlbertPretrainer
from albert_keras.optimization import create_optimizer

BATCH, SEQ, PRED, UPDATES = 8, 16, 4, 2
CONFIG = AlbertConfig(vocab_size=60, embedding_size=8, hidden_size=16, num_hidden_layers=2,
                      num_attention_heads=2, intermediate_size=24, max_position_embeddings=SEQ)


def pretraining_batches(seed=5):
    """UPDATES batches of BATCH rows. Row r keeps 6 + floor(1.25 r) tokens and has
    r // 2 + 1 real predictions: four micro-batches of 2 rows hold 2, 4, 6 and 8."""
    rng = np.random.default_rng(seed)
    lengths = 6 + (np.arange(BATCH) * 5) // 4
    mask = (np.arange(SEQ)[None, :] < lengths[:, None]).astype("int32")
    weights = (np.arange(PRED)[None, :] < (np.arange(BATCH) // 2 + 1)[:, None]).astype("float32")
    batches = []
    for _ in range(UPDATES):
        batches.append({
            "input_ids": (rng.integers(5, 60, (BATCH, SEQ)) * mask).astype("int32"),
            "segment_ids": ((np.arange(SEQ)[None] >= 4) * mask).astype("int32"),
            "input_mask": mask,
            "masked_lm_positions": np.stack([np.sort(rng.choice(np.arange(1, n - 1), PRED,
                                                                replace=False))
                                             for n in lengths]).astype("int32"),
            "masked_lm_ids": rng.integers(5, 60, (BATCH, PRED)).astype("int32"),
            "masked_lm_weights": weights,
            "next_sentence_labels": rng.integers(0, 2, (BATCH, 1)).astype("int32"),
        })
    return batches


def lamb(clip_norm=0.05):
    # A small clip norm: clipping acts on every update (checked below).
    return create_optimizer("lamb", learning_rate=1e-2, total_steps=10, warmup_steps=3,
                            clip_norm=clip_norm)


def train_pretrainer(initial, steps, batches):
    model = AlbertPretrainer(CONFIG)
    model.set_weights(initial)
    model.compile(optimizer=lamb(), gradient_accumulation_steps=steps)
    logs = [model.train_on_batch(batch, return_dict=True) for batch in batches]
    return model, logs


@pytest.fixture(scope="module")
def initial():
    keras.utils.set_random_seed(4)
    return AlbertPretrainer(CONFIG).get_weights()


def max_difference(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


@pytest.mark.parametrize("steps", [2, 4])
def test_pretrainer_micro_batches_equal_one_batch(initial, steps):
    batches = pretraining_batches()
    whole, whole_logs = train_pretrainer(initial, 1, batches)
    accumulated, logs = train_pretrainer(initial, steps, batches)
    assert max_difference(whole.get_weights(), initial) > 1e-2  # training moved the weights
    assert max_difference(whole.get_weights(), accumulated.get_weights()) < 2e-6
    assert int(accumulated.optimizer.iterations.numpy()) == UPDATES
    for name in ("loss", "masked_lm_loss", "masked_lm_accuracy", "sentence_order_loss"):
        np.testing.assert_allclose(logs[-1][name], whole_logs[-1][name], rtol=1e-5, atol=1e-6)


def test_the_batch_makes_a_per_micro_batch_mean_wrong(initial):
    """The same data averaged per micro-batch (each MLM loss over its own mask count, as
    averaging K separate steps would) gives another gradient: the test above can fail."""
    model = AlbertPretrainer(CONFIG)
    model.set_weights(initial)
    batch = pretraining_batches()[0]

    def gradient(parts):
        with tf.GradientTape() as tape:
            loss = 0.0
            for part in range(parts):
                rows = slice(part * BATCH // parts, (part + 1) * BATCH // parts)
                piece = {k: v[rows] for k, v in batch.items()}
                loss += model.compute_loss(x=piece, y_pred=model(piece, training=True)) / parts
        gradients = tape.gradient(loss, model.trainable_weights)
        return [tf.convert_to_tensor(g).numpy() for g in gradients if g is not None]

    whole, averaged = gradient(1), gradient(4)
    norm = np.sqrt(sum(float((g ** 2).sum()) for g in whole))
    assert norm > 0.05 * 10  # clip_norm 0.05 clips these updates
    difference = np.sqrt(sum(float(((a - b) ** 2).sum()) for a, b in zip(whole, averaged)))
    assert difference > 0.05 * norm


def test_classifier_micro_batches_equal_one_batch():
    keras.utils.set_random_seed(6)
    rng = np.random.default_rng(6)
    mask = (np.arange(SEQ)[None, :] < rng.integers(3, SEQ, (BATCH, 1))).astype("int32")
    features = {"input_ids": (rng.integers(5, 60, (BATCH, SEQ)) * mask).astype("int32"),
                "segment_ids": np.zeros((BATCH, SEQ), "int32"), "input_mask": mask}
    labels = rng.integers(0, 3, (BATCH,)).astype("int32")
    initial = AlbertClassifier(CONFIG, num_labels=3, dropout=0.0).get_weights()
    results = []
    for steps in (1, 4):
        model = AlbertClassifier(CONFIG, num_labels=3, dropout=0.0)
        model.set_weights(initial)
        model.compile(optimizer=create_optimizer("adamw", learning_rate=1e-2, total_steps=10,
                                                 warmup_steps=0, clip_norm=1.0),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"], gradient_accumulation_steps=steps)
        logs = [model.train_on_batch(features, labels, return_dict=True) for _ in range(2)]
        results.append((model.get_weights(), logs[-1]))
    (whole, whole_logs), (accumulated, logs) = results
    assert max_difference(whole, initial) > 1e-3
    assert max_difference(whole, accumulated) < 2e-6
    for name in ("loss", "accuracy"):
        np.testing.assert_allclose(logs[name], whole_logs[name], rtol=1e-5)


def test_remat_and_accumulation_together_equal_one_batch(initial):
    """The recipe for large models on few devices: recomputed blocks and the chained
    kernel gradients inside the accumulation loop."""
    import dataclasses

    batches = pretraining_batches()
    whole, _ = train_pretrainer(initial, 1, batches)
    model = AlbertPretrainer(dataclasses.replace(CONFIG, remat="block"))
    model.set_weights(initial)
    model.compile(optimizer=lamb(), gradient_accumulation_steps=4)
    for batch in batches:
        model.train_on_batch(batch)
    assert max_difference(whole.get_weights(), model.get_weights()) < 2e-6


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_accumulation_in_mixed_precision_follows_one_batch(initial, policy):
    """Loss scaling (float16) and bf16 compute: K micro-batches stay within half
    precision's rounding of one batch, float32 weights and update."""
    keras.config.set_dtype_policy(policy)
    batches = pretraining_batches()
    whole, whole_logs = train_pretrainer(initial, 1, batches)
    accumulated, logs = train_pretrainer(initial, 2, batches)
    assert max_difference(whole.get_weights(), initial) > 1e-2
    assert max_difference(whole.get_weights(), accumulated.get_weights()) < 2e-3
    np.testing.assert_allclose(logs[-1]["loss"], whole_logs[-1]["loss"], rtol=1e-3)


def test_bad_accumulation_settings_are_named(initial):
    model = AlbertPretrainer(CONFIG)
    with pytest.raises(ValueError, match="gradient_accumulation_steps must be a positive"):
        model.compile(optimizer=lamb(), gradient_accumulation_steps=0)
    model.compile(optimizer=lamb(), gradient_accumulation_steps=3)
    with pytest.raises(ValueError, match="batch of 8 sequences does not split into 3 equal"):
        model.train_on_batch(pretraining_batches()[0])
    with pytest.raises(ValueError, match="the optimizer accumulates gradients itself"):
        model.compile(optimizer=keras.optimizers.Adam(gradient_accumulation_steps=2),
                      gradient_accumulation_steps=2)
    classifier = AlbertClassifier(CONFIG, num_labels=2)
    summed = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
    with pytest.raises(ValueError, match="reduction 'sum'"):
        classifier.compile(optimizer=lamb(), loss=summed, gradient_accumulation_steps=2)
    classifier.compile(optimizer=lamb(), loss=summed)  # one micro-batch: any loss


def test_a_saved_model_comes_back_compiled_with_its_accumulation(tmp_path):
    import warnings

    model = AlbertClassifier(CONFIG, num_labels=3)
    model.compile(optimizer=create_optimizer("adamw", total_steps=10, warmup_steps=0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], gradient_accumulation_steps=2)
    features = {"input_ids": np.full((4, SEQ), 7, "int32"),
                "segment_ids": np.zeros((4, SEQ), "int32"),
                "input_mask": np.ones((4, SEQ), "int32")}
    model.train_on_batch(features, np.array([0, 1, 2, 0]))
    path = str(tmp_path / "classifier.keras")
    model.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Keras warns when it cannot restore the compile
        loaded = keras.saving.load_model(path)
    assert loaded.compiled and loaded.gradient_accumulation_steps == 2
    assert type(loaded.optimizer).__name__ == "AlbertAdamW"
    assert int(loaded.optimizer.iterations.numpy()) == 1

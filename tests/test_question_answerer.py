"""AlbertQuestionAnswerer (span head): the loss against its formula, gradient
accumulation against one batch, mixed precision, saving, and AlbertForQuestionAnswering
read from transformers with logits within 1e-4."""

import numpy as np
import pytest
import tensorflow as tf

import keras

from albert_keras import AlbertQuestionAnswerer
from model_harness import (assert_accumulation_matches_one_batch, assert_keras_round_trip,
                           backbone_batch, small_config)


def span_batch(config, batch=4, seq=12, seed=0):
    rng = np.random.default_rng(seed)
    seq = max(seq, 3 * batch)  # every row keeps real tokens (backbone_batch pads 3 per row)
    features = backbone_batch(config, batch=batch, seq=seq, seed=seed)
    lengths = features["input_mask"].sum(1)
    start = np.array([rng.integers(0, n) for n in lengths])
    features["start_positions"] = start.astype("int32")
    features["end_positions"] = np.array(
        [rng.integers(s, n) for s, n in zip(start, lengths)]).astype("int32")
    features["start_positions"][0] = features["end_positions"][0] = 0  # no answer: [CLS]
    return features


def _log_softmax(logits):
    logits = logits.astype(np.float64)
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def test_loss_is_the_mean_of_start_and_end_cross_entropy():
    config = small_config()
    model = AlbertQuestionAnswerer(config)
    batch = span_batch(config)
    outputs = model(batch)
    rows = np.arange(4)
    start = _log_softmax(outputs["start_logits"].numpy())[rows, batch["start_positions"]]
    end = _log_softmax(outputs["end_logits"].numpy())[rows, batch["end_positions"]]
    expected = -(start + end).mean() / 2
    loss = model.compute_loss(x=batch, y_pred=outputs)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert outputs["start_logits"].shape == (4, 12) and outputs["end_logits"].dtype == "float32"


def test_accumulation_equals_one_batch():
    config = small_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    batch = span_batch(config, batch=8, seed=3)
    assert_accumulation_matches_one_batch(lambda: AlbertQuestionAnswerer(config), batch,
                                          accumulation=(4,))


def test_learns_and_round_trips(tmp_path):
    config = small_config()
    model = AlbertQuestionAnswerer(config)
    batch = span_batch(config, seed=5)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=40,
                        epochs=1, verbose=0)
    assert history.history["span_accuracy"][-1] > 0.2
    assert float(model.compute_loss(x=batch, y_pred=model(batch))) < 2.0
    assert_keras_round_trip(model, batch, tmp_path)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision(policy):
    config = small_config()
    batch = span_batch(config)
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = AlbertQuestionAnswerer(config)
        outputs = model(batch)
        loss = model.compute_loss(x=batch, y_pred=outputs)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert outputs["start_logits"].dtype == "float32"
    assert np.isfinite(float(loss))


def test_missing_positions():
    config = small_config()
    model = AlbertQuestionAnswerer(config)
    batch = backbone_batch(config)
    with pytest.raises(ValueError, match=r"\['start_positions', 'end_positions'\]"):
        model.compute_loss(x=batch, y_pred=model(batch))


def test_question_answering_from_transformers(tmp_path):
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from albert_keras.convert import from_transformers
    from test_convert_transformers import hf_config, randomized, saved, torch_outputs

    reference = randomized(transformers.AlbertForQuestionAnswering(hf_config()))
    model = from_transformers(saved(reference, tmp_path))
    assert isinstance(model, AlbertQuestionAnswerer)
    features = backbone_batch(model.config, batch=3, seq=12)
    expected = torch_outputs(reference, features)
    ours = model(features)
    real = features["input_mask"] > 0  # transformers computes padding rows differently
    for name in ("start_logits", "end_logits"):
        want = getattr(expected, name).numpy()
        assert np.abs(ours[name].numpy() - want)[real].max() <= 1e-4
        assert np.std(want[real]) > 0.01  # 100 times the tolerance
    # Start and end are told apart (a swapped or transposed head would fail above).
    start, end = expected.start_logits.numpy(), expected.end_logits.numpy()
    assert np.abs(start - end)[real].min() > 0.1

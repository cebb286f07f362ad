"""AlbertSquad2Answerer (the reference SQuAD 2.0 head): outputs only at [CLS] and context
pieces, the beam against the gold-start path, the loss against its formula, gradient
accumulation against one batch, mixed precision, saving, and a reference run_squad_v2
checkpoint read with every output within 1e-4 of the reference head's TF1 graph."""

import numpy as np
import pytest
import tensorflow as tf

import keras

from albert_keras import AlbertSquad2Answerer
from albert_keras.convert.tf1_checkpoint import squad2_answerer_from_tf1_checkpoint
from albert_keras.convert.weights import ConversionError
from albert_keras.models.squad2_answerer import p_mask
from model_harness import (assert_accumulation_matches_one_batch, assert_keras_round_trip,
                           small_config)

OUTPUT_NAMES = ["cls_logits", "end_top_index", "end_top_log_probs", "start_log_probs",
                "start_top_index", "start_top_log_probs"]
ATOL = 1e-4


def squad2_batch(config, batch=4, seq=16, seed=0):
    """Windows [CLS] question [SEP] context [SEP] pad with labels (row 0: no answer),
    and their p_mask written as the reference's convert_examples_to_features writes it."""
    rng = np.random.default_rng(seed)
    ids, segments, mask, reference_p_mask = (np.zeros((batch, seq), "int32") for _ in range(4))
    reference_p_mask[:] = 1
    start, end = np.zeros(batch, "int32"), np.zeros(batch, "int32")
    for row in range(batch):
        question = rng.integers(1, 4)
        context = rng.integers(6, seq - question - 2)  # at least 5 answer positions + [CLS]
        length = question + context + 3
        ids[row, :length] = rng.integers(5, config.vocab_size, length)
        ids[row, [0, question + 1, length - 1]] = 2, 3, 3  # [CLS], [SEP], [SEP]
        mask[row, :length] = 1
        segments[row, question + 2:length] = 1
        reference_p_mask[row, 0] = 0
        reference_p_mask[row, question + 2:length - 1] = 0
        if row:
            first = question + 2
            start[row] = rng.integers(first, first + context)
            end[row] = rng.integers(start[row], first + context)
    features = {"input_ids": ids, "segment_ids": segments, "input_mask": mask,
                "start_positions": start, "end_positions": end,
                "is_impossible": (start == 0).astype("int32")}
    return features, reference_p_mask.astype(bool)


def inputs_of(features):
    return {name: features[name] for name in ("input_ids", "segment_ids", "input_mask")}


def test_answers_only_at_cls_and_context():
    config = small_config()
    model = AlbertSquad2Answerer(config)
    features, reference_p_mask = squad2_batch(config)
    masked = p_mask(features["segment_ids"], features["input_mask"]).numpy()
    np.testing.assert_array_equal(masked, reference_p_mask)
    outputs = {name: value.numpy() for name, value in model(inputs_of(features)).items()}
    assert sorted(outputs) == OUTPUT_NAMES
    shapes = {"start_log_probs": (4, 16), "start_top_log_probs": (4, 5),
              "start_top_index": (4, 5), "end_top_log_probs": (4, 5, 5),
              "end_top_index": (4, 5, 5), "cls_logits": (4,)}
    for name, shape in shapes.items():
        assert outputs[name].shape == shape, name
        assert outputs[name].dtype == ("int32" if name.endswith("index") else "float32")
    start_log_probs = outputs["start_log_probs"]
    assert (start_log_probs[masked] < -1e29).all()
    np.testing.assert_allclose(np.exp(start_log_probs).sum(-1), 1.0, atol=1e-5)
    rows = np.arange(4)[:, None]
    assert not masked[rows, outputs["start_top_index"]].any()
    assert not masked[rows[:, :, None], outputs["end_top_index"]].any()
    np.testing.assert_allclose(outputs["start_top_log_probs"],
                               -np.sort(-start_log_probs, -1)[:, :5], atol=1e-6)
    np.testing.assert_array_equal(
        np.take_along_axis(start_log_probs, outputs["start_top_index"], -1),
        outputs["start_top_log_probs"])
    assert (np.diff(outputs["end_top_log_probs"], axis=-1) <= 0).all()
    # The beam's end head is the training one at each top start: at the best start
    # (given as the gold start) it gives the beam's first row.
    best_start = dict(features, start_positions=outputs["start_top_index"][:, 0])
    end_log_probs = model(best_start)["end_log_probs"].numpy()
    np.testing.assert_allclose(-np.sort(-end_log_probs, -1)[:, :5],
                               outputs["end_top_log_probs"][:, 0], atol=1e-5)
    np.testing.assert_array_equal(np.argsort(-end_log_probs, -1)[:, :5],
                                  outputs["end_top_index"][:, 0])


def test_loss_is_the_reference_formula():
    config = small_config()
    model = AlbertSquad2Answerer(config)
    features, _ = squad2_batch(config, seed=1)
    outputs = model(features)
    assert sorted(outputs) == sorted(OUTPUT_NAMES + ["end_log_probs"])
    rows = np.arange(4)
    start = outputs["start_log_probs"].numpy()[rows, features["start_positions"]]
    end = outputs["end_log_probs"].numpy()[rows, features["end_positions"]]
    logits = outputs["cls_logits"].numpy().astype(np.float64)
    labels = features["is_impossible"]
    sigmoid_ce = np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))
    expected = (-(start + end) / 2 + 0.5 * sigmoid_ce).mean()
    loss = model.compute_loss(x=features, y_pred=outputs)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_missing_labels():
    config = small_config()
    model = AlbertSquad2Answerer(config)
    features, _ = squad2_batch(config)
    del features["is_impossible"]
    with pytest.raises(ValueError, match=r"\['is_impossible'\]"):
        model.compute_loss(x=features, y_pred=model(features))


def test_accumulation_equals_one_batch():
    config = small_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    features, _ = squad2_batch(config, batch=8, seed=3)
    assert_accumulation_matches_one_batch(lambda: AlbertSquad2Answerer(config, dropout=0.0),
                                          features, accumulation=(2, 4))


def test_learns_and_round_trips(tmp_path):
    config = small_config()
    model = AlbertSquad2Answerer(config, start_n_top=4, end_n_top=3)
    features, _ = squad2_batch(config, seed=5)
    before = float(model.compute_loss(x=features, y_pred=model(features)))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(tf.data.Dataset.from_tensors(features).repeat(), steps_per_epoch=30,
                        epochs=1, verbose=0).history
    assert history["span_accuracy"][-1] > 0.2
    assert float(model.compute_loss(x=features, y_pred=model(features))) < 0.5 * before
    restored = assert_keras_round_trip(model, features, tmp_path)
    assert restored(inputs_of(features))["end_top_index"].shape == (4, 4, 3)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision(policy):
    config = small_config()
    features, reference_p_mask = squad2_batch(config)
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = AlbertSquad2Answerer(config)
        with tf.GradientTape() as tape:
            outputs = model(features, training=True)
            loss = model.compute_loss(x=features, y_pred=outputs)
        gradients = tape.gradient(loss, model.trainable_weights)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    for name, value in outputs.items():
        assert value.dtype == ("int32" if name.endswith("index") else "float32"), name
    assert (outputs["start_log_probs"].numpy()[reference_p_mask] < -1e29).all()
    assert np.isfinite(float(loss))
    assert all(np.isfinite(tf.convert_to_tensor(g).numpy()).all() for g in gradients)


# The reference head (squad_utils.create_v2_model) from the sequence output on, line for
# line. tf.layers.dense and contrib's layer_norm are gone beside Keras 3: written out
# under the variable names they create (scope "dense" for an unnamed dense, "LayerNorm"
# with beta and gamma, variance epsilon 1e-12).

def _tf1_dense(x, units, name, activation=None, use_bias=True):
    with tf.compat.v1.variable_scope(name):
        kernel = tf.compat.v1.get_variable("kernel", [x.shape[-1], units])
        y = tf.tensordot(x, kernel, [[x.shape.rank - 1], [0]])
        if use_bias:
            y += tf.compat.v1.get_variable("bias", [units])
    return activation(y) if activation else y


def _tf1_layer_norm(x):
    with tf.compat.v1.variable_scope("LayerNorm"):
        beta = tf.compat.v1.get_variable("beta", [x.shape[-1]])
        gamma = tf.compat.v1.get_variable("gamma", [x.shape[-1]])
        mean, variance = tf.nn.moments(x, [x.shape.rank - 1], keepdims=True)
        return tf.nn.batch_normalization(x, mean, variance, beta, gamma, 1e-12)


def reference_head(output, p_mask, features, is_training, start_n_top=5, end_n_top=5):
    max_seq_length, hidden_size = output.shape[1], output.shape[2]
    bsz = tf.shape(output)[0]
    return_dict = {}
    output = tf.transpose(output, [1, 0, 2])
    p_mask = tf.cast(p_mask, dtype=tf.float32)
    with tf.compat.v1.variable_scope("start_logits"):
        start_logits = _tf1_dense(output, 1, "dense")
        start_logits = tf.transpose(tf.squeeze(start_logits, -1), [1, 0])
        start_logits_masked = start_logits * (1 - p_mask) - 1e30 * p_mask
        start_log_probs = tf.nn.log_softmax(start_logits_masked, -1)
    with tf.compat.v1.variable_scope("end_logits"):
        if is_training:
            start_positions = tf.reshape(features["start_positions"], [-1])
            start_index = tf.one_hot(start_positions, depth=max_seq_length, axis=-1,
                                     dtype=tf.float32)
            start_features = tf.einsum("lbh,bl->bh", output, start_index)
            start_features = tf.tile(start_features[None], [max_seq_length, 1, 1])
            end_logits = _tf1_dense(tf.concat([output, start_features], axis=-1),
                                    hidden_size, "dense_0", tf.tanh)
            end_logits = _tf1_layer_norm(end_logits)
            end_logits = _tf1_dense(end_logits, 1, "dense_1")
            end_logits = tf.transpose(tf.squeeze(end_logits, -1), [1, 0])
            end_logits_masked = end_logits * (1 - p_mask) - 1e30 * p_mask
            end_log_probs = tf.nn.log_softmax(end_logits_masked, -1)
        else:
            start_top_log_probs, start_top_index = tf.nn.top_k(start_log_probs, k=start_n_top)
            start_index = tf.one_hot(start_top_index, depth=max_seq_length, axis=-1,
                                     dtype=tf.float32)
            start_features = tf.einsum("lbh,bkl->bkh", output, start_index)
            end_input = tf.tile(output[:, :, None], [1, 1, start_n_top, 1])
            start_features = tf.tile(start_features[None], [max_seq_length, 1, 1, 1])
            end_input = tf.concat([end_input, start_features], axis=-1)
            end_logits = _tf1_dense(end_input, hidden_size, "dense_0", tf.tanh)
            end_logits = _tf1_layer_norm(end_logits)
            end_logits = _tf1_dense(end_logits, 1, "dense_1")
            end_logits = tf.reshape(end_logits, [max_seq_length, -1, start_n_top])
            end_logits = tf.transpose(end_logits, [1, 2, 0])
            end_logits_masked = end_logits * (1 - p_mask[:, None]) - 1e30 * p_mask[:, None]
            end_log_probs = tf.nn.log_softmax(end_logits_masked, -1)
            end_top_log_probs, end_top_index = tf.nn.top_k(end_log_probs, k=end_n_top)
            end_top_log_probs = tf.reshape(end_top_log_probs, [-1, start_n_top * end_n_top])
            end_top_index = tf.reshape(end_top_index, [-1, start_n_top * end_n_top])
    if is_training:
        return_dict["start_log_probs"] = start_log_probs
        return_dict["end_log_probs"] = end_log_probs
    else:
        return_dict["start_top_log_probs"] = start_top_log_probs
        return_dict["start_top_index"] = start_top_index
        return_dict["end_top_log_probs"] = end_top_log_probs
        return_dict["end_top_index"] = end_top_index
    with tf.compat.v1.variable_scope("answer_class"):
        cls_index = tf.one_hot(tf.zeros([bsz], dtype=tf.int32), max_seq_length, axis=-1,
                               dtype=tf.float32)
        cls_feature = tf.einsum("lbh,bl->bh", output, cls_index)
        start_p = tf.nn.softmax(start_logits_masked, axis=-1, name="softmax_start")
        start_feature = tf.einsum("lbh,bl->bh", output, start_p)
        ans_feature = tf.concat([start_feature, cls_feature], -1)
        ans_feature = _tf1_dense(ans_feature, hidden_size, "dense_0", tf.tanh)
        cls_logits = _tf1_dense(ans_feature, 1, "dense_1", use_bias=False)
        return_dict["cls_logits"] = tf.squeeze(cls_logits, -1)
    if is_training:  # v2_model_fn_builder's loss
        def compute_loss(log_probs, positions):
            one_hot_positions = tf.one_hot(positions, depth=max_seq_length, dtype=tf.float32)
            return tf.reduce_mean(-tf.reduce_sum(one_hot_positions * log_probs, axis=-1))

        total_loss = (compute_loss(start_log_probs, features["start_positions"])
                      + compute_loss(end_log_probs, features["end_positions"])) * 0.5
        regression_loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.cast(features["is_impossible"], tf.float32), logits=cls_logits[:, 0]))
        return_dict["loss"] = total_loss + regression_loss * 0.5
    return return_dict


def run_reference_head(prefix, sequence_output, reference_p_mask, features, is_training):
    """The reference head's outputs, its variables restored from the checkpoint."""
    graph = tf.Graph()
    with graph.as_default():
        output = tf.compat.v1.placeholder(tf.float32, sequence_output.shape)
        labels = {name: tf.constant(features[name]) for name in
                  ("start_positions", "end_positions", "is_impossible")}
        fetches = reference_head(output, tf.constant(reference_p_mask.astype("int32")), labels,
                                 is_training)
        saver = tf.compat.v1.train.Saver(tf.compat.v1.global_variables())
        with tf.compat.v1.Session(graph=graph) as session:
            saver.restore(session, prefix)
            return session.run(fetches, {output: sequence_output})


def head_arrays(hidden_size, seed=7):
    rng = np.random.default_rng(seed)
    shapes = {"start_logits/dense/kernel": (hidden_size, 1), "start_logits/dense/bias": (1,),
              "end_logits/dense_0/kernel": (2 * hidden_size, hidden_size),
              "end_logits/dense_0/bias": (hidden_size,),
              "end_logits/LayerNorm/gamma": (hidden_size,),
              "end_logits/LayerNorm/beta": (hidden_size,),
              "end_logits/dense_1/kernel": (hidden_size, 1), "end_logits/dense_1/bias": (1,),
              "answer_class/dense_0/kernel": (2 * hidden_size, hidden_size),
              "answer_class/dense_0/bias": (hidden_size,),
              "answer_class/dense_1/kernel": (hidden_size, 1)}
    return {name: ((name.endswith("gamma") + 0.5 * rng.standard_normal(shape))
                   .astype("float32")) for name, shape in shapes.items()}


def test_reference_checkpoint_parity(tmp_path, recwarn):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from test_convert_tf1 import SMALL, reference_arrays, write_checkpoint, write_reference_config

    variables = {**reference_arrays(SMALL, heads=False).reference,
                 **head_arrays(SMALL["hidden_size"])}
    prefix = write_checkpoint(tmp_path, variables)
    model = squad2_answerer_from_tf1_checkpoint(prefix, write_reference_config(tmp_path, SMALL))
    assert [str(w.message) for w in recwarn if issubclass(w.category, UserWarning)] == []
    features, reference_p_mask = squad2_batch(model.config, batch=3, seq=16, seed=2)
    sequence_output = model.backbone(inputs_of(features))["sequence_output"].numpy()

    ours = {name: value.numpy() for name, value in model(inputs_of(features)).items()}
    expected = run_reference_head(prefix, sequence_output, reference_p_mask, features, False)
    np.testing.assert_array_equal(ours["start_top_index"], expected["start_top_index"])
    np.testing.assert_array_equal(ours["end_top_index"].reshape(3, 25),
                                  expected["end_top_index"])
    for name in ("start_top_log_probs", "end_top_log_probs", "cls_logits"):
        want = expected[name]
        np.testing.assert_allclose(ours[name].reshape(want.shape), want, atol=ATOL, rtol=0)
    assert np.std(expected["cls_logits"]) > 0.01 and np.std(expected["end_top_log_probs"]) > 0.01

    # The training path: log-probs of every answer position (the end's at the gold
    # start), and the reference's loss.
    trained = run_reference_head(prefix, sequence_output, reference_p_mask, features, True)
    outputs = model(features)
    answer_positions = ~reference_p_mask
    for name in ("start_log_probs", "end_log_probs"):
        np.testing.assert_allclose(outputs[name].numpy()[answer_positions],
                                   trained[name][answer_positions], atol=ATOL, rtol=0)
    loss = float(model.compute_loss(x=features, y_pred=outputs))
    assert loss == pytest.approx(float(trained["loss"]), abs=ATOL)


def test_checkpoint_without_the_head_names_its_variables(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from test_convert_tf1 import SMALL, reference_arrays, write_checkpoint, write_reference_config

    variables = {**reference_arrays(SMALL, heads=False).reference,
                 **head_arrays(SMALL["hidden_size"])}
    del variables["end_logits/LayerNorm/gamma"], variables["answer_class/dense_1/kernel"]
    prefix = write_checkpoint(tmp_path, variables, with_training_state=False)
    with pytest.raises(ConversionError,
                       match=r"'end_logits/LayerNorm/gamma', 'answer_class/dense_1/kernel' "
                             r"\(needed for squad2_head\)"):
        squad2_answerer_from_tf1_checkpoint(prefix, write_reference_config(tmp_path, SMALL))

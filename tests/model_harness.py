"""One harness that every layer and model test calls: serialization round trip,
mixed-precision forward pass, and small fixed inputs."""

import numpy as np

import keras

from albert_keras import AlbertConfig


def small_config(**overrides):
    values = dict(vocab_size=99, embedding_size=16, hidden_size=32, num_hidden_layers=4,
                  num_hidden_groups=2, inner_group_num=2, num_attention_heads=4,
                  intermediate_size=37, max_position_embeddings=32)
    values.update(overrides)
    return AlbertConfig(**values)


def backbone_batch(config, batch=3, seq=12, seed=0, padded=True):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, config.vocab_size, (batch, seq)).astype("int32")
    mask = np.ones((batch, seq), "int32")
    if padded:
        for row in range(1, batch):
            mask[row, seq - 3 * row:] = 0
    ids[:, 0] = 2
    ids = ids * mask
    segments = np.zeros((batch, seq), "int32")
    segments[:, seq // 2:] = 1
    segments *= mask
    return {"input_ids": ids, "segment_ids": segments, "input_mask": mask}


def pretraining_batch(config, batch=3, seq=12, predictions=4, seed=0):
    rng = np.random.default_rng(seed + 1)
    features = backbone_batch(config, batch, seq, seed)
    features["masked_lm_positions"] = np.sort(
        rng.choice(np.arange(1, seq - 4), size=(batch, predictions)), axis=1).astype("int32")
    features["masked_lm_ids"] = rng.integers(5, config.vocab_size, (batch, predictions)).astype("int32")
    weights = np.ones((batch, predictions), "float32")
    weights[0, -1] = 0.0
    features["masked_lm_weights"] = weights
    features["next_sentence_labels"] = rng.integers(0, 2, (batch, 1)).astype("int32")
    return features


def to_numpy(outputs):
    if isinstance(outputs, dict):
        return {k: to_numpy(v) for k, v in outputs.items()}
    if isinstance(outputs, (list, tuple)):
        return [to_numpy(v) for v in outputs]
    return keras.ops.convert_to_numpy(outputs)


def assert_outputs_close(a, b, atol=1e-6):
    a, b = to_numpy(a), to_numpy(b)
    if isinstance(a, dict):
        assert sorted(a) == sorted(b)
        for key in a:
            assert_outputs_close(a[key], b[key], atol)
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_outputs_close(x, y, atol)
    else:
        np.testing.assert_allclose(a, b, atol=atol, rtol=0)


def assert_keras_round_trip(model, inputs, tmp_path, atol=1e-6):
    """Saves to .keras, reloads, and checks identical config and outputs."""
    expected = model(inputs, training=False)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is type(model)
    assert restored.count_params() == model.count_params()
    assert_outputs_close(restored(inputs, training=False), expected, atol)
    return restored


def assert_layer_round_trip(build_model, inputs, tmp_path, atol=1e-6):
    """Wraps a layer-producing function in a functional model and round-trips it."""
    model = build_model()
    return assert_keras_round_trip(model, inputs, tmp_path, atol)


def assert_accumulation_matches_one_batch(build, batch, accumulation=(2, 4), atol=2e-6):
    """Models from build() with the same initial weights, two SGD updates on `batch` each
    with gradient_accumulation_steps K: every K in `accumulation` ends with K = 1's
    weights, which moved."""
    import tensorflow as tf

    initial = build().get_weights()
    results = {}
    for steps in (1, *accumulation):
        model = build()
        model.set_weights(initial)
        model.compile(optimizer=keras.optimizers.SGD(0.5), gradient_accumulation_steps=steps)
        model.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=2, verbose=0)
        results[steps] = model.get_weights()
    moved = max(np.abs(a - b).max() for a, b in zip(results[1], initial))
    assert moved > 1e-3
    for steps in accumulation:
        for a, b in zip(results[1], results[steps]):
            np.testing.assert_allclose(a, b, atol=atol)

"""from_keras_hub against keras-hub's own AlbertBackbone: random weights, same outputs."""

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")

from albert_keras import AlbertBackbone  # noqa: E402
from albert_keras.convert import from_keras_hub  # noqa: E402
from model_harness import backbone_batch  # noqa: E402

ATOL = 1e-4


def randomized_keras_hub_backbone(seed=0):
    """Several groups, inner repetitions > 1, E != H; every weight random."""
    backbone = keras_hub.models.AlbertBackbone(
        vocabulary_size=99, num_layers=4, num_heads=4, num_groups=2, num_inner_repetitions=2,
        embedding_dim=16, hidden_dim=32, intermediate_dim=37, dropout=0.0,
        max_sequence_length=16, num_segments=2)
    rng = np.random.default_rng(seed)
    for variable in backbone.weights:
        offset = 1.0 if variable.path.endswith("gamma") else 0.0
        variable.assign((offset + 0.5 * rng.standard_normal(variable.shape)).astype("float32"))
    return backbone


def test_keras_hub_parity():
    theirs = randomized_keras_hub_backbone()
    ours = from_keras_hub(theirs)
    assert isinstance(ours, AlbertBackbone)
    assert ours.config.num_hidden_groups == 2 and ours.config.inner_group_num == 2
    assert ours.count_params() == theirs.count_params()

    features = backbone_batch(ours.config, batch=3, seq=12)
    assert features["input_mask"].min() == 0 and features["segment_ids"].max() == 1
    expected = theirs.predict_on_batch({"token_ids": features["input_ids"],
                                        "segment_ids": features["segment_ids"],
                                        "padding_mask": features["input_mask"]})
    got = ours.predict_on_batch(features)
    for name in ("sequence_output", "pooled_output"):
        diff = np.max(np.abs(got[name] - expected[name]))
        assert diff <= ATOL, f"{name} differs by {diff}"
    assert np.std(got["sequence_output"]) > 0.1


def test_rejects_other_models():
    with pytest.raises(TypeError, match="keras_hub.models.AlbertBackbone"):
        from_keras_hub(object())


def test_command_line_reads_a_preset_directory(tmp_path):
    import keras

    from albert_keras.convert.__main__ import main

    theirs = randomized_keras_hub_backbone(seed=1)
    theirs.save_to_preset(str(tmp_path / "preset"))
    output = str(tmp_path / "backbone.keras")
    assert main(["--from", "keras_hub", str(tmp_path / "preset"), "--output", output]) == 0
    restored = keras.saving.load_model(output)
    assert isinstance(restored, AlbertBackbone)
    features = backbone_batch(restored.config, batch=2, seq=8)
    expected = theirs.predict_on_batch({"token_ids": features["input_ids"],
                                        "segment_ids": features["segment_ids"],
                                        "padding_mask": features["input_mask"]})
    got = restored.predict_on_batch(features)
    assert np.max(np.abs(got["pooled_output"] - expected["pooled_output"])) <= ATOL

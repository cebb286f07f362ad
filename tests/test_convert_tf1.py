"""from_tf1_checkpoint against transformers' PyTorch ALBERT loaded with the same arrays.

The test writes a checkpoint in the reference layout with tf.compat.v1 variables and
a Saver, from known random numpy arrays, and puts the same arrays into a transformers
AlbertForPreTraining through its own naming (tables below, written from the reference
notes, independent of the converter)."""

import json

import numpy as np
import pytest
import tensorflow as tf

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from albert_keras.convert import ConversionError, from_tf1_checkpoint  # noqa: E402
from model_harness import backbone_batch  # noqa: E402
from transformers_reference import output_differences  # noqa: E402

ATOL = 1e-4
SMALL = dict(vocab_size=99, embedding_size=16, hidden_size=32, num_hidden_layers=4,
             num_hidden_groups=2, inner_group_num=2, num_attention_heads=4,
             intermediate_size=37, max_position_embeddings=16, type_vocab_size=2)

# reference suffix inside group_G/inner_group_K -> (transformers suffix, kernel?)
_BLOCK = {
    "attention_1/self/query": "attention.query",
    "attention_1/self/key": "attention.key",
    "attention_1/self/value": "attention.value",
    "attention_1/output/dense": "attention.dense",
    "ffn_1/intermediate/dense": "ffn",
    "ffn_1/intermediate/output/dense": "ffn_output",
}
_BLOCK_NORMS = {"LayerNorm": "attention.LayerNorm", "LayerNorm_1": "full_layer_layer_norm"}


class Arrays:
    """Random arrays recorded under both names: reference (TF1) and transformers."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.reference, self.transformers = {}, {}

    def add(self, reference, hf, shape, offset=0.0, transpose=False):
        value = (offset + 0.5 * self.rng.standard_normal(shape)).astype("float32")
        self.reference[reference] = value
        self.transformers[hf] = torch.from_numpy(np.ascontiguousarray(value.T if transpose else value))

    def dense(self, reference, hf, fan_in, fan_out):
        self.add(f"{reference}/kernel", f"{hf}.weight", (fan_in, fan_out), transpose=True)
        self.add(f"{reference}/bias", f"{hf}.bias", (fan_out,))

    def norm(self, reference, hf, size):
        self.add(f"{reference}/gamma", f"{hf}.weight", (size,), offset=1.0)
        self.add(f"{reference}/beta", f"{hf}.bias", (size,))


def reference_arrays(c, seed=0, heads=True):
    V, E, H, I = c["vocab_size"], c["embedding_size"], c["hidden_size"], c["intermediate_size"]
    a = Arrays(seed)
    for name, rows in (("word_embeddings", V), ("token_type_embeddings", c["type_vocab_size"]),
                       ("position_embeddings", c["max_position_embeddings"])):
        a.add(f"bert/embeddings/{name}", f"albert.embeddings.{name}.weight", (rows, E))
    a.norm("bert/embeddings/LayerNorm", "albert.embeddings.LayerNorm", E)
    if E != H:  # the reference has no projection when E == H
        a.dense("bert/encoder/embedding_hidden_mapping_in",
                "albert.encoder.embedding_hidden_mapping_in", E, H)
    for g in range(c["num_hidden_groups"]):
        for k in range(c["inner_group_num"]):
            ref = f"bert/encoder/transformer/group_{g}/inner_group_{k}"
            hf = f"albert.encoder.albert_layer_groups.{g}.albert_layers.{k}"
            for ref_suffix, hf_suffix in _BLOCK.items():
                fan_in, fan_out = {"ffn": (H, I), "ffn_output": (I, H)}.get(hf_suffix, (H, H))
                a.dense(f"{ref}/{ref_suffix}", f"{hf}.{hf_suffix}", fan_in, fan_out)
            for ref_suffix, hf_suffix in _BLOCK_NORMS.items():
                a.norm(f"{ref}/{ref_suffix}", f"{hf}.{hf_suffix}", H)
    a.dense("bert/pooler/dense", "albert.pooler", H, H)
    if heads:
        a.dense("cls/predictions/transform/dense", "predictions.dense", H, E)
        a.norm("cls/predictions/transform/LayerNorm", "predictions.LayerNorm", E)
        a.add("cls/predictions/output_bias", "predictions.bias", (V,))
        a.add("cls/seq_relationship/output_weights", "sop_classifier.classifier.weight", (2, H))
        a.add("cls/seq_relationship/output_bias", "sop_classifier.classifier.bias", (2,))
    return a


def write_checkpoint(directory, variables, with_training_state=True):
    """A TF1 checkpoint of tf.compat.v1 variables under exactly these names."""
    graph = tf.Graph()
    with graph.as_default():
        var_list = [tf.compat.v1.Variable(value, name=name) for name, value in variables.items()]
        if with_training_state:
            for name in list(variables)[:3]:
                for slot in ("adam_m", "adam_v"):
                    var_list.append(tf.compat.v1.Variable(
                        np.zeros_like(variables[name]), name=f"{name}/{slot}"))
            var_list.append(tf.compat.v1.Variable(np.int64(125000), name="global_step"))
        saver = tf.compat.v1.train.Saver(var_list)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return saver.save(session, str(directory / "model.ckpt"), global_step=125000)


def write_reference_config(directory, c):
    path = directory / "albert_config.json"
    path.write_text(json.dumps(dict(
        c, hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        initializer_range=0.02, down_scale_factor=1, net_structure_type=0, gap_size=0)))
    return str(path)


def transformers_model(c, arrays):
    """AlbertForPreTraining with the same arrays; reference "gelu" is transformers' gelu_new."""
    config = transformers.AlbertConfig(**c, hidden_act="gelu_new", hidden_dropout_prob=0.0,
                                       attention_probs_dropout_prob=0.0)
    config._attn_implementation = "eager"
    model = transformers.AlbertForPreTraining(config).eval()
    state = dict(arrays.transformers)
    if c["embedding_size"] == c["hidden_size"]:
        state["albert.encoder.embedding_hidden_mapping_in.weight"] = torch.eye(c["hidden_size"])
        state["albert.encoder.embedding_hidden_mapping_in.bias"] = torch.zeros(c["hidden_size"])
    state["predictions.decoder.weight"] = state["albert.embeddings.word_embeddings.weight"]
    state["predictions.decoder.bias"] = state["predictions.bias"]
    model.load_state_dict(state, strict=True)
    return model


def features_for(pretrainer):
    features = backbone_batch(pretrainer.config, batch=3, seq=12)
    features["masked_lm_positions"] = np.array([[1, 4, 9], [2, 3, 7], [1, 5, 5]], "int32")
    return features


def compare(pretrainer, reference, features):
    differences, _ = output_differences(pretrainer, reference, features)
    for name, diff in differences.items():
        assert diff <= ATOL, f"{name} differs by {diff}"


def conversion_warnings(record):
    return [str(w.message) for w in record if issubclass(w.category, UserWarning)]


def test_reference_checkpoint_parity(tmp_path, recwarn):
    arrays = reference_arrays(SMALL)
    prefix = write_checkpoint(tmp_path, arrays.reference)
    pretrainer = from_tf1_checkpoint(prefix, write_reference_config(tmp_path, SMALL))
    # Optimizer slots and global_step are skipped without complaint; every head found.
    assert conversion_warnings(recwarn) == []
    assert pretrainer.config.hidden_act == "gelu_tanh"
    compare(pretrainer, transformers_model(SMALL, arrays), features_for(pretrainer))


def test_equal_embedding_and_hidden_size_uses_identity_projection(tmp_path):
    c = dict(SMALL, embedding_size=32, num_hidden_groups=1, inner_group_num=1)
    arrays = reference_arrays(c, seed=1)
    assert not any("embedding_hidden_mapping_in" in name for name in arrays.reference)
    prefix = write_checkpoint(tmp_path, arrays.reference, with_training_state=False)
    pretrainer = from_tf1_checkpoint(prefix, write_reference_config(tmp_path, c))
    projection = pretrainer.backbone.embedding.projection
    np.testing.assert_array_equal(projection.kernel.numpy(), np.eye(32))
    np.testing.assert_array_equal(projection.bias.numpy(), np.zeros(32))
    compare(pretrainer, transformers_model(c, arrays), features_for(pretrainer))


def test_missing_heads_warn_by_name(tmp_path):
    arrays = reference_arrays(SMALL, heads=False)
    prefix = write_checkpoint(tmp_path, arrays.reference, with_training_state=False)
    with pytest.warns(UserWarning, match=r"mlm_head \(cls/predictions/\*\), sop_head"):
        from_tf1_checkpoint(prefix, write_reference_config(tmp_path, SMALL))


def test_bert_checkpoint_names_the_missing_variable(tmp_path):
    arrays = reference_arrays(SMALL)
    bert = {name.replace("transformer/group_0/inner_group_0", "layer_0"): value
            for name, value in arrays.reference.items()}
    prefix = write_checkpoint(tmp_path, bert, with_training_state=False)
    with pytest.raises(ConversionError,
                       match=r"'bert/encoder/transformer/group_0/inner_group_0/attention_1/self/"
                             r"query/kernel'.*bert/encoder/layer_0"):
        from_tf1_checkpoint(prefix, write_reference_config(tmp_path, SMALL))


def test_wrong_shape_names_the_variable(tmp_path):
    arrays = reference_arrays(SMALL)
    name = "bert/encoder/transformer/group_1/inner_group_1/ffn_1/intermediate/dense/kernel"
    arrays.reference[name] = np.zeros((32, 40), "float32")
    prefix = write_checkpoint(tmp_path, arrays.reference, with_training_state=False)
    with pytest.raises(ConversionError, match=rf"'{name}' has shape \(32, 40\), expected \(32, 37\)"):
        from_tf1_checkpoint(prefix, write_reference_config(tmp_path, SMALL))


def test_missing_projection_when_sizes_differ_is_an_error(tmp_path):
    arrays = reference_arrays(SMALL)
    del arrays.reference["bert/encoder/embedding_hidden_mapping_in/kernel"]
    del arrays.reference["bert/encoder/embedding_hidden_mapping_in/bias"]
    prefix = write_checkpoint(tmp_path, arrays.reference, with_training_state=False)
    with pytest.raises(ConversionError, match="embedding_hidden_mapping_in/kernel"):
        from_tf1_checkpoint(prefix, write_reference_config(tmp_path, SMALL))


def test_command_line(tmp_path, capsys):
    import keras

    from albert_keras.convert.__main__ import main

    arrays = reference_arrays(SMALL)
    prefix = write_checkpoint(tmp_path, arrays.reference)
    config = write_reference_config(tmp_path, SMALL)
    with pytest.raises(SystemExit):  # tf1 needs --config
        main(["--from", "tf1", prefix, "--output", str(tmp_path / "m.keras")])
    capsys.readouterr()
    # A checkpoint that is not there, or whose layout lacks a variable: one line, exit 2.
    missing = str(tmp_path / "nowhere" / "model.ckpt")
    assert main(["--from", "tf1", missing, "--config", config,
                 "--output", str(tmp_path / "m.keras")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --from tf1 ") and missing in err and err.count("\n") == 1
    partial = write_checkpoint(tmp_path / "partial", {
        name: value for name, value in arrays.reference.items()
        if name != "bert/embeddings/word_embeddings"})
    assert main(["--from", "tf1", partial, "--config", config,
                 "--output", str(tmp_path / "m.keras")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "word_embeddings" in err and err.count("\n") == 1
    assert not (tmp_path / "m.keras").exists()
    output = str(tmp_path / "model.keras")
    assert main(["--from", "tf1", prefix, "--config", config, "--output", output]) == 0
    restored = keras.saving.load_model(output)
    compare(restored, transformers_model(SMALL, arrays), features_for(restored))

"""from_transformers against transformers' own PyTorch ALBERT: random weights saved with
save_pretrained, converted, and compared output by output in float32."""

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.numpy import load_file, save_file  # noqa: E402

from albert_keras.convert import ConversionError, from_transformers  # noqa: E402
from albert_keras.convert.__main__ import main as convert_main  # noqa: E402
from albert_keras.models import with_fusion  # noqa: E402
from model_harness import backbone_batch  # noqa: E402
from transformers_reference import output_differences  # noqa: E402

ATOL = 1e-4
SCALE = 0.5  # weight scale of the random models


def hf_config(hidden_act="gelu_new", **overrides):
    """Several groups, inner_group_num > 1, E != H."""
    values = dict(vocab_size=99, embedding_size=16, hidden_size=32, num_hidden_layers=4,
                  num_hidden_groups=2, inner_group_num=2, num_attention_heads=4,
                  intermediate_size=37, max_position_embeddings=16, hidden_act=hidden_act,
                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    values.update(overrides)
    config = transformers.AlbertConfig(**values)
    config._attn_implementation = "eager"
    return config


def randomized(model, seed=0):
    """Every parameter random (biases and LayerNorm too), large enough that the
    nonlinearities and the GELU variant matter; tied parameters stay tied."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            value = SCALE * torch.randn(parameter.shape, generator=generator)
            if "LayerNorm.weight" in name or "layer_norm.weight" in name:
                value += 1.0
            parameter.copy_(value)
    return model.eval()


def saved(model, directory):
    model.save_pretrained(directory)
    return str(directory)


def batch_with_positions(config, predictions=3):
    """Padding in rows 1-2, both segment ids, masked positions within real tokens."""
    features = backbone_batch(config, batch=3, seq=12)
    features["masked_lm_positions"] = np.array(
        [[1, 4, 9], [2, 3, 7], [1, 5, 5]], "int32")[:, :predictions]
    return features


def torch_outputs(model, features):
    with torch.no_grad():
        return model(input_ids=torch.tensor(features["input_ids"], dtype=torch.long),
                     token_type_ids=torch.tensor(features["segment_ids"], dtype=torch.long),
                     attention_mask=torch.tensor(features["input_mask"], dtype=torch.long))


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


@pytest.mark.parametrize("fusion", ["plain", "xla_cpu"])
@pytest.mark.parametrize("hidden_act", ["gelu", "gelu_new"])
def test_pretraining_parity(hidden_act, fusion, tmp_path):
    """"gelu" in a transformers config is erf GELU, "gelu_new" the tanh one: both match,
    with plain kernels and with the fused XLA kernels that training uses."""
    config = hf_config(hidden_act)
    reference = randomized(transformers.AlbertForPreTraining(config))
    pretrainer = with_fusion(from_transformers(saved(reference, tmp_path)), fusion)
    assert pretrainer.config.fusion == fusion
    features = batch_with_positions(config)
    assert set(features["segment_ids"].ravel()) == {0, 1}
    assert features["input_mask"].min() == 0

    differences, ours = output_differences(pretrainer, reference, features)
    for name, diff in differences.items():
        assert diff <= ATOL, f"{name} differs by {diff}"
    # The check is sensitive: outputs are far from trivial.
    assert np.std(ours["mlm_logits"]) > 0.1 and np.std(ours["sequence_output"]) > 0.1


def test_gelu_variant_matters(tmp_path):
    """Reading an erf-GELU model as tanh-GELU misses by several times the tolerance, so
    the parity test above catches a wrong activation mapping."""
    reference = randomized(transformers.AlbertForPreTraining(hf_config("gelu")))
    directory = saved(reference, tmp_path)
    with open(os.path.join(directory, "config.json")) as f:
        values = json.load(f)
    values["hidden_act"] = "gelu_new"
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(values, f)
    pretrainer = from_transformers(directory)
    features = batch_with_positions(pretrainer.config)
    logits = torch_outputs(reference, features).prediction_logits.numpy()
    expected = np.take_along_axis(logits, features["masked_lm_positions"][..., None], axis=1)
    diff = max_diff(pretrainer.predict_on_batch(features)["mlm_logits"], expected)
    assert diff > 3 * ATOL  # about 1e-3, against a conversion error near 1e-6


def test_albert_model_without_heads_warns_and_matches(tmp_path):
    reference = randomized(transformers.AlbertModel(hf_config()))
    directory = saved(reference, tmp_path)
    assert not any(key.startswith("albert.") for key in load_file(
        os.path.join(directory, "model.safetensors")))
    with pytest.warns(UserWarning, match=r"mlm_head \(predictions\.\*\), sop_head") as record:
        pretrainer = from_transformers(directory)
    assert not any("pooler" in str(w.message) for w in record)
    features = backbone_batch(pretrainer.config, batch=3, seq=12)
    ours = pretrainer.backbone.predict_on_batch(features)
    expected = torch_outputs(reference, features)
    assert max_diff(ours["sequence_output"], expected.last_hidden_state) <= ATOL
    assert max_diff(ours["pooled_output"], expected.pooler_output) <= ATOL


def test_masked_lm_model_from_pytorch_bin(tmp_path):
    """AlbertForMaskedLM has no pooler and no SOP head; pytorch_model.bin is read too."""
    reference = randomized(transformers.AlbertForMaskedLM(hf_config()))
    directory = saved(reference, tmp_path)
    tensors = load_file(os.path.join(directory, "model.safetensors"))
    torch.save({k: torch.from_numpy(v) for k, v in tensors.items()},
               os.path.join(directory, "pytorch_model.bin"))
    os.remove(os.path.join(directory, "model.safetensors"))

    with pytest.warns(UserWarning, match=r"pooler \(albert\.pooler\.\*\), sop_head"):
        pretrainer = from_transformers(directory)
    features = batch_with_positions(pretrainer.config)
    ours = pretrainer.predict_on_batch(features)
    logits = torch_outputs(reference, features).logits.numpy()
    expected = np.take_along_axis(logits, features["masked_lm_positions"][..., None], axis=1)
    assert max_diff(ours["mlm_logits"], expected) <= ATOL


@pytest.fixture(scope="module")
def pretraining_directory(tmp_path_factory):
    directory = tmp_path_factory.mktemp("albert_for_pretraining")
    return saved(randomized(transformers.AlbertForPreTraining(hf_config())), directory)


def _rewrite_weights(directory, tmp_path, edit):
    """A copy of the saved model with edit(tensors) applied to its weights."""
    tensors = load_file(os.path.join(directory, "model.safetensors"))
    edit(tensors)
    os.makedirs(tmp_path / "edited", exist_ok=True)
    save_file(tensors, str(tmp_path / "edited" / "model.safetensors"))
    with open(os.path.join(directory, "config.json")) as src:
        (tmp_path / "edited" / "config.json").write_text(src.read())
    return str(tmp_path / "edited")


def test_bert_state_dict_names_the_missing_variable(pretraining_directory, tmp_path):
    def to_bert(tensors):
        for key in list(tensors):
            tensors[key.replace("albert.", "bert.")] = tensors.pop(key)

    directory = _rewrite_weights(pretraining_directory, tmp_path, to_bert)
    with pytest.raises(ConversionError, match=r"embeddings\.word_embeddings\.weight.*bert\."):
        from_transformers(directory)


def test_wrong_shape_names_the_variable(pretraining_directory, tmp_path):
    name = "albert.encoder.albert_layer_groups.1.albert_layers.0.attention.key.weight"

    def widen(tensors):
        tensors[name] = np.zeros((32, 33), "float32")

    directory = _rewrite_weights(pretraining_directory, tmp_path, widen)
    with pytest.raises(ConversionError, match=rf"{name}.*\(32, 33\)"):
        from_transformers(directory)


def test_missing_variable_names_it(pretraining_directory, tmp_path):
    name = "albert.encoder.albert_layer_groups.0.albert_layers.1.ffn_output.bias"
    directory = _rewrite_weights(pretraining_directory, tmp_path,
                                 lambda tensors: tensors.pop(name))
    with pytest.raises(ConversionError, match=name):
        from_transformers(directory)


def test_command_line_writes_a_loadable_keras_file(pretraining_directory, tmp_path):
    import keras

    output = str(tmp_path / "model.keras")
    assert convert_main(["--from", "transformers", pretraining_directory,
                         "--output", output]) == 0
    restored = keras.saving.load_model(output)
    converted = from_transformers(pretraining_directory)
    features = batch_with_positions(converted.config)
    a, b = restored.predict_on_batch(features), converted.predict_on_batch(features)
    assert max_diff(a["mlm_logits"], b["mlm_logits"]) == 0.0
    assert max_diff(a["sop_logits"], b["sop_logits"]) == 0.0

import json
import warnings

import pytest

from albert_keras import AlbertConfig
from albert_keras.config import PRESETS


def test_defaults_are_reference_albert():
    config = AlbertConfig()
    assert config.layer_norm_eps == 1e-12
    assert config.sharing == "all"
    assert config.hidden_act == "gelu_tanh"
    assert (config.num_hidden_groups, config.inner_group_num) == (1, 1)


@pytest.mark.parametrize("name,layers,hidden,heads,inner", [
    ("base", 12, 768, 12, 3072), ("large", 24, 1024, 16, 4096),
    ("xlarge", 24, 2048, 16, 8192), ("xxlarge", 12, 4096, 64, 16384)])
def test_presets_hold_v2_values(name, layers, hidden, heads, inner):
    config = AlbertConfig.from_preset(name)
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
            config.intermediate_size) == (layers, hidden, heads, inner)
    assert (config.vocab_size, config.embedding_size, config.max_position_embeddings) == (30000, 128, 512)
    assert config.hidden_dropout_prob == 0.0


def test_from_preset_overrides_and_unknown_name():
    assert AlbertConfig.from_preset("tiny", sharing="none").sharing == "none"
    with pytest.raises(ValueError, match="Unknown preset"):
        AlbertConfig.from_preset("huge")


@pytest.mark.parametrize("field,value,message", [
    ("hidden_size", 66, "divisible by num_attention_heads"),
    ("num_hidden_groups", 5, "divisible by num_hidden_groups"),
    ("vocab_size", 0, "vocab_size"),
    ("intermediate_size", -1, "intermediate_size"),
    ("hidden_act", "gelu", "hidden_act"),
    ("sharing", "everything", "sharing"),
    ("hidden_dropout_prob", 1.0, "hidden_dropout_prob"),
    ("attention_probs_dropout_prob", -0.1, "attention_probs_dropout_prob"),
    ("layer_norm_eps", 0, "layer_norm_eps"),
])
def test_invalid_values_name_the_field(field, value, message):
    values = dict(PRESETS["tiny"])
    values[field] = value
    with pytest.raises(ValueError, match=message):
        AlbertConfig(**values)


def test_reference_file_gelu_is_tanh_and_round_trips(tmp_path):
    reference = {
        "attention_probs_dropout_prob": 0, "hidden_act": "gelu", "hidden_dropout_prob": 0,
        "embedding_size": 128, "hidden_size": 768, "initializer_range": 0.02,
        "intermediate_size": 3072, "max_position_embeddings": 512, "num_attention_heads": 12,
        "num_hidden_layers": 12, "num_hidden_groups": 1, "net_structure_type": 0,
        "gap_size": 0, "num_memory_blocks": 0, "inner_group_num": 1, "down_scale_factor": 1,
        "type_vocab_size": 2, "vocab_size": 30000}
    path = tmp_path / "albert_config.json"
    path.write_text(json.dumps(reference))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # known unused reference keys are not warned about
        config = AlbertConfig.from_json_file(path)
    assert config.hidden_act == "gelu_tanh"
    assert config == AlbertConfig.from_preset("base")
    out = tmp_path / "written.json"
    config.to_json_file(out)
    written = json.loads(out.read_text())
    assert written["hidden_act"] == "gelu" and "model_type" not in written
    assert AlbertConfig.from_json_file(out) == config


@pytest.mark.parametrize("name,internal", [("gelu", "gelu_erf"), ("gelu_new", "gelu_tanh"),
                                           ("relu", "relu")])
def test_transformers_activation_names(tmp_path, name, internal):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "albert", "hidden_act": name, "vocab_size": 50,
                                "hidden_size": 32, "num_attention_heads": 4,
                                "layer_norm_eps": 1e-12, "architectures": ["AlbertModel"]}))
    config = AlbertConfig.from_json_file(path)
    assert config.hidden_act == internal
    out = tmp_path / "out.json"
    config.to_json_file(out, format="transformers")
    assert json.loads(out.read_text())["model_type"] == "albert"
    assert AlbertConfig.from_json_file(out) == config


def test_unknown_key_warns_with_file_name(tmp_path):
    path = tmp_path / "albert_config.json"
    path.write_text(json.dumps({"hidden_size": 32, "num_attention_heads": 4, "flux_capacitor": 1}))
    with pytest.warns(UserWarning, match="albert_config.json.*flux_capacitor"):
        AlbertConfig.from_json_file(path)


def test_bad_files_raise_with_file_name(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        AlbertConfig.from_json_file(broken)
    bert = tmp_path / "bert.json"
    bert.write_text(json.dumps({"model_type": "bert", "hidden_size": 32}))
    with pytest.raises(ValueError, match="not 'albert'"):
        AlbertConfig.from_json_file(bert)
    bad_act = tmp_path / "act.json"
    bad_act.write_text(json.dumps({"hidden_act": "mish"}))
    with pytest.raises(ValueError, match="act.json.*hidden_act"):
        AlbertConfig.from_json_file(bad_act)


def test_sharing_modes_need_internal_format(tmp_path):
    config = AlbertConfig.from_preset("tiny", sharing="ffn")
    with pytest.raises(ValueError, match="internal"):
        config.to_json_file(tmp_path / "c.json")
    config.to_json_file(tmp_path / "c.json", format="internal")
    assert AlbertConfig.from_json_file(tmp_path / "c.json") == config


def test_kernels_the_former_name_of_fusion_still_loads():
    """Configs and saved models written when fusion was called kernels."""
    values = AlbertConfig.from_preset("tiny").to_dict()
    values["kernels"] = values.pop("fusion")
    values["kernels"] = "xla_cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not "unknown config key"
        assert AlbertConfig.from_dict(values).fusion == "xla_cpu"

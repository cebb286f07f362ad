"""Parameter counts against transformers (built on the meta device: nothing allocated)
and against the closed-form count for each cross-layer sharing mode."""

import pytest

from albert_keras import AlbertBackbone, AlbertConfig, AlbertPretrainer

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

# From the reference notes: transformers' AlbertModel (pooler included), v2 configs.
PUBLISHED = {"base": 11_683_584, "large": 17_683_968, "xlarge": 58_724_864}


def transformers_count(config, model_class):
    hf_config = transformers.AlbertConfig(
        vocab_size=config.vocab_size, embedding_size=config.embedding_size,
        hidden_size=config.hidden_size, num_hidden_layers=config.num_hidden_layers,
        num_hidden_groups=config.num_hidden_groups, inner_group_num=config.inner_group_num,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings,
        type_vocab_size=config.type_vocab_size)
    with torch.device("meta"):
        model = model_class(hf_config)
    return sum(p.numel() for p in model.parameters())  # tied parameters once


@pytest.mark.parametrize("preset", sorted(PUBLISHED))
def test_presets_match_transformers(preset):
    config = AlbertConfig.from_preset(preset)
    ours = AlbertBackbone(config).count_params()
    assert ours == transformers_count(config, transformers.AlbertModel) == PUBLISHED[preset]


def small_config(sharing="all"):
    return AlbertConfig(vocab_size=99, embedding_size=16, hidden_size=32, num_hidden_layers=4,
                        num_hidden_groups=2, inner_group_num=2, num_attention_heads=4,
                        intermediate_size=37, max_position_embeddings=16, sharing=sharing)


def expected_backbone_count(c):
    V, E, H, I = c.vocab_size, c.embedding_size, c.hidden_size, c.intermediate_size
    embedding = (V + c.type_vocab_size + c.max_position_embeddings) * E + 2 * E + E * H + H
    attention = 4 * (H * H + H) + 2 * H          # q, k, v, output dense; LayerNorm
    feed_forward = H * I + I + I * H + H + 2 * H  # two dense; LayerNorm
    per_group = c.num_hidden_groups * c.inner_group_num
    per_layer = c.num_hidden_layers * c.inner_group_num
    attention_owners = per_group if c.sharing in ("all", "attention") else per_layer
    feed_forward_owners = per_group if c.sharing in ("all", "ffn") else per_layer
    pooler = H * H + H
    return (embedding + attention_owners * attention + feed_forward_owners * feed_forward
            + pooler)


@pytest.mark.parametrize("sharing", ["all", "attention", "ffn", "none"])
def test_sharing_modes_count_the_weights_they_keep(sharing):
    config = small_config(sharing)
    assert AlbertBackbone(config).count_params() == expected_backbone_count(config)


def test_small_config_matches_transformers_with_and_without_heads():
    config = small_config()
    V, E, H = config.vocab_size, config.embedding_size, config.hidden_size
    assert AlbertBackbone(config).count_params() == transformers_count(
        config, transformers.AlbertModel)
    pretrainer_count = AlbertPretrainer(config).count_params()
    # MLM head: dense H->E, LayerNorm(E), output bias [V]; output matrix tied. SOP: H->2.
    heads = H * E + E + 2 * E + V + 2 * H + 2
    assert pretrainer_count == expected_backbone_count(config) + heads
    assert pretrainer_count == transformers_count(config, transformers.AlbertForPreTraining)

"""AlbertBackbone: token ids in, sequence and pooled representations out."""

import keras

from albert_keras.config import AlbertConfig
from albert_keras.layers import FactorizedEmbedding, Pooler, SharedEncoder
from albert_keras.models import model_vocabulary

INPUT_NAMES = ("input_ids", "segment_ids", "input_mask")


def backbone_inputs():
    """The three int32 [batch, seq] inputs, by their reference record names."""
    return {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in INPUT_NAMES}


def task_backbone(config, backbone, owner: str, dtype=None) -> "AlbertBackbone":
    """The backbone a task model is built on: `backbone` (a model, or its serialized
    dict from get_config) or a new one from `config`; exactly one of the two."""
    if isinstance(backbone, dict):
        backbone = keras.saving.deserialize_keras_object(backbone)
    if backbone is None:
        if config is None:
            raise ValueError(f"{owner} needs a config or a backbone")
        return AlbertBackbone(config, dtype=dtype)
    if config is not None:
        raise ValueError(f"Pass either config or backbone to {owner}, not both")
    return backbone


class TakesFeatureDicts:
    """Mixin for task models (before keras.Model): batches carry labels beside the
    inputs, and call() passes the graph only its inputs."""

    def call(self, inputs, training=None):
        if isinstance(inputs, dict):
            inputs = {name: inputs[name] for name in self.input_names}
        return super().call(inputs, training=training)

    @property
    def input_names(self):
        return list(INPUT_NAMES)

    def label_features(self, x, names) -> list:
        """x[name] for each of names, the features the loss reads beside the inputs;
        an error names the missing ones."""
        missing = [name for name in names if not isinstance(x, dict) or name not in x]
        if missing:
            raise ValueError(f"{type(self).__name__} needs the label features {missing} "
                             "in each batch")
        return [x[name] for name in names]


def _as_config(config):
    if isinstance(config, AlbertConfig):
        return config
    if isinstance(config, dict):
        return AlbertConfig.from_dict(config)
    raise TypeError(f"config must be an AlbertConfig or a dict, got {type(config).__name__}")


@keras.saving.register_keras_serializable(package="albert_keras")
class AlbertBackbone(keras.Model):
    """ALBERT encoder as a functional Keras model.

    Inputs: dict of int32 [batch, seq] "input_ids", "segment_ids", "input_mask".
    Outputs: dict with "sequence_output" [batch, seq, H] and "pooled_output" [batch, H];
    with output_hidden_states=True also "hidden_states", a list of L + 1 tensors
    [batch, seq, H]: the projected embeddings followed by each layer's output.
    config.fusion decides how the encoder computes (config.FUSIONS);
    albert_keras.models.with_fusion makes a copy that computes another way.
    """

    def __init__(self, config, output_hidden_states=False, **kwargs):
        config = _as_config(config)
        dtype = kwargs.pop("dtype", None)
        inputs = backbone_inputs()
        embedding = FactorizedEmbedding(
            config.vocab_size, config.embedding_size, config.hidden_size,
            type_vocab_size=config.type_vocab_size,
            max_position_embeddings=config.max_position_embeddings,
            dropout=config.hidden_dropout_prob, layer_norm_eps=config.layer_norm_eps,
            initializer_range=config.initializer_range,
            projection=config.embedding_projection, dtype=dtype, name="embeddings")
        encoder = SharedEncoder(
            config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
            config.intermediate_size, num_groups=config.num_hidden_groups,
            inner_group_num=config.inner_group_num, sharing=config.sharing,
            activation=config.hidden_act, hidden_dropout=config.hidden_dropout_prob,
            attention_dropout=config.attention_probs_dropout_prob,
            layer_norm_eps=config.layer_norm_eps, initializer_range=config.initializer_range,
            fusion=config.fusion, remat=config.remat, dtype=dtype, name="encoder")
        pooler = Pooler(config.hidden_size, initializer_range=config.initializer_range,
                        dtype=dtype, name="pooler")

        x = embedding(inputs["input_ids"], inputs["segment_ids"])
        states = encoder(x, inputs["input_mask"], return_all_layers=output_hidden_states)
        sequence_output = states[-1] if output_hidden_states else states
        outputs = {"sequence_output": sequence_output, "pooled_output": pooler(sequence_output)}
        if output_hidden_states:
            outputs["hidden_states"] = states
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        self.config = config
        self.output_hidden_states = output_hidden_states
        self.embedding = embedding
        self.encoder = encoder
        self.pooler = pooler
        # The tokenizer's vocabulary, saved with the model (model_vocabulary).
        self.carried_vocabulary = None

    def sequence_output_at(self, inputs, positions=None):
        """sequence_output at `positions` only: int [batch, P] -> [batch, P, H], with the
        last block computing just those rows (SharedEncoder's output_positions); at every
        position when positions is None. Never the pooler.

        The task models build their graphs on it with the rows their heads read (the
        pretrainer and the classifier), or all of them without the pooler, which no span
        or tag reads (the tagger and the question answerers), so that nothing is
        computed that nobody reads.
        """
        x = self.embedding(inputs["input_ids"], inputs["segment_ids"])
        return self.encoder(x, inputs["input_mask"], output_positions=positions)

    def save_assets(self, dir_path):
        model_vocabulary.save_assets(self.carried_vocabulary, dir_path)

    def load_assets(self, dir_path):
        self.carried_vocabulary = model_vocabulary.load_assets(dir_path)

    def get_config(self):
        return {"config": self.config.to_dict(), "output_hidden_states": self.output_hidden_states,
                "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

"""AlbertServingModule: the tf.Module that tf.saved_model.save writes for TF Serving.

It holds the Keras model (so its variables are tracked and saved) and the in-graph
tokenizer (a tensorflow_text SentencepieceTokenizer built from the model proto bytes, a
tracked resource), and defines one tf.function per signature with explicit TensorSpecs.
Everything a signature does is TensorFlow and tensorflow-text ops, so the SavedModel runs
where only those two are imported, and in stock TF Serving.

The signatures every model has are here: encode (features in), tokenize, embed and
embed_pair (text in). The task that serves the model (albert_keras.tasks, found by the
model's class) adds its own: classify, tag, answer, fill_mask, ...; the first of them is
also serving_default, unless the task names another (the pretrainer's is embed).

Raw-text signatures pack to at most max_seq_length and then cut the padding to the
longest row of the batch (at least 2: [CLS] [SEP]), so short texts run short sequences.
A batch of 0 strings gives [0, 2] features and empty outputs.

SignatureDefs have no optional inputs in TF Serving (every declared input must be sent),
so "optional text_b" is a sibling signature: embed_pair, classify_pair.
"""

from __future__ import annotations

import tensorflow as tf

from albert_keras.models import AlbertBackbone
from albert_keras.tasks import task_of_model
from albert_keras.tasks.serving_ops import IDS, TEXT, trim_padding, valid_utf8
from albert_keras.tokenizer import pack_segments, tokenizer_for
from albert_keras.vocabulary import as_vocabulary

SHARED_SIGNATURES = ("embed", "embed_pair", "encode", "tokenize")


def signature_names(model) -> tuple:
    """The model's signatures, serving_default's first: its task's (the first of them is
    serving_default unless the task names another), then the shared ones."""
    task = serving_task(model)
    names = (task.signature_names if task else ()) + SHARED_SIGNATURES
    default = task.serving_default if task and task.serving_default else names[0]
    return (default,) + tuple(name for name in names if name != default)


def serving_task(model):
    """The task that serves `model`; None for a bare AlbertBackbone."""
    task = task_of_model(model)
    if task is None and not isinstance(model, AlbertBackbone):
        raise TypeError(f"No task serves a {type(model).__name__}; the exporter takes an "
                        f"AlbertBackbone or a model of a registered task (albert_keras.tasks)")
    return task


class AlbertServingModule(tf.Module):
    """The exported object: model + tokenizer + one tf.function per signature."""

    def __init__(self, model, vocabulary, *,
                 max_seq_length: int, lower_case: bool = True, **task_options):
        """task_options: the export options of the model's task (its export_options;
        None: the model's own settings)."""
        super().__init__(name="albert_serving")
        task = serving_task(model)
        config = model.config
        if not 4 <= max_seq_length <= config.max_position_embeddings:
            raise ValueError(f"max_seq_length must be in [4, {config.max_position_embeddings}] "
                             f"(the model's max_position_embeddings), got {max_seq_length}")
        vocabulary = as_vocabulary(vocabulary)  # SentencePiece or WordPiece
        self.tokenizer = tokenizer_for(vocabulary, lower_case=lower_case)
        self.pieces = list(vocabulary.pieces)  # id -> piece, for the string outputs
        if self.tokenizer.vocab_size > config.vocab_size:
            raise ValueError(f"The vocabulary has {self.tokenizer.vocab_size} pieces, "
                             f"more than the model's vocab_size {config.vocab_size}")
        self.model = model
        self.backbone = model if task is None else model.backbone
        self.max_seq_length = max_seq_length

        self.encode = tf.function(self._encode, input_signature=[IDS, IDS, IDS])
        self.tokenize = tf.function(self._tokenize, input_signature=[TEXT])
        self.embed = tf.function(self._embed, input_signature=[TEXT])
        self.embed_pair = tf.function(self._embed_pair, input_signature=[TEXT, TEXT])
        self._names = signature_names(model)
        if task is None:
            unknown = sorted(name for name, value in task_options.items() if value is not None)
            if unknown:
                raise ValueError(f"{unknown[0]} is not an export option of a backbone; it "
                                 f"takes none")
        else:
            settings = task.serving_settings(model, max_seq_length, **task_options)
            for name, function in task.signatures(self, settings).items():
                setattr(self, name, function)  # tracked: saved with the module

    def signatures(self) -> dict:
        functions = {name: getattr(self, name) for name in self._names}
        functions["serving_default"] = functions[self._names[0]]
        return functions

    # ------------------------------------------------------------ text -> features
    def pack(self, text, text_b=None):
        """Strings [batch] (, [batch]) -> int32 features [batch, longest row]."""
        tokens_a = self.tokenizer.tokenize(valid_utf8(text))
        tokens_b = None
        if text_b is not None:
            same_batch = tf.debugging.assert_equal(
                tf.size(text), tf.size(text_b),
                message="the two text inputs must have the same batch size")
            with tf.control_dependencies([same_batch]):
                tokens_b = self.tokenizer.tokenize(valid_utf8(text_b))
        features = pack_segments(tokens_a, tokens_b, seq_length=self.max_seq_length,
                                 special=self.tokenizer.special)
        return trim_padding(features)

    def piece_table(self):
        """id -> piece, as a string tensor."""
        return tf.constant(list(self.pieces), tf.string)

    def _backbone(self, features):
        outputs = self.backbone(features, training=False)
        return {"sequence_output": tf.cast(outputs["sequence_output"], tf.float32),
                "pooled_output": tf.cast(outputs["pooled_output"], tf.float32)}

    # ------------------------------------------------------------ shared signatures
    def _encode(self, input_ids, segment_ids, input_mask):
        features = {"input_ids": input_ids, "segment_ids": segment_ids, "input_mask": input_mask}
        shape = tf.shape(input_ids)
        checks = [tf.debugging.assert_equal(tf.shape(value), shape, message=(
            f"{name} must have the shape of input_ids")) for name, value in features.items()]
        checks.append(tf.debugging.assert_less_equal(
            shape[1], self.backbone.config.max_position_embeddings,
            message="sequences are longer than max_position_embeddings"))
        with tf.control_dependencies(checks):
            features = {name: tf.ensure_shape(tf.identity(value), [None, None])
                        for name, value in features.items()}
        return self._backbone(features)

    def _embed(self, text):
        features = self.pack(text)
        return dict(self._backbone(features), input_mask=features["input_mask"])

    def _embed_pair(self, text, text_b):
        features = self.pack(text, text_b)
        return dict(self._backbone(features), input_mask=features["input_mask"])

    def _tokenize(self, text):
        text = valid_utf8(text)
        ids = tf.cast(self.tokenizer.tokenize(text), tf.int32)
        pieces = tf.gather(self.piece_table(), ids)
        return {"ids": ids.to_tensor(0), "pieces": pieces.to_tensor(""),
                "token_count": tf.cast(ids.row_lengths(), tf.int32),
                "normalized_text": self.tokenizer.normalize(text)}

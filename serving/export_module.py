"""AlbertServingModule: the tf.Module that tf.saved_model.save writes for TF Serving.

It holds the Keras model (so its variables are tracked and saved) and the in-graph
tokenizer (a tensorflow_text SentencepieceTokenizer built from the model proto bytes, a
tracked resource), and defines one tf.function per signature with explicit TensorSpecs.
Everything a signature does is TensorFlow and tensorflow-text ops, so the SavedModel runs
where only those two are imported, and in stock TF Serving.

Raw-text signatures pack to at most max_seq_length and then cut the padding to the
longest row of the batch (at least 2: [CLS] [SEP]), so short texts run short sequences.
A batch of 0 strings gives [0, 2] features and empty outputs.

SignatureDefs have no optional inputs in TF Serving (every declared input must be sent),
so "optional text_b" is a sibling signature: embed_pair, classify_pair.

A question answerer's `answer` takes question and context strings and runs the windows
of albert_keras/data/squad_windows.py and the extraction of data/squad_answers.py,
the path evaluation runs, with the settings the model was fine-tuned and evaluated
with (its null threshold among them, which the exporter can override).

A tagger's `tag` splits raw text into words (albert_keras/data/word_split.py) and
`tag_words` takes words already split ([batch, words], "" as padding); both then run
the windows of albert_keras/data/tagging.py, the algorithm evaluation runs, with the
window length and stride the model was fine-tuned with.
"""

from __future__ import annotations

import tensorflow as tf

from albert_keras.data import tagging
from albert_keras.data.squad_answers import extract_answers
from albert_keras.data.squad_dataset import answering_settings
from albert_keras.data.squad_windows import squad_windows
from albert_keras.data.tag_spans import entity_bounds_graph, is_entity_tag_set
from albert_keras.data.word_split import split_words_graph
from albert_keras.models import (AlbertBackbone, AlbertClassifier, AlbertPretrainer,
                                 AlbertQuestionAnswerer, AlbertSquad2Answerer, AlbertTagger)
from albert_keras.special_tokens import CLS_ID, MASK_ID, SEP_ID
from albert_keras.tokenizer import AlbertTokenizer, pack_segments
from albert_keras.vocabulary import SentencePieceVocabulary

MASK_TEXT = "[MASK]"
_TEXT = tf.TensorSpec([None], tf.string)
_IDS = tf.TensorSpec([None, None], tf.int32)
_WORDS = tf.TensorSpec([None, None], tf.string)

# Signatures by model kind; the first is also exported as serving_default.
SIGNATURES = {
    "pretrainer": ("embed", "embed_pair", "encode", "fill_mask", "sentence_order", "tokenize"),
    "classifier": ("classify", "classify_pair", "embed", "embed_pair", "encode", "tokenize"),
    "tagger": ("tag", "tag_words", "embed", "embed_pair", "encode", "tokenize"),
    "question_answerer": ("answer", "embed", "embed_pair", "encode", "tokenize"),
    "backbone": ("embed", "embed_pair", "encode", "tokenize"),
}


def model_kind(model) -> str:
    """"pretrainer", "classifier", "tagger", "question_answerer" or "backbone", by the
    model's type."""
    if isinstance(model, AlbertPretrainer):
        return "pretrainer"
    if isinstance(model, AlbertClassifier):
        return "classifier"
    if isinstance(model, AlbertTagger):
        return "tagger"
    if isinstance(model, (AlbertQuestionAnswerer, AlbertSquad2Answerer)):
        return "question_answerer"
    if isinstance(model, AlbertBackbone):
        return "backbone"
    raise TypeError(
        "Only AlbertPretrainer, AlbertClassifier, AlbertTagger, AlbertQuestionAnswerer, "
        f"AlbertSquad2Answerer and AlbertBackbone models can be exported, got "
        f"{type(model).__name__}")


def _valid_utf8(text, shape=(None,)):
    """Checks that text has `shape` (a SavedModel signature does not check fed shapes),
    and turns invalid UTF-8 into U+FFFD, so normalisation and SentencePiece never see it."""
    text = tf.ensure_shape(text, shape)
    return tf.strings.unicode_transcode(
        text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)


def _trim_padding(features):
    """Cuts [batch, max_seq_length] features to the longest row (at least 2 columns)."""
    lengths = tf.reduce_sum(features["input_mask"], axis=1)
    width = tf.maximum(tf.reduce_max(lengths), 2)  # reduce_max of 0 rows is INT_MIN
    return {name: value[:, :width] for name, value in features.items()}


def _group_size_at(lengths, begin, group_size: int, max_padding: float):
    """How many windows, from `begin` in ascending length order, the group starting
    there takes: the most, up to group_size, whose padding to the longest of them stays
    within max_padding of their real tokens (at least 1)."""
    sizes = tf.range(1, group_size + 1)
    count = tf.size(lengths)
    ends = tf.minimum(begin + sizes, count)
    running = tf.concat([[0], tf.cumsum(lengths)], axis=0)
    real = tf.cast(tf.gather(running, ends) - running[begin], tf.float32)
    # The longest of each candidate group (a 0 in place of none, for 0 windows).
    longest = tf.gather(tf.concat([lengths, [0]], axis=0), tf.maximum(ends - 1, 0))
    padded = tf.cast(sizes * longest, tf.float32)
    fits = (begin + sizes <= count) & (padded <= (1.0 + max_padding) * real)
    return tf.reduce_max(tf.where(fits, sizes, 1))


def _forward_in_length_groups(model, features, positional: tuple, min_width: int = 2,
                              group_size: int = 2, max_padding: float = 0.05):
    """The model's outputs over windows of mixed lengths, as model(_trim_padding(features))
    gives them, computed in groups of similar length: the windows sorted by length, each
    group the next up to group_size windows whose padding to the group's longest is at
    most max_padding of their real tokens, cut to that length (at least min_width
    columns). Outputs named in `positional` have a position axis (axis 1); they come back
    padded with 0 to the batch's width. Padding changes no real position's output (it is
    masked in attention), so this only skips the work on padding: a batch of short and
    long windows otherwise pays for every window at the longest one's length.

    Measured on a 2-core CPU (the QA benchmark's 35 windows of 32 questions): pairs were
    1.04x faster than single windows at 1.8% padding, and groups of 4 and 8 slower than
    pairs (1.12x and 1.23x the time); a pair that would pad more than 5% (such as a
    question's 384-piece window with its 150-piece last one) runs as two."""
    lengths = tf.reduce_sum(features["input_mask"], axis=1)
    width = tf.maximum(tf.reduce_max(lengths), 2)
    order = tf.argsort(lengths, stable=True)
    lengths = tf.gather(lengths, order)
    ordered = {name: tf.gather(value, order) for name, value in features.items()}
    count = tf.size(lengths)

    def run(begin):
        size = _group_size_at(lengths, begin, group_size, max_padding)
        part = {name: value[begin:begin + size] for name, value in ordered.items()}
        group_width = tf.minimum(
            tf.maximum(tf.reduce_max(tf.reduce_sum(part["input_mask"], axis=1)), min_width),
            width)
        outputs = model({name: value[:, :group_width] for name, value in part.items()},
                        training=False)
        return size, {name: (tf.pad(value, [[0, 0], [0, width - group_width]])
                             if name in positional else value)
                      for name, value in outputs.items()}

    # The first group (no windows when there are none) also gives the output names and
    # dtypes; the loop runs the rest.
    taken, first = run(0)
    names = sorted(first)
    arrays = [tf.TensorArray(first[name].dtype, size=1, dynamic_size=True, infer_shape=False
                             ).write(0, first[name]) for name in names]

    def body(i, begin, arrays):
        size, outputs = run(begin)
        return (i + 1, begin + size,
                [array.write(i, outputs[name]) for array, name in zip(arrays, names)])

    _, _, arrays = tf.while_loop(lambda i, begin, _: begin < count, body,
                                 [tf.constant(1), tf.minimum(taken, count), arrays])
    restore = tf.math.invert_permutation(order)
    return {name: tf.gather(array.concat(), restore) for name, array in zip(names, arrays)}


class AlbertServingModule(tf.Module):
    """The exported object: model + tokenizer + one tf.function per signature."""

    def __init__(self, model, vocabulary: SentencePieceVocabulary | bytes, *,
                 max_seq_length: int,
                 lower_case: bool = True, top_k: int = 5, window_stride: int | None = None,
                 answer_settings: dict | None = None):
        super().__init__(name="albert_serving")
        self.kind = model_kind(model)
        config = model.config
        if not 4 <= max_seq_length <= config.max_position_embeddings:
            raise ValueError(f"max_seq_length must be in [4, {config.max_position_embeddings}] "
                             f"(the model's max_position_embeddings), got {max_seq_length}")
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        vocabulary = SentencePieceVocabulary.of(vocabulary)
        self.tokenizer = AlbertTokenizer(vocabulary, lower_case=lower_case)
        self.pieces = list(vocabulary.pieces)  # id -> piece, for the string outputs
        if self.tokenizer.vocab_size > config.vocab_size:
            raise ValueError(f"The SentencePiece model has {self.tokenizer.vocab_size} pieces, "
                             f"more than the model's vocab_size {config.vocab_size}")
        self.model = model
        self.backbone = model if self.kind == "backbone" else model.backbone
        self.max_seq_length = max_seq_length
        self.top_k = min(top_k, config.vocab_size)
        if self.kind == "classifier":
            self.task_type = model.task_type
            self.label_names = model.label_names or [str(i) for i in range(model.num_labels)]
        if self.kind == "tagger":
            self.tag_names = list(model.tag_names)
            self.entity_tags = is_entity_tag_set(self.tag_names)
            self.window_stride = window_stride or tagging.default_stride(max_seq_length)
            tagging.check_window(max_seq_length, self.window_stride)
        if self.kind == "question_answerer":
            self.window_settings, self.answer_settings = answering_settings(
                answer_settings or {}, max_seq_length)
            # The span head's logits have a position axis; the reference head's beam
            # needs as many positions as it keeps starts and ends.
            beam = max(getattr(model, "start_n_top", 0), getattr(model, "end_n_top", 0))
            self._answer_forward = (dict(positional=("start_log_probs",),
                                         min_width=max(beam, 2)) if beam
                                    else dict(positional=("start_logits", "end_logits")))

        self.encode = tf.function(self._encode, input_signature=[_IDS, _IDS, _IDS])
        self.tokenize = tf.function(self._tokenize, input_signature=[_TEXT])
        self.embed = tf.function(self._embed, input_signature=[_TEXT])
        self.embed_pair = tf.function(self._embed_pair, input_signature=[_TEXT, _TEXT])
        if self.kind == "pretrainer":
            self.fill_mask = tf.function(self._fill_mask, input_signature=[_TEXT])
            self.sentence_order = tf.function(self._sentence_order,
                                              input_signature=[_TEXT, _TEXT])
        if self.kind == "classifier":
            self.classify = tf.function(self._classify, input_signature=[_TEXT])
            self.classify_pair = tf.function(self._classify_pair, input_signature=[_TEXT, _TEXT])
        if self.kind == "tagger":
            self.tag = tf.function(self._tag, input_signature=[_TEXT])
            self.tag_words = tf.function(self._tag_words, input_signature=[_WORDS])
        if self.kind == "question_answerer":
            self.answer = tf.function(self._answer, input_signature=[_TEXT, _TEXT])

    def signatures(self) -> dict:
        names = SIGNATURES[self.kind]
        functions = {name: getattr(self, name) for name in names}
        functions["serving_default"] = functions[names[0]]
        return functions

    # ------------------------------------------------------------ text -> features
    def pack(self, text, text_b=None):
        """Strings [batch] (, [batch]) -> int32 features [batch, longest row]."""
        tokens_a = self.tokenizer.tokenize(_valid_utf8(text))
        tokens_b = None
        if text_b is not None:
            same_batch = tf.debugging.assert_equal(
                tf.size(text), tf.size(text_b),
                message="the two text inputs must have the same batch size")
            with tf.control_dependencies([same_batch]):
                tokens_b = self.tokenizer.tokenize(_valid_utf8(text_b))
        features = pack_segments(tokens_a, tokens_b, seq_length=self.max_seq_length)
        return _trim_padding(features)

    def pack_with_masks(self, text):
        """Splits each text on the literal [MASK], tokenizes the parts and joins them with
        MASK_ID (SentencePiece alone would cut "[MASK]" into ordinary pieces)."""
        parts = tf.strings.split(_valid_utf8(text), sep=MASK_TEXT)  # [batch, (parts)]
        part_tokens = self.tokenizer.tokenize(parts.flat_values)  # [parts, (tokens)]
        # Every part but the last of its row is followed by one MASK_ID.
        index_in_row = tf.cast(tf.ragged.range(parts.row_lengths()).flat_values, tf.int32)
        row_of_part = tf.cast(parts.value_rowids(), tf.int32)
        parts_in_row = tf.cast(tf.gather(parts.row_lengths(), row_of_part), tf.int32)
        followed_by_mask = tf.cast(index_in_row < parts_in_row - 1, tf.int32)
        masks = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.reduce_sum(followed_by_mask)], tf.constant(MASK_ID, tf.int32)),
            followed_by_mask).with_row_splits_dtype(part_tokens.row_splits.dtype)
        joined = tf.concat([tf.cast(part_tokens, tf.int32), masks], axis=1)
        tokens = tf.RaggedTensor.from_row_splits(joined, parts.row_splits).merge_dims(1, 2)
        return _trim_padding(pack_segments(tokens, seq_length=self.max_seq_length))

    def _vocabulary(self):
        return tf.constant(list(self.pieces), tf.string)

    def _backbone(self, features):
        outputs = self.backbone(features, training=False)
        return {"sequence_output": tf.cast(outputs["sequence_output"], tf.float32),
                "pooled_output": tf.cast(outputs["pooled_output"], tf.float32)}

    # ------------------------------------------------------------ signatures
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
        text = _valid_utf8(text)
        ids = tf.cast(self.tokenizer.tokenize(text), tf.int32)
        pieces = tf.gather(self._vocabulary(), ids)
        return {"ids": ids.to_tensor(0), "pieces": pieces.to_tensor(""),
                "token_count": tf.cast(ids.row_lengths(), tf.int32),
                "normalized_text": self.tokenizer.normalize(text)}

    def _sentence_order(self, text_a, text_b):
        features = self.pack(text_a, text_b)
        # The pooler reads row 0 only: the last block computes just that row.
        first_row = tf.zeros_like(features["input_ids"][:, :1])
        pooled = self.backbone.pooler(self.backbone.sequence_output_at(features, first_row))
        logits = tf.cast(self.model.sop_head(pooled, training=False), tf.float32)
        # Class 0 is "segments in their original order".
        return {"original_order_probability": tf.nn.softmax(logits)[:, 0],
                "sop_logits": logits}

    def _mlm_logits(self, features, positions):
        """The pretrainer's mlm_logits [batch, masks, V] for any batch and mask count.

        The MLM head's gather fails on a batch of 0 rows or 0 positions, so the model
        always runs on one extra ([CLS] [SEP]) row and at least one position, and those
        are cut from the result.
        """
        batch, masks = tf.shape(positions)[0], tf.shape(positions)[1]
        width = tf.shape(features["input_ids"])[1]
        extra_row = {
            "input_ids": tf.pad(tf.constant([[CLS_ID, SEP_ID]]), [[0, 0], [0, width - 2]]),
            "segment_ids": tf.zeros([1, width], tf.int32),
            "input_mask": tf.pad(tf.ones([1, 2], tf.int32), [[0, 0], [0, width - 2]]),
        }
        padded = {name: tf.concat([value, extra_row[name]], axis=0)
                  for name, value in features.items()}
        padded["masked_lm_positions"] = tf.pad(
            positions, [[0, 1], [0, tf.maximum(1 - masks, 0)]])
        logits = self.model(padded, training=False)["mlm_logits"]
        return tf.cast(logits[:batch, :masks], tf.float32)

    def _fill_mask(self, text):
        features = self.pack_with_masks(text)
        is_mask = tf.equal(features["input_ids"], MASK_ID)
        positions = tf.ragged.boolean_mask(
            tf.broadcast_to(tf.range(tf.shape(is_mask)[1]), tf.shape(is_mask)), is_mask)
        mask_count = tf.cast(positions.row_lengths(), tf.int32)
        dense_positions = positions.to_tensor(0)  # [batch, max masks]
        logits = self._mlm_logits(features, dense_positions)
        probabilities = tf.nn.softmax(logits)
        top_probabilities, top_ids = tf.math.top_k(probabilities, k=self.top_k)
        # Slots past a row's mask_count are padding: id 0, piece "", probability 0.
        real = tf.sequence_mask(mask_count, tf.shape(dense_positions)[1])[:, :, None]
        top_ids = tf.where(real, top_ids, 0)
        return {"top_ids": top_ids,
                "top_pieces": tf.where(real, tf.gather(self._vocabulary(), top_ids),
                                       ""),
                "top_probabilities": tf.where(real, top_probabilities, 0.0),
                "mask_positions": dense_positions,
                "mask_count": mask_count}

    def _classifier_outputs(self, features):
        logits = tf.cast(self.model(features, training=False), tf.float32)
        if self.task_type == "regression":
            return {"score": logits[:, 0]}
        label_id = tf.cast(tf.argmax(logits, axis=-1), tf.int32)
        return {"probabilities": tf.nn.softmax(logits), "logits": logits,
                "label_id": label_id,
                "label": tf.gather(tf.constant(self.label_names, tf.string), label_id)}

    def _classify(self, text):
        return self._classifier_outputs(self.pack(text))

    def _classify_pair(self, text, text_b):
        return self._classifier_outputs(self.pack(text, text_b))

    # ------------------------------------------------------------ tagging
    def _tag_ragged(self, words):
        """Words [batch, (words)] -> (tag ids, tag probabilities), both [batch, (words)]."""
        windows = tagging.word_windows(self.tokenizer, words, self.max_seq_length,
                                       self.window_stride)
        logits = tf.cast(self.model(_trim_padding(windows["features"]), training=False),
                         tf.float32)
        probabilities = tf.nn.softmax(tagging.word_logits(windows, logits))
        ids = tf.cast(tf.argmax(probabilities, axis=-1), tf.int32)
        splits = words.row_splits
        return (tf.RaggedTensor.from_row_splits(ids, splits),
                tf.RaggedTensor.from_row_splits(tf.reduce_max(probabilities, axis=-1), splits))

    def _tag_names(self):
        return tf.constant(self.tag_names, tf.string)

    def _tag_words(self, words):
        """Words [batch, width], "" as padding -> tags in the same places ("" at padding)."""
        words = _valid_utf8(words, shape=(None, None))
        is_word = tf.not_equal(words, "")
        ids, scores = self._tag_ragged(tf.ragged.boolean_mask(words, is_word))
        places = tf.where(is_word)
        shape = tf.shape(words, out_type=tf.int64)
        return {
            "tags": tf.tensor_scatter_nd_update(
                tf.fill(tf.shape(words), ""), places,
                tf.gather(self._tag_names(), ids.flat_values)),
            "tag_ids": tf.scatter_nd(places, ids.flat_values + 1, shape) - 1,  # -1: padding
            "scores": tf.scatter_nd(places, scores.flat_values, shape),
            "word_count": tf.cast(ids.row_lengths(), tf.int32),
        }

    def _tag(self, text):
        text = _valid_utf8(text)
        words, starts, ends = split_words_graph(text)
        ids, scores = self._tag_ragged(words)
        outputs = {
            "words": words.to_tensor(""),
            "tags": tf.gather(self._tag_names(), ids).to_tensor(""),
            "tag_ids": ids.to_tensor(-1),
            "scores": scores.to_tensor(0.0),
            "word_start": starts.to_tensor(-1),
            "word_end": ends.to_tensor(-1),
            "word_count": tf.cast(words.row_lengths(), tf.int32),
        }
        if self.entity_tags:
            entities = entity_bounds_graph(ids, self.tag_names)
            start = tf.gather(starts, entities["first"], batch_dims=1)
            end = tf.gather(ends, entities["last"], batch_dims=1)
            row_text = tf.gather(text, tf.cast(start.value_rowids(), tf.int32))
            entity_text = tf.strings.substr(row_text, start.flat_values,
                                            end.flat_values - start.flat_values,
                                            unit="UTF8_CHAR")
            outputs.update(
                entity_text=start.with_flat_values(entity_text).to_tensor(""),
                entity_type=entities["type"].to_tensor(""),
                entity_start=start.to_tensor(-1), entity_end=end.to_tensor(-1),
                entity_count=tf.cast(start.row_lengths(), tf.int32))
        return outputs

    # ------------------------------------------------------------ question answering
    def _answer(self, question, context):
        """Questions and contexts [batch] -> the answer text, its code-point start and
        end in the context (-1 for none), its score; SQuAD 2.0 models also the
        no-answer score (null_odds) and whether the answer is "no answer"."""
        question, context = _valid_utf8(question), _valid_utf8(context)
        same_batch = tf.debugging.assert_equal(
            tf.size(question), tf.size(context),
            message="question and context must have the same batch size")
        with tf.control_dependencies([same_batch]):
            windows = squad_windows(self.tokenizer, question, context, self.window_settings)
        outputs = _forward_in_length_groups(self.model, windows["features"],
                                            **self._answer_forward)
        found = extract_answers(windows, outputs, context, self.answer_settings)
        outputs = {"answer": found["text"], "answer_start": found["start"],
                   "answer_end": found["end"], "score": found["score"]}
        if self.answer_settings.version_2:
            outputs.update(no_answer_score=found["null_odds"],
                           no_answer=tf.equal(found["start"], -1))
        return outputs

"""Word tagging (part of speech, named entities): the Task object. Its pieces:
settings.py (config section, TaggingSettings), data.py (tagged files, windows, the
dataset and the evaluation path), spans.py (entity chunks), word_split.py (raw text
into words), metrics.py (accuracy, conlleval F1), models/tagger.py (AlbertTagger);
serving signatures tag (raw text) and tag_words (words already split).

The signatures run the windows of data.py, the algorithm evaluation runs, with the
window length and stride the model was fine-tuned with (its TaggingSettings)."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from albert_keras.atomic_file import atomic_path
from albert_keras.models.tagger import AlbertTagger
from albert_keras.tasks.serving_ops import TEXT, WORDS, trim_padding, valid_utf8
from albert_keras.tasks.tagging import data as tagging
from albert_keras.tasks.tagging.metrics import tagging_metrics
from albert_keras.tasks.tagging.settings import TaggingConfig, TaggingSettings
from albert_keras.tasks.tagging.spans import entity_bounds_graph, is_entity_tag_set
from albert_keras.tasks.tagging.word_split import split_words_graph
from albert_keras.tasks.task import Task


class TaggingData:
    """The tagging files, read and checked: sentences and tag ids of train and eval."""

    def __init__(self, experiment, damaged=None):
        section = experiment.task

        def read(path):
            return tagging.read_tagged_file(path, section.data_format or None,
                                            section.tag_column or None, damaged)

        self.train = read(experiment.train_file)
        self.num_train = len(self.train)
        self.tag_names = ([str(name) for name in section.label_names]
                          if section.label_names else tagging.tag_names_of(self.train))
        self.train_ids = tagging.tag_ids(self.train, self.tag_names, experiment.train_file)
        self.eval = read(experiment.eval_file) if experiment.eval_file else []
        self.eval_ids = (tagging.tag_ids(self.eval, self.tag_names, experiment.eval_file)
                         if self.eval else [])
        self.settings = section.settings(experiment.seq_length)


class TaggingTask(Task):
    name = "tagging"
    config_class = TaggingConfig
    model_classes = (AlbertTagger,)
    signature_names = ("tag", "tag_words")
    example_inputs = {
        "tag": {"text": np.array([b"The quick brown fox jumps over the lazy dog.",
                                  b"A short one."])},
        "tag_words": {"words": np.array([[b"The", b"quick", b"brown", b"fox", b"."],
                                         [b"A", b"short", b"one", b".", b""]])},
    }
    export_options = {"window_stride": dict(
        type=int, help="taggers: pieces between the windows of a long sentence (default: "
                       "the fine-tuning run's with its max_seq_length, else half a window)")}
    client_options = {"words": dict(
        action="append", help="tag_words: one sentence's words, split by spaces; repeat "
                              "for a batch")}

    # ------------------------------------------------------------ fine-tuning
    def read_data(self, experiment, damaged):
        return TaggingData(experiment, damaged)

    def build_model(self, backbone, experiment, data):
        return AlbertTagger(backbone=backbone, tag_names=data.tag_names,
                            dropout=experiment.task.classifier_dropout,
                            settings=data.settings)

    def dataset(self, experiment, data, tokenizer, training, batch_size, input_context=None):
        sentences, ids = ((data.train, data.train_ids) if training
                          else (data.eval, data.eval_ids))
        return tagging.tagging_dataset(
            sentences, ids, tokenizer, data.settings.window_length,
            data.settings.window_stride, batch_size, training=training,
            input_context=input_context, seed=experiment.seed)

    def evaluate(self, model, experiment, data, tokenizer, output_dir):
        """Tags every eval sentence (the path the exported tag_words signature takes)
        and scores the words; writes eval_predictions.tsv (word, gold, predicted; a
        blank line between sentences)."""
        forward = tf.function(lambda features: model(features, training=False),
                              reduce_retracing=True)
        names = data.tag_names
        predicted = tagging.predict_tags(forward, tokenizer, data.eval,
                                         data.settings.window_length,
                                         data.settings.window_stride, names)
        gold = [list(sentence.tags) for sentence in data.eval]
        with atomic_path(os.path.join(output_dir, "eval_predictions.tsv")) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                for sentence, tags in zip(data.eval, predicted):
                    f.writelines(f"{w}\t{g}\t{p}\n" for w, g, p in zip(
                        sentence.words, sentence.tags, tags))
                    f.write("\n")
        results = tagging_metrics(gold, predicted, entity_tags=is_entity_tag_set(names))
        return dict(results, num_examples=len(data.eval))

    # ------------------------------------------------------------ serving
    def serving_length(self, model) -> int:
        return (model.settings.window_length if model.settings
                else model.config.max_position_embeddings)

    def serving_settings(self, model, max_seq_length, window_stride=None, **options):
        """The model's windows at max_seq_length: its stride when it was fine-tuned with
        that length, else window_stride, else half a window."""
        self.check_options(options)
        stride = window_stride or None  # 0, as in the config section: half a window
        if stride is None and model.settings and model.settings.window_length == max_seq_length:
            stride = model.settings.window_stride
        return TaggingSettings(max_seq_length, stride)

    def signatures(self, module, settings) -> dict:
        tagger = _Tagger(module, settings)
        return {"tag": tf.function(tagger.tag, input_signature=[TEXT]),
                "tag_words": tf.function(tagger.tag_words, input_signature=[WORDS])}

    def client_inputs(self, signature, args):
        if not args.words:
            return None
        split = [row.split() for row in args.words]
        width = max((len(words) for words in split), default=0)
        return {"words": [words + [""] * (width - len(words)) for words in split]}


class _Tagger:
    """The tagging signatures over a serving module (plain Python: the module tracks
    the model and tokenizer they use)."""

    def __init__(self, module, settings: TaggingSettings):
        self.module = module
        self.settings = settings
        self.tag_names = list(module.model.tag_names)
        self.entity_tags = is_entity_tag_set(self.tag_names)

    def _tag_ragged(self, words):
        """Words [batch, (words)] -> (tag ids, tag probabilities), both [batch, (words)]."""
        windows = tagging.word_windows(self.module.tokenizer, words,
                                       self.settings.window_length,
                                       self.settings.window_stride)
        logits = tf.cast(self.module.model(trim_padding(windows["features"]), training=False),
                         tf.float32)
        probabilities = tf.nn.softmax(tagging.word_logits(windows, logits))
        ids = tf.cast(tf.argmax(probabilities, axis=-1), tf.int32)
        splits = words.row_splits
        return (tf.RaggedTensor.from_row_splits(ids, splits),
                tf.RaggedTensor.from_row_splits(tf.reduce_max(probabilities, axis=-1), splits))

    def _tag_name_table(self):
        return tf.constant(self.tag_names, tf.string)

    def tag_words(self, words):
        """Words [batch, width], "" as padding -> tags in the same places ("" at padding)."""
        words = valid_utf8(words, shape=(None, None))
        is_word = tf.not_equal(words, "")
        ids, scores = self._tag_ragged(tf.ragged.boolean_mask(words, is_word))
        places = tf.where(is_word)
        shape = tf.shape(words, out_type=tf.int64)
        return {
            "tags": tf.tensor_scatter_nd_update(
                tf.fill(tf.shape(words), ""), places,
                tf.gather(self._tag_name_table(), ids.flat_values)),
            "tag_ids": tf.scatter_nd(places, ids.flat_values + 1, shape) - 1,  # -1: padding
            "scores": tf.scatter_nd(places, scores.flat_values, shape),
            "word_count": tf.cast(ids.row_lengths(), tf.int32),
        }

    def tag(self, text):
        text = valid_utf8(text)
        words, starts, ends = split_words_graph(text)
        ids, scores = self._tag_ragged(words)
        outputs = {
            "words": words.to_tensor(""),
            "tags": tf.gather(self._tag_name_table(), ids).to_tensor(""),
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


TASKS = (TaggingTask(),)

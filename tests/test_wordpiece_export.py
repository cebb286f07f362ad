"""Every task's signatures with a WordPiece vocabulary, on Chinese text: fill_mask (the
vocabulary's own [MASK] id), tag_words and answer equal the Python evaluation paths
(which run the same models on the same tokenizer), answers slice the context exactly."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from albert_keras import AlbertConfig, AlbertPretrainer, AlbertQuestionAnswerer, AlbertTagger
from albert_keras.models.model_vocabulary import attach_vocabulary
from albert_keras.tasks.question_answering.dataset import predict_answers
from albert_keras.tasks.question_answering.settings import (AnswerSettings, AnsweringSettings,
                                                           WindowSettings)
from albert_keras.tasks.question_answering.squad_files import SquadExample
from albert_keras.tasks.tagging import data as tagging
from albert_keras.tasks.tagging.settings import default_stride
from albert_keras.tokenizer import tokenizer_for
from albert_keras.vocabulary import read_vocabulary
from albert_keras.wordpiece import WordPieceTokenizer
from data_fixtures import sib200_sentences, wordpiece_vocab_file
from serving import export as export_lib

# The module-scoped fixtures are built once, on one worker.
pytestmark = pytest.mark.xdist_group("wordpiece_export")

LENGTH = 32
TAGS = ["O", "B-LOC", "I-LOC"]


@pytest.fixture(scope="module")
def vocabulary():
    return read_vocabulary(wordpiece_vocab_file())


@pytest.fixture(scope="module")
def served(vocabulary, tmp_path_factory):
    """kind -> (model, the reloaded SavedModel), each exported with no vocabulary flag."""
    config = AlbertConfig(vocab_size=vocabulary.size, embedding_size=16, hidden_size=32,
                          num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          max_position_embeddings=64)
    keras.utils.set_random_seed(9)
    models = {"pretrainer": AlbertPretrainer(config),
              "tagger": AlbertTagger(config, tag_names=TAGS),
              "question_answerer": AlbertQuestionAnswerer(config)}
    models["question_answerer"].settings = AnsweringSettings(
        WindowSettings(LENGTH, doc_stride=8, max_query_length=8), AnswerSettings())
    result = {}
    for kind, model in models.items():
        attach_vocabulary(model, vocabulary, lower_case=True)
        path = export_lib.export(model, None, str(tmp_path_factory.mktemp(kind)), version=1,
                                 max_seq_length=LENGTH)
        result[kind] = (model, tf.saved_model.load(path))
    return result


def test_fill_mask_uses_the_vocabularys_mask(served, vocabulary):
    model, loaded = served["pretrainer"]
    texts = ["北京是[MASK]国的首都。", "[MASK]天气很好，emma去[MASK]London。", "没有"]
    out = loaded.signatures["fill_mask"](text=tf.constant(texts))
    python = WordPieceTokenizer(vocabulary)
    special = vocabulary.special
    rows = []
    for text in texts:
        ids = []
        for i, part in enumerate(text.split("[MASK]")):
            ids += ([special.mask] if i else []) + python.tokenize(part)
        rows.append([special.cls, *ids, special.sep])
    width = max(map(len, rows))
    ids = np.array([r + [0] * (width - len(r)) for r in rows], "int32")
    positions = [list(np.flatnonzero(row == special.mask)) for row in ids]
    assert out["mask_count"].numpy().tolist() == [1, 2, 0]
    dense = np.array([p + [0] * (2 - len(p)) for p in positions], "int32")
    np.testing.assert_array_equal(out["mask_positions"].numpy(), dense)
    logits = model({"input_ids": ids, "segment_ids": np.zeros_like(ids),
                    "input_mask": (ids > 0).astype("int32") | (np.arange(width) == 0),
                    "masked_lm_positions": dense})["mlm_logits"].numpy()
    top = np.argsort(-logits, axis=-1)[..., :5]
    for row, count in enumerate([1, 2, 0]):
        np.testing.assert_array_equal(out["top_ids"].numpy()[row, :count], top[row, :count])
        assert all(p == vocabulary.pieces[i] for p, i in zip(
            [x.decode() for x in out["top_pieces"].numpy()[row, :count].ravel()],
            top[row, :count].ravel()))


def test_tag_words_equals_the_evaluation_path(served, vocabulary):
    model, loaded = served["tagger"]
    sentences = [list(s[:40]) for s in sib200_sentences("zho_Hans", "dev")[:4]]
    sentences.append(["北京", "Emma", "，", "全角ＡＢＣ", "\x00"])
    words = tf.ragged.constant(sentences).to_tensor("")
    out = loaded.signatures["tag_words"](words=words)
    tokenizer = tokenizer_for(vocabulary)
    logits = tagging.predict_word_logits(
        lambda features: model(features, training=False), tokenizer,
        [tagging.TaggedSentence(tuple(s), ("O",) * len(s), (0,) * len(s)) for s in sentences],
        LENGTH, default_stride(LENGTH))
    for row, sentence in enumerate(sentences):
        expected = tf.nn.softmax(logits[row]).numpy().argmax(-1)
        assert out["word_count"].numpy()[row] == len(sentence)
        np.testing.assert_array_equal(out["tag_ids"].numpy()[row, :len(sentence)], expected)


def test_answer_equals_the_evaluation_path_and_slices_the_context(served, vocabulary):
    model, loaded = served["question_answerer"]
    contexts = sib200_sentences("zho_Hans", "dev")[10:16]
    contexts[1] = contexts[1] + "Emma在London，全角１２３。" * 3  # several windows
    questions = ["哪里？", "谁在London？", "什么", "为什么？", "多少", "\x00是什么\x00"]
    out = loaded.signatures["answer"](question=tf.constant(questions),
                                      context=tf.constant(contexts))
    expected = predict_answers(
        lambda features: model(features, training=False), tokenizer_for(vocabulary),
        [SquadExample(str(i), q, c, (), False) for i, (q, c) in
         enumerate(zip(questions, contexts))],
        model.settings.windows, model.settings.answers)
    for i, context in enumerate(contexts):
        start, end = int(out["answer_start"][i]), int(out["answer_end"][i])
        text = out["answer"][i].numpy().decode("utf-8")
        assert (text, start, end) == (expected[i]["text"], expected[i]["start"],
                                      expected[i]["end"]), i
        if start >= 0:
            assert context[start:end] == text and text

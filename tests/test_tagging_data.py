"""Word tagging data: the three readers and their errors, the windows against a plain
Python statement of the rule, word splitting (graph against Python), entity chunking
(hand-made cases, seqeval, graph against Python) and the word-level metrics."""

import json
import random

import numpy as np
import pytest
import tensorflow as tf

from albert_keras.tasks.tagging import data as tagging
from albert_keras.tasks.tagging.spans import entity_bounds_graph, entity_spans, is_entity_tag_set
from albert_keras.tasks.tagging.word_split import split_words, split_words_graph
from albert_keras.tokenizer import AlbertTokenizer
from data_fixtures import VARIED_TEXT, WORDS, tiny_spm_model
from albert_keras.tasks.tagging.metrics import tagging_metrics

CONLLU = """# sent_id = 1
# text = I don't know.
1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
3.1\tknow\tknow\tVERB\tVB\t_\t_\t_\t_\t_
4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\t_
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

# sent_id = 2
1\tYes\tyes\tINTJ\tUH\t_\t0\troot\t_\t_
"""

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER
"""


@pytest.fixture(scope="module")
def tokenizer():
    return AlbertTokenizer.from_file(tiny_spm_model())


# ---------------------------------------------------------------- readers
def test_conllu_skips_comments_ranges_and_empty_nodes(tmp_path):
    path = tmp_path / "a.conllu"
    path.write_text(CONLLU, "utf-8")
    first, second = tagging.read_tagged_file(str(path))
    assert first.words == ("I", "do", "n't", "know", ".")
    assert first.tags == ("PRON", "AUX", "PART", "VERB", "PUNCT")
    assert first.lines == (3, 5, 6, 8, 9)
    assert second.words == ("Yes",) and second.tags == ("INTJ",) and second.lines == (12,)
    xpos = tagging.read_tagged_file(str(path), tag_column=5)
    assert xpos[0].tags == ("PRP", "VBP", "RB", "VB", ".")


def test_conll_columns_choose_the_tag_column(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text(CONLL, "utf-8")
    sentences = tagging.read_tagged_file(str(path))
    assert [s.words for s in sentences] == [("EU", "rejects", "German"), ("Peter", "Blackburn")]
    assert sentences[0].tags == ("B-ORG", "O", "B-MISC")
    chunks = tagging.read_tagged_file(str(path), tag_column=3)
    assert chunks[1].tags == ("B-NP", "I-NP")
    assert tagging.tag_names_of(sentences) == ["B-MISC", "B-ORG", "B-PER", "I-PER", "O"]


def test_jsonl_and_its_errors(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"tokens": ["a", "b"], "tags": ["X", "Y"]}) + "\n\n", "utf-8")
    (sentence,) = tagging.read_tagged_file(str(path))
    assert sentence.words == ("a", "b") and sentence.lines == (1, 1)
    for row, message in (({"tokens": ["a"], "tags": []}, "1 tokens but 0 tags"),
                         ({"tokens": [], "tags": []}, "an empty sentence"),
                         ({"tokens": ["a"]}, "'tokens' and 'tags'"),
                         ({"tokens": [" "], "tags": ["X"]}, "an empty word")):
        path.write_text(json.dumps({"tokens": ["ok"], "tags": ["X"]}) + "\n"
                        + json.dumps(row) + "\n", "utf-8")
        with pytest.raises(ValueError, match=f"a.jsonl:2: .*{message}"):
            tagging.read_tagged_file(str(path))


@pytest.mark.parametrize("name, text, message", [
    ("bad.conllu", "1\tA\ta\tNOUN\n", "bad.conllu:1: 4 tab-separated columns; CoNLL-U has 10"),
    ("bad.conllu", CONLLU.replace("1\tYes\tyes\tINTJ", "1\tYes\tyes\t_"),
     "bad.conllu:12: word 'Yes' has no tag"),
    ("bad.conllu", "# only\n1-2\tab\t_\t_\t_\t_\t_\t_\t_\t_\n\n",
     "bad.conllu:2: a sentence with no words"),
    ("bad.txt", "EU NNP B-ORG\nrejects O\n", "bad.txt:2: 2 columns, but the file's first"),
    ("bad.txt", "EU\n", "bad.txt:1: one column"),
    ("bad.txt", "\n\n", "bad.txt: no sentences"),
])
def test_bad_files_name_the_file_and_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text, "utf-8")
    with pytest.raises(ValueError, match=message):
        tagging.read_tagged_file(str(path))


def test_unknown_tag_names_file_and_line(tmp_path):
    path = tmp_path / "dev.txt"
    path.write_text(CONLL, "utf-8")
    sentences = tagging.read_tagged_file(str(path))
    with pytest.raises(ValueError, match=r"dev.txt:8: tag 'I-PER' is not one of the model's 4"):
        tagging.tag_ids(sentences, ["O", "B-ORG", "B-MISC", "B-PER"], str(path))


# ---------------------------------------------------------------- windows
def best_window_by_hand(first, length, capacity, stride):
    """The reference max-context rule, written as a loop over the windows."""
    count = 1 + max(0, -(-(length - capacity) // stride))
    best, best_score = None, None
    for k in range(count):
        start, end = k * stride, min(k * stride + capacity, length)
        if start <= first < end:
            score = min(first - start, end - 1 - first) + 0.01 * (end - start)
            if best_score is None or score > best_score:
                best, best_score = k, score
    return best, count


@pytest.mark.parametrize("seq_length, stride", [(8, 3), (8, 6), (12, 1), (16, 7)])
def test_windows_cover_every_word_once_with_the_most_context(tokenizer, seq_length, stride):
    rng = random.Random(seq_length * 100 + stride)
    sentences = [[rng.choice(WORDS) for _ in range(rng.randint(0, 30))] for _ in range(12)]
    sentences.append(["\u0301", "a"])  # a word with no pieces reads as <unk>
    words = tf.ragged.constant(sentences, dtype=tf.string)
    windows = tagging.word_windows(tokenizer, words, seq_length, stride)
    ids = windows["features"]["input_ids"].numpy()
    mask = windows["features"]["input_mask"].numpy()
    word_window = windows["word_window"].numpy()
    word_position = windows["word_position"].numpy()
    capacity = seq_length - 2
    window, word = 0, 0
    for sentence in sentences:
        pieces = [tokenizer.tokenize(tf.constant([w])).numpy()[0].tolist() or [1]
                  for w in sentence]
        flat = [p for word_pieces in pieces for p in word_pieces]
        firsts = np.cumsum([0] + [len(p) for p in pieces])[:-1]
        _, count = best_window_by_hand(0, len(flat), capacity, stride)
        for k in range(count):  # each window holds its slice of the sentence's pieces
            expected = [2] + flat[k * stride:k * stride + capacity] + [3]
            assert ids[window + k][:mask[window + k].sum()].tolist() == expected
        for first, word_pieces in zip(firsts, pieces):
            best, _ = best_window_by_hand(first, len(flat), capacity, stride)
            assert word_window[word] == window + best
            assert word_position[word] == first - best * stride + 1
            assert ids[word_window[word], word_position[word]] == word_pieces[0]
            word += 1
        window += count
    assert window == len(ids) and word == len(word_window)
    labels = tagging.window_labels(windows, tf.range(len(word_window)) + 1)
    assert labels["label_weights"].numpy().sum() == len(word_window)  # each word once
    assert sorted(labels["label_ids"].numpy()[labels["label_weights"].numpy() > 0]) == \
        list(range(1, len(word_window) + 1))


def test_windows_of_nothing(tokenizer):
    empty = tagging.word_windows(tokenizer, tf.ragged.constant([], dtype=tf.string,
                                                               ragged_rank=1), 8, 3)
    assert empty["features"]["input_ids"].shape[0] == 0 and empty["word_window"].shape == [0]
    with pytest.raises(ValueError, match=r"window_stride: must be in \[1, 6\]"):
        tagging.word_windows(tokenizer, tf.ragged.constant([["a"]]), 8, 7)


def test_dataset_labels_each_word_at_its_first_piece(tokenizer, tmp_path):
    path = tmp_path / "a.txt"
    path.write_text(CONLL, "utf-8")
    sentences = tagging.read_tagged_file(str(path))
    names = tagging.tag_names_of(sentences)
    ids = tagging.tag_ids(sentences, names, str(path))
    batch = next(iter(tagging.tagging_dataset(sentences, ids, tokenizer, 16, 7, 8,
                                              training=False)))
    weights = batch["label_weights"].numpy()
    assert weights.sum(axis=1).tolist() == [3, 2]
    for row, sentence_ids, sentence in zip(range(2), ids, sentences):
        positions = np.flatnonzero(weights[row])
        assert batch["label_ids"].numpy()[row, positions].tolist() == sentence_ids
        first_pieces = [tokenizer.tokenize(tf.constant([w])).numpy()[0][0]
                        for w in sentence.words]
        assert batch["input_ids"].numpy()[row, positions].tolist() == first_pieces


# ---------------------------------------------------------------- word splitting
def test_split_words_rule():
    assert split_words("Hello, wörld! 你好 it's\u200b ok") == [
        ("Hello", 0, 5), (",", 5, 6), ("wörld", 7, 12), ("!", 12, 13), ("你", 14, 15),
        ("好", 15, 16), ("it", 17, 19), ("'", 19, 20), ("s", 20, 21), ("ok", 23, 25)]
    assert split_words("") == [] and split_words(" \t ") == []


def test_split_words_graph_equals_python():
    rng = random.Random(0)
    alphabet = "ab Zé,.!?'-\t\n东京😀\u200b\u00a0\u3000«»—…$%"
    texts = VARIED_TEXT + ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 25)))
                           for _ in range(200)]
    texts += ["a\x00b \x00 c\x00", "\x00", "x\x00\x00y\x01z"]  # NUL: a separator, kept
    words, starts, ends = split_words_graph(tf.constant(texts))
    for i, text in enumerate(texts):
        expected = split_words(text)
        assert [w.decode() for w in words[i].numpy()] == [w for w, _, _ in expected], text
        assert starts[i].numpy().tolist() == [s for _, s, _ in expected]
        assert ends[i].numpy().tolist() == [e for _, _, e in expected]
        for word, start, end in expected:
            assert text[start:end] == word
    none = split_words_graph(tf.constant([], tf.string))
    assert none[0].shape[0] == 0


# ---------------------------------------------------------------- entity spans
@pytest.mark.parametrize("tags, spans", [
    (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 1), ("LOC", 3, 3)]),
    (["I-PER", "I-PER", "I-LOC", "O", "I-ORG"],  # IOB1: I starts an entity after O
     [("PER", 0, 1), ("LOC", 2, 2), ("ORG", 4, 4)]),
    (["I-PER", "B-PER", "I-PER"], [("PER", 0, 0), ("PER", 1, 2)]),  # IOB1: B splits
    (["B-PER", "I-LOC"], [("PER", 0, 0), ("LOC", 1, 1)]),
    (["B-ORG", "I-ORG", "E-ORG", "S-PER", "O"], [("ORG", 0, 2), ("PER", 3, 3)]),
    (["E-PER", "E-PER"], [("PER", 0, 0), ("PER", 1, 1)]),
    (["O", "O"], []),
    ([], []),
])
def test_entity_spans_by_hand(tags, spans):
    assert entity_spans(tags) == spans


def random_tag_sequences(count, seed):
    rng = random.Random(seed)
    names = ["O"] + [f"{p}-{t}" for p in "BIES" for t in ("PER", "LOC")]
    return names, [[rng.choice(names) for _ in range(rng.randint(0, 12))] for _ in range(count)]


def test_entity_spans_agree_with_seqeval():
    from seqeval.metrics.sequence_labeling import get_entities

    _, sequences = random_tag_sequences(500, seed=1)
    for tags in sequences:
        assert entity_spans(tags) == get_entities(tags), tags


def test_entity_bounds_graph_equals_python():
    names, sequences = random_tag_sequences(300, seed=2)
    found = entity_bounds_graph(
        tf.ragged.constant([[names.index(t) for t in tags] for tags in sequences],
                           dtype=tf.int32, ragged_rank=1), names)
    for i, tags in enumerate(sequences):
        graph = list(zip([t.decode() for t in found["type"][i].numpy()],
                         found["first"][i].numpy().tolist(), found["last"][i].numpy().tolist()))
        assert graph == entity_spans(tags), tags
    assert is_entity_tag_set(names) and not is_entity_tag_set(["NOUN", "VERB"])
    assert not is_entity_tag_set(["O"])


# ---------------------------------------------------------------- metrics
def test_tagging_metrics_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "I-ORG", "I-ORG"]]
    predicted = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "I-ORG", "O"]]
    results = tagging_metrics(gold, predicted, entity_tags=True)
    assert results["accuracy"] == pytest.approx(5 / 7)
    # gold PER(0-1) LOC(3) ORG(1-2); predicted PER(0-1) ORG(3) ORG(1-1): one correct.
    assert results["precision"] == pytest.approx(1 / 3)
    assert results["recall"] == pytest.approx(1 / 3)
    assert results["f1_PER"] == 1.0 and results["f1_LOC"] == 0.0
    assert results["precision_ORG"] == 0.0 and results["recall_ORG"] == 0.0
    assert tagging_metrics([["NOUN", "VERB"]], [["NOUN", "NOUN"]], False) == {
        "accuracy": 0.5, "words": 2}


def test_tagging_metrics_agree_with_seqeval():
    from seqeval.metrics import f1_score, precision_score, recall_score

    names, gold = random_tag_sequences(200, seed=3)
    rng = random.Random(4)
    predicted = [[t if rng.random() < 0.7 else rng.choice(names) for t in tags] for tags in gold]
    ours = tagging_metrics(gold, predicted, entity_tags=True)
    assert ours["precision"] == pytest.approx(precision_score(gold, predicted))
    assert ours["recall"] == pytest.approx(recall_score(gold, predicted))
    assert ours["f1"] == pytest.approx(f1_score(gold, predicted))


def test_entity_across_a_window_boundary_is_one_entity(tokenizer):
    """A stand-in model that tags each piece by its id: the words of one entity fall in
    two windows, and the joined predictions give the one entity back."""
    sentence = ["the", "music", "album", "band", "river", "city", "village", "north"]
    names = ["O", "B-X", "I-X"]
    gold = ["O", "B-X", "I-X", "I-X", "I-X", "I-X", "O", "O"]
    first_piece = {w: tokenizer.tokenize(tf.constant([w])).numpy()[0][0] for w in sentence}
    tag_of_piece = np.zeros(1000, np.int64)
    for word, tag in zip(sentence, gold):
        tag_of_piece[first_piece[word]] = names.index(tag)

    def forward(features):
        return tf.one_hot(tf.gather(tag_of_piece, features["input_ids"]), len(names))

    record = tagging.TaggedSentence(tuple(sentence), tuple(gold), (1,) * len(sentence))
    windows = tagging.word_windows(tokenizer, tf.ragged.constant([sentence]), 6, 2)
    assert len(set(windows["word_window"].numpy()[1:6])) > 1  # the entity spans windows
    (logits,) = tagging.predict_word_logits(forward, tokenizer, [record], 6, 2)
    predicted = [names[i] for i in logits.argmax(axis=-1)]
    assert predicted == gold
    assert tagging_metrics([gold], [predicted], True)["f1"] == 1.0

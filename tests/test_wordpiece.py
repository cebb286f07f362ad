"""WordPiece vocabularies: Python and graph tokenization against transformers'
BertTokenizer (the independent reference), against each other, and after a SavedModel
reload in a process without the project."""

import numpy as np
import pytest
import tensorflow as tf

from albert_keras import wordpiece
from albert_keras.special_tokens import SpecialIds
from albert_keras.tokenizer import tokenizer_for
from albert_keras.vocabulary import read_vocabulary
from fresh_process import ExportedTokenizer, call_reloaded
from data_fixtures import VARIED_TEXT, sib200_sentences, tiny_spm_model, wordpiece_vocab_file

# What the issue names: traditional characters, full-width punctuation and digits, Latin
# words and numbers inside Chinese, emoji, characters outside the vocabulary, very long
# words; and control characters, NUL included, at the start, middle and end.
CHINESE_EXTRA = [
    "繁體中文與簡體中文：臺灣、香港。", "全角标点，。！？；：“引号”（括号）【方括号】「直角」",
    "ＡＢＣ１２３全角字母数字", "北京2020年奥运会有emma和London的model。", "表情😀🎉👍🏽好",
    "生僻字𠀀𪚥龘齉", "a" * 101 + " " + "b" * 100, "超长" + "x" * 150, "\x00开头", "中\x00间",
    "结尾\x00", "\x00", "tab\t换行\n回车\r", "零宽\u200b字符\ufeff", "替换\ufffd字符",
    "Café NAÏVE ﬁ İstanbul ΣΟΦΟΣ", "a\u0301 cafe\u0301 x\u0301\u0302y", "\u3000全角空格\u00a0",
    "line\u2028sep\u2029para", "控制\x07\x1b字符\x7f", "", "   ", "12.5%的人，3.14159",
]


def _texts():
    return (sib200_sentences("zho_Hans", "dev") + sib200_sentences("eng_Latn", "dev")[:40]
            + CHINESE_EXTRA + VARIED_TEXT)


@pytest.fixture(scope="module", params=[True, False], ids=["uncased", "cased"])
def setting(request):
    lower_case = request.param
    path = wordpiece_vocab_file(cased=not lower_case)
    vocabulary = read_vocabulary(path)
    return path, vocabulary, lower_case


def test_ids_and_offsets_equal_transformers(setting):
    transformers = pytest.importorskip("transformers")
    path, vocabulary, lower_case = setting
    reference = transformers.BertTokenizer(path, do_lower_case=lower_case)
    ours = wordpiece.WordPieceTokenizer(vocabulary, lower_case)
    unknown = 0
    for text in _texts():
        expected = reference(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, starts, ends = ours.tokenize_with_offsets(text)
        assert ids == expected["input_ids"], text
        unknown += ids.count(vocabulary.special.unk)
        for start, end, (ref_start, ref_end) in zip(starts, ends, expected["offset_mapping"]):
            # The same start; our span also takes in what normalises to nothing after it
            # (a dropped accent, a deleted control character), which transformers leaves.
            assert start == ref_start, text
            assert end >= ref_end and not "".join(
                wordpiece.normalize_char(c, lower_case) for c in text[ref_end:end]), text
    assert unknown > 10  # the rare characters and long words reached [UNK]


def test_graph_equals_python(setting):
    _, vocabulary, lower_case = setting
    texts = _texts()
    graph = tokenizer_for(vocabulary, lower_case)
    ours = wordpiece.WordPieceTokenizer(vocabulary, lower_case)
    ids, starts, ends = graph.tokenize_with_offsets(tf.constant(texts))
    plain = graph.tokenize(tf.constant(texts))
    for i, text in enumerate(texts):
        expected = ours.tokenize_with_offsets(text)
        assert (ids[i].numpy().tolist(), starts[i].numpy().tolist(),
                ends[i].numpy().tolist()) == tuple(expected), text
        assert plain[i].numpy().tolist() == expected[0], text
    assert graph.tokenize(tf.constant([], tf.string)).shape[0] == 0


def test_special_ids_come_from_the_vocabulary(tmp_path):
    vocabulary = read_vocabulary(wordpiece_vocab_file())
    assert vocabulary.kind == "wordpiece"
    assert vocabulary.special == SpecialIds(pad=0, unk=100, cls=101, sep=102, mask=103)
    assert vocabulary.special.first_ordinary == 104
    packed = tokenizer_for(vocabulary)(tf.constant(["中文"]), tf.constant(["英文"]),
                                       seq_length=8)
    ids = vocabulary.pieces
    assert [ids[i] for i in packed["input_ids"][0].numpy()] == [
        "[CLS]", "中", "文", "[SEP]", "英", "文", "[SEP]", "[PAD]"]
    assert read_vocabulary(tiny_spm_model()).special == SpecialIds(0, 1, 2, 3, 4)

    broken = tmp_path / "vocab.txt"
    broken.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n中\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab.txt lacks BERT's special tokens \['\[MASK\]'\]"):
        read_vocabulary(str(broken))
    with pytest.raises(FileNotFoundError, match="vocabulary not found: .*nowhere.txt"):
        read_vocabulary(str(tmp_path / "nowhere.txt"))


def test_saved_model_reloads_with_only_tensorflow_text(tmp_path):
    tokenizer = tokenizer_for(read_vocabulary(wordpiece_vocab_file()))
    export = str(tmp_path / "exported")
    module = ExportedTokenizer(tokenizer)
    tf.saved_model.save(module, export)
    texts = ["北京2020年的emma，全角！", "", "\x00中\x00", "生僻字𠀀 " + "x" * 120]
    expected = {k: v.numpy().tolist() for k, v in module.tokenize(tf.constant(texts)).items()}
    reloaded = call_reloaded(
        export, "{k: v.numpy().tolist() for k, v in out.items()}", str(tmp_path),
        setup=f"out = m.tokenize(tf.constant({texts!r}))")
    assert reloaded == expected
    np.testing.assert_array_equal(np.array(expected["input_ids"])[:, 0], 101)


@pytest.mark.parametrize("lower_case", [True, False], ids=["uncased", "cased"])
def test_normalising_the_whole_text_first_cuts_the_same_words(lower_case):
    """Why the graph's `tokenize` may normalise the text before cutting it into words
    (AlbertWordPieceTokenizer.tokenize): over every code point, a separator normalises to
    separators, a character that stands alone to one character that is CJK or
    punctuation, and any other to characters that are neither."""
    wrong = []
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        char = chr(code)
        normalized = wordpiece.normalize_char(char, lower_case)
        alone_after = [wordpiece.is_cjk(c) or wordpiece.is_punctuation(c) for c in normalized]
        if wordpiece.is_separator(char):
            ok = normalized and all(c.isspace() for c in normalized)
        elif wordpiece.stands_alone(char, lower_case):
            ok = len(normalized) == 1 and alone_after[0]
        else:
            ok = not any(alone_after) and not any(c.isspace() for c in normalized)
        if not ok:
            wrong.append(hex(code))
    assert wrong == []

import random

import numpy as np
import pytest
import sentencepiece as spm
import tensorflow as tf

from albert_keras import tokenizer as tok
from albert_keras.text_normalization import normalize_text
from fresh_process import ExportedTokenizer, call_reloaded
from data_fixtures import VARIED_TEXT, generated_documents, tiny_spm_model, write_corpus

EXTRA_TEXT = [
    "Σ ΑΣ ΟΔΟΣ.", "ǅemal Ǳ", "\x1c\x1dseparators\x1e\x1f", "line\u2028sep\u2029para",
    "Thai ภาษาไทย", "ﾊﾝｶｸ half-width", "ｶﾞ", "x\u0301\u0302\u0303y", "\u3000\u3000lead",
]
# NUL is text like any other: a raw-text signature keeps all of its input.
NUL_TEXT = ["emma went\x00 to london", "a\x00b \x00 c\x00", "\x00", "ÀB\x00ÉÎ\x00\x00Ü x"]
EXTRA_TEXT += NUL_TEXT


@pytest.fixture(scope="module")
def model_path():
    return tiny_spm_model()


@pytest.fixture(scope="module")
def tokenizer(model_path):
    return tok.AlbertTokenizer.from_file(model_path)


def test_graph_normalization_equals_python():
    texts = VARIED_TEXT + EXTRA_TEXT
    for lower in (True, False):
        graph = tok.normalize_text_graph(tf.constant(texts), lower).numpy()
        assert [g.decode("utf-8") for g in graph] == [normalize_text(t, lower) for t in texts]
    assert normalize_text("  Café\t``x''  ") == 'cafe "x"'


def test_ids_equal_python_sentencepiece(tokenizer, model_path):
    processor = spm.SentencePieceProcessor(model_file=model_path)
    texts = VARIED_TEXT + EXTRA_TEXT + [s for d in generated_documents(20, seed=9) for s in d]
    ids = tokenizer.tokenize(tf.constant(texts)).to_list()
    assert ids == processor.encode([normalize_text(t) for t in texts])
    assert ids[VARIED_TEXT.index("")] == []


def _chunks(text):
    """(start, end) of each whitespace-free run, in code points."""
    spans, start = [], None
    for i, char in enumerate(text + " "):
        if char.isspace() and start is not None:
            spans.append((start, i))
            start = None
        elif not char.isspace() and start is None:
            start = i
    return spans


def test_offsets_tile_each_chunk_with_the_whole_text_pieces(tokenizer, model_path):
    processor = spm.SentencePieceProcessor(model_file=model_path)
    texts = (VARIED_TEXT + EXTRA_TEXT + ["\u0301x a\u200bb ``x'''' y", "``", "(a)b, c."]
             + [s for d in generated_documents(20, seed=9) for s in d])
    ids, starts, ends = tokenizer.tokenize_with_offsets(tf.constant(texts))
    assert ids.to_list() == processor.encode([normalize_text(t) for t in texts])
    for text, pieces, piece_starts, piece_ends in zip(texts, ids.to_list(), starts.to_list(),
                                                      ends.to_list()):
        spans = list(zip(piece_starts, piece_ends))
        for piece, (start, end) in zip(pieces, spans):
            assert 0 <= start <= end <= len(text)
            if processor.id_to_piece(piece) == "\u2581":  # a lone "▁": no letter or digit
                assert not any(char.isalnum() for char in text[start:end])
            elif start == end:
                # A piece that ends inside one character's normalised text ("▁f" of the
                # ligature "ﬁ"): the character belongs to the next piece.
                assert len(normalize_text(text[start])) > 1, (text, piece)
        assert all(e <= s for (_, e), (s, _) in zip(spans, spans[1:]))  # in order, apart
        for chunk_start, chunk_end in _chunks(text):
            inside = [(s, e) for s, e in spans if e > s and chunk_start <= s < chunk_end]
            if not normalize_text(text[chunk_start:chunk_end]):
                assert not inside
                continue
            # Contiguous pieces up to the chunk's end, the first from its first character
            # that normalises to something; together they normalise to the chunk.
            assert inside[-1][1] == chunk_end
            assert all(e == s for (_, e), (s, _) in zip(inside, inside[1:]))
            assert not normalize_text(text[chunk_start:inside[0][0]])
            joined = "".join(normalize_text(text[s:e]) for s, e in inside)
            final_sigma = str.maketrans("\u03c2", "\u03c3")  # its lowercase depends on context
            assert (joined.translate(final_sigma)
                    == normalize_text(text[chunk_start:chunk_end]).translate(final_sigma))
    none = tokenizer.tokenize_with_offsets(tf.constant([], tf.string))
    assert [part.shape[0] for part in none] == [0, 0, 0]


def _reference_truncate(a, b, budget):
    a, b = list(a), list(b)
    while len(a) + len(b) > budget:
        (a if len(a) > len(b) else b).pop()
    return a, b


def test_pack_matches_reference_truncation():
    rng = random.Random(0)
    seq_length = 12
    rows_a, rows_b = [], []
    for _ in range(200):
        rows_a.append([rng.randint(5, 99) for _ in range(rng.randint(0, 15))])
        rows_b.append([rng.randint(5, 99) for _ in range(rng.randint(0, 15))])
    packed = tok.pack_segments(tf.ragged.constant(rows_a, tf.int32),
                               tf.ragged.constant(rows_b, tf.int32), seq_length=seq_length)
    for i, (a, b) in enumerate(zip(rows_a, rows_b)):
        a, b = _reference_truncate(a, b, seq_length - 3)
        expected = [2, *a, 3, *b, 3]
        n = len(expected)
        assert packed["input_ids"][i].numpy().tolist() == expected + [0] * (seq_length - n)
        assert packed["segment_ids"][i].numpy().tolist() == (
            [0] * (len(a) + 2) + [1] * (len(b) + 1) + [0] * (seq_length - n))
        assert packed["input_mask"][i].numpy().tolist() == [1] * n + [0] * (seq_length - n)
    single = tok.pack_segments(tf.ragged.constant(rows_a[:5], tf.int32), seq_length=6)
    assert single["input_ids"].shape == (5, 6)
    for i, a in enumerate(rows_a[:5]):
        expected = [2, *a[:4], 3]
        assert single["input_ids"][i].numpy().tolist() == expected + [0] * (6 - len(expected))


def test_empty_batch(tokenizer):
    packed = tokenizer(tf.constant([], tf.string), tf.constant([], tf.string), seq_length=16)
    for value in packed.values():
        assert value.shape == (0, 16) and value.dtype == tf.int32


def test_cased_keeps_case():
    cased = tok.AlbertTokenizer.from_file(tiny_spm_model(cased=True), lower_case=False)
    assert cased.normalize(["Héllo"]).numpy()[0] == b"Hello"


def test_vocabulary_without_special_pieces_is_rejected(tmp_path):
    corpus = write_corpus(str(tmp_path / "c.txt"), generated_documents(30))
    spm.SentencePieceTrainer.train(input=corpus, model_prefix=str(tmp_path / "plain"),
                                   vocab_size=60, hard_vocab_limit=False, minloglevel=2)
    with pytest.raises(ValueError, match="plain.model lacks ALBERT's special pieces"):
        tok.AlbertTokenizer.from_file(str(tmp_path / "plain.model"))
    with pytest.raises(FileNotFoundError, match="nothing.model"):
        tok.AlbertTokenizer.from_file(str(tmp_path / "nothing.model"))


def test_saved_model_reloads_with_only_tensorflow_text(tokenizer, tmp_path):
    export = str(tmp_path / "exported")
    tf.saved_model.save(ExportedTokenizer(tokenizer), export)
    texts = ["Héllo wörld, the city", "", "東京 😀 123"]
    expected = tokenizer(tf.constant(texts), seq_length=16)["input_ids"].numpy()
    reloaded = call_reloaded(
        export, "out['input_ids'].numpy().tolist()", str(tmp_path),
        setup=(f"out = m.tokenize(tf.constant({texts!r}))\n"
               "empty = m.tokenize(tf.constant([], tf.string))\n"
               "assert empty['input_ids'].shape == (0, 16), empty['input_ids'].shape"))
    np.testing.assert_array_equal(np.array(reloaded), expected)


def test_survives_clearing_eager_caches(tokenizer):
    before = tokenizer.tokenize(["the city"]).to_list()
    tf.random.set_seed(7)  # clears eager kernels, which held tensorflow_text's own resource
    assert tokenizer.tokenize(["the city"]).to_list() == before


def test_cjk_mode_makes_no_piece_of_two_ideographs():
    """A SentencePiece vocabulary trained in CJK mode (its ideographs user-defined
    symbols): every piece that holds a CJK ideograph holds only it, in the graph as in
    Python, offsets included, with no extra "▁" per character; ideographs outside the
    vocabulary are <unk> (SentencePiece makes one <unk> of a run of them)."""
    from albert_keras.vocabulary import SentencePieceVocabulary, train_sentencepiece
    from albert_keras.wordpiece import is_cjk
    from data_fixtures import sib200_sentences

    chinese = sib200_sentences("zho_Hans")
    proto = train_sentencepiece(chinese + sib200_sentences("eng_Latn"), vocab_size=4000,
                                split_cjk=True)
    tokenizer = tok.AlbertTokenizer(SentencePieceVocabulary.from_proto(proto))
    processor = spm.SentencePieceProcessor(model_proto=proto)
    texts = sib200_sentences("zho_Hans", "dev") + ["emma在London踢足球，2020年。", "\x00中\x00文龘"]
    ids, starts, ends = tokenizer.tokenize_with_offsets(tf.constant(texts))
    assert ids.to_list() == tokenizer.tokenize(tf.constant(texts)).to_list()
    assert ids.to_list() == processor.encode([normalize_text(t) for t in texts])
    ideographs = characters = 0
    for text, row, row_starts, row_ends in zip(texts, ids.to_list(), starts.to_list(),
                                               ends.to_list()):
        for piece, start, end in zip(row, row_starts, row_ends):
            if piece == processor.unk_id():
                continue
            characters += sum(map(is_cjk, text[start:end]))
            if any(is_cjk(c) for c in processor.id_to_piece(piece)):
                ideographs += 1
                assert len(text[start:end].strip("\x00")) == 1, text[start:end]
    assert ideographs == characters > 2000  # one piece per ideograph, no more
    # Without the mode, the same corpus makes pieces of several ideographs.
    plain = spm.SentencePieceProcessor(model_proto=train_sentencepiece(chinese, vocab_size=3000))
    assert max(sum(map(is_cjk, p)) for t in texts[:20] for p in plain.encode(t, out_type=str)) > 1

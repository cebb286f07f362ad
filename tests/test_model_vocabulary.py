"""A model carries its vocabulary: saved in the .keras file, used by the exporter without
a flag, never silently replaced; files saved before still export with the flag."""

import os

import keras
import pytest

from albert_keras import AlbertClassifier, AlbertConfig
from albert_keras.models.model_vocabulary import (attach_vocabulary, carried_vocabulary,
                                                  choose_vocabulary, read_from_keras_file)
from albert_keras.vocabulary import read_vocabulary
from albert_keras.wordpiece import WordPieceTokenizer
from data_fixtures import wordpiece_vocab_file
from fresh_process import call_reloaded
from serving import export as export_lib

# The module-scoped fixtures are built once, on one worker.
pytestmark = pytest.mark.xdist_group("model_vocabulary")

SAVED = os.path.join(os.path.dirname(__file__), "saved_keras", "classifier.keras")


@pytest.fixture(scope="module")
def saved_classifier(tmp_path_factory):
    """A classifier carrying a cased WordPiece vocabulary, saved and its path."""
    vocabulary = read_vocabulary(wordpiece_vocab_file(cased=True))
    keras.utils.set_random_seed(3)
    model = AlbertClassifier(
        AlbertConfig(vocab_size=vocabulary.size, embedding_size=16, hidden_size=32,
                     num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                     max_position_embeddings=64), num_labels=2, label_names=["a", "b"])
    attach_vocabulary(model, vocabulary, lower_case=False)
    path = str(tmp_path_factory.mktemp("carried") / "model.keras")
    model.save(path)
    return path, vocabulary


def test_the_vocabulary_survives_saving(saved_classifier):
    path, vocabulary = saved_classifier
    for carried in (carried_vocabulary(keras.saving.load_model(path, compile=False)),
                    read_from_keras_file(path)):
        assert carried.vocabulary.kind == "wordpiece" and carried.lower_case is False
        assert carried.vocabulary.file_bytes == vocabulary.file_bytes
        assert carried.vocabulary.special == vocabulary.special
    assert read_from_keras_file(SAVED) is None  # saved before models carried one


def test_export_uses_the_carried_vocabulary_without_a_flag(saved_classifier, tmp_path):
    path, vocabulary = saved_classifier
    assert export_lib.main(["--model", path, "--export_base", str(tmp_path / "m"),
                            "--max_seq_length", "32"]) == 0
    texts = ["北京的Emma", "\x00全角，Model！"]
    ids, counts = call_reloaded(
        str(tmp_path / "m" / "1"), "[out['ids'].numpy().tolist(), "
        "out['token_count'].numpy().tolist()]", str(tmp_path),
        setup=f"out = m.signatures['tokenize'](text=tf.constant({texts!r}))")
    expected = [WordPieceTokenizer(vocabulary, lower_case=False).tokenize(t) for t in texts]
    assert [row[:count] for row, count in zip(ids, counts)] == expected


def test_another_vocabulary_is_refused_unless_replaced(saved_classifier, tmp_path, capsys):
    path, vocabulary = saved_classifier
    other = tmp_path / "vocab.txt"  # the same size, two tokens swapped
    pieces = list(vocabulary.pieces)
    pieces[200], pieces[201] = pieces[201], pieces[200]
    other.write_text("\n".join(pieces) + "\n", encoding="utf-8")
    base = str(tmp_path / "m")
    assert export_lib.main(["--model", path, "--spm_model", str(other),
                            "--export_base", base]) == 2
    err = capsys.readouterr().err
    assert "is not the vocabulary the model carries" in err and "--replace_vocabulary" in err
    carried = read_from_keras_file(path)
    same = read_vocabulary(wordpiece_vocab_file(cased=True))
    assert choose_vocabulary(carried, same, False, replace=False, model="m") is carried
    with pytest.raises(ValueError, match="--cased says otherwise"):
        choose_vocabulary(carried, None, True, replace=False, model="m")
    assert export_lib.main(["--model", path, "--spm_model", str(other),
                            "--export_base", base, "--replace_vocabulary"]) == 0
    assert sorted(os.listdir(base)) == ["1"]


def test_a_file_saved_before_needs_the_flag(tmp_path, capsys):
    base = str(tmp_path / "m")
    assert export_lib.main(["--model", SAVED, "--export_base", base]) == 2
    assert "carries no vocabulary" in capsys.readouterr().err
    model = keras.saving.load_model(SAVED, compile=False)
    with pytest.raises(ValueError, match="--spm_model"):
        export_lib.export(model, None, base)
    vocab = tmp_path / "vocab.txt"  # the model's 64 ids
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                               + [chr(0x4E00 + i) for i in range(59)]) + "\n", "utf-8")
    assert export_lib.main(["--model", SAVED, "--spm_model", str(vocab),
                            "--export_base", base]) == 0
    assert os.listdir(base) == ["1"]

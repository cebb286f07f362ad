"""Tiny exported models shared by the serving tests (built once per test session)."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile

import keras
import numpy as np

from data_fixtures import tiny_spm_model

MAX_SEQ_LENGTH = 32
LABEL_NAMES = ["negative", "positive", "neutral"]
TAG_NAMES = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
LONG_TEXT = ("the city was built " * 600)[:10_000]

# Inputs every fresh-process and end-to-end test runs, per signature.
# NUL is text like any other: every raw-text signature keeps all of its input.
TEXT = np.array([b"Hello world, the city of music.", b"", LONG_TEXT.encode(),
                 b"\xff\xfe not utf-8 \xc3", "Caf\u00e9 na\u00efve".encode(),
                 "Emma went\x00 to London.\x00 \x00\u00dcber".encode()], dtype=object)
TEXT_B = np.array([b"A second segment.", b"b only", b"short", b"", LONG_TEXT.encode(),
                   b"a\x00b \x00 c\x00"], dtype=object)
SIGNATURE_INPUTS = {
    "embed": {"text": TEXT},
    "embed_pair": {"text": TEXT, "text_b": TEXT_B},
    "classify": {"text": TEXT},
    "classify_pair": {"text": TEXT, "text_b": TEXT_B},
    "sentence_order": {"text_a": TEXT, "text_b": TEXT_B},
    "tokenize": {"text": TEXT},
    "tag": {"text": TEXT},
    "tag_words": {"words": np.array([[b"Hello", b"world", b"lon\x00don", b""],
                                     [b"", b"", b"", b""],
                                     [b"city", b"\xff", b"of", b"music"]], dtype=object)},
    "fill_mask": {"text": np.array([b"The [MASK] of the [MASK] city.", b"no mask here",
                                    b"[MASK]", b"", (LONG_TEXT + " [MASK]").encode(),
                                    b"Emma\x00[MASK]\x00 went"],
                                   dtype=object)},
    "encode": {"input_ids": np.array([[2, 10, 11, 12, 3], [2, 20, 3, 0, 0]], np.int32),
               "segment_ids": np.array([[0, 0, 0, 0, 0], [0, 0, 0, 0, 0]], np.int32),
               "input_mask": np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], np.int32)},
}


@functools.lru_cache(maxsize=None)
def spm_model_path() -> str:
    return tiny_spm_model()


def model_proto() -> bytes:
    with open(spm_model_path(), "rb") as f:
        return f.read()


def tiny_config():
    import sentencepiece as spm

    from albert_keras import AlbertConfig

    vocab_size = spm.SentencePieceProcessor(model_file=spm_model_path()).get_piece_size()
    return AlbertConfig(vocab_size=vocab_size, embedding_size=16, hidden_size=32,
                        num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=64)


def build_model(kind: str):
    from albert_keras import (AlbertBackbone, AlbertClassifier, AlbertPretrainer,
                              AlbertQuestionAnswerer, AlbertSquad2Answerer, AlbertTagger)

    keras.utils.set_random_seed({"pretrainer": 1, "classifier": 2, "backbone": 3,
                                 "tagger": 4, "question_answerer": 5,
                                 "squad2_answerer": 6}[kind])
    config = tiny_config()
    if kind == "pretrainer":
        return AlbertPretrainer(config)
    if kind == "classifier":
        return AlbertClassifier(config, num_labels=3, label_names=LABEL_NAMES)
    if kind == "tagger":
        return AlbertTagger(config, tag_names=TAG_NAMES)
    if kind == "question_answerer":
        return AlbertQuestionAnswerer(config)
    if kind == "squad2_answerer":
        return AlbertSquad2Answerer(config)
    return AlbertBackbone(config)


def exported(kind: str, fusion: str = "plain"):
    """(model, export_base, version_dir) for "pretrainer", "classifier", "tagger",
    "question_answerer", "squad2_answerer" or "backbone".

    The pretrainer and classifier go through the CLI from a saved .keras file, as a user
    would; the backbone through serving.export.export(). fusion="xla_cpu" exports the same
    model (the plain export's) again with XLA kernels, through the CLI.
    """
    return _export_once(kind, fusion)  # one cache key however fusion is passed


@functools.lru_cache(maxsize=None)
def _export_once(kind: str, fusion: str):
    from serving import export as export_lib

    model = build_model(kind) if fusion == "plain" else exported(kind)[0]
    root = tempfile.mkdtemp(prefix=f"albert_export_{kind}_{fusion}_")
    atexit.register(shutil.rmtree, root, True)
    export_base = os.path.join(root, "saved_models", f"albert_{kind}")
    if kind == "backbone" and fusion == "plain":
        version_dir = export_lib.export(model, model_proto(), export_base,
                                        max_seq_length=MAX_SEQ_LENGTH)
    else:
        run_dir = os.path.join(root, "run")
        os.makedirs(run_dir)
        model.save(os.path.join(run_dir, "final_model.keras"))
        code = export_lib.main(["--model", run_dir, "--spm_model", spm_model_path(),
                                "--export_base", export_base,
                                "--max_seq_length", str(MAX_SEQ_LENGTH), "--fusion", fusion])
        assert code == 0
        version_dir = os.path.join(export_base, "1")
    return model, export_base, version_dir

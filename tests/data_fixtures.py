"""Small generated corpora and a tiny SentencePiece model shared by the data tests."""

from __future__ import annotations

import functools
import os
import random
import tempfile

WORDS = (
    "the of and to in is was for on that with as by at from his her an are were which "
    "this be or has had it not but they their one first also new after two who its "
    "been city time other year state into more most world during between school many "
    "some these used there would only under where about while over when national "
    "university through three people later known film series called him may century "
    "she season team government since several both united them then being including "
    "history american such area each well same game until however second around early "
    "public north music river during life work built family player small large final "
    "church south west east village album band record station party general major "
    "unbelievable internationalisation reconstruction photographers misunderstanding"
).split()

VARIED_TEXT = [
    "Héllo  Wörld, café naïve résumé",
    "ÀÉÎÕÜ ÿ Ç ñ ß İstanbul ΣΟΦΟΣ",
    "東京は日本の首都です。北京",
    "emoji 😀 🎉 ok 👍🏽",
    "digits 0123456789 3.14159 1,000,000",
    "tabs\tand\nnewlines  \u00a0 nbsp\u3000ideographic",
    "``quoted'' text with ``more''",
    "ＡＢＣ１２３ ﬁ ﬂ Ⅻ",
    "",
    "   ",
    "UPPER lower MiXeD",
    "한국어 텍스트",
    "a",
]


def generated_documents(num_documents: int, seed: int = 0, min_sentences=1, max_sentences=8):
    """Lists of sentences of random words (each sentence ends with a period)."""
    rng = random.Random(seed)
    documents = []
    for _ in range(num_documents):
        document = []
        for _ in range(rng.randint(min_sentences, max_sentences)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(3, 14))]
            document.append(" ".join(words).capitalize() + ".")
        documents.append(document)
    return documents


def write_corpus(path: str, documents) -> str:
    """One sentence per line, a blank line between documents."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n\n".join("\n".join(doc) for doc in documents) + "\n")
    return path


@functools.lru_cache(maxsize=None)
def tiny_spm_model(cased: bool = False) -> str:
    """Trains (once per process) a ~300-piece model; returns the .model path."""
    from albert_keras.vocabulary import train_sentencepiece, write_sentencepiece_model

    directory = tempfile.mkdtemp(prefix="albert_tiny_spm_")
    sentences = [s for doc in generated_documents(300, seed=1) for s in doc]
    sentences += [t for t in VARIED_TEXT if t.strip()] * 5
    proto = train_sentencepiece(sentences, vocab_size=400, lower_case=not cased)
    model_path, _ = write_sentencepiece_model(proto, os.path.join(directory, "tiny"))
    return model_path


def instance_arrays(num_documents: int, max_seq_length: int, seed: int = 0,
                    min_sentences: int = 4, max_sentences: int = 12):
    """Padded int64 arrays (input_ids, input_mask, segment_ids, token_boundary) and labels
    of SOP instances made from generated documents with the tiny model."""
    import numpy as np
    import sentencepiece as spm

    from albert_keras.data.instances import create_instances, pad_instances, word_start_table
    from albert_keras.text_normalization import normalize_text

    processor = spm.SentencePieceProcessor(model_file=tiny_spm_model())
    starts = word_start_table([processor.id_to_piece(i) for i in range(processor.get_piece_size())])
    rng = random.Random(seed)
    instances = []
    for document in generated_documents(num_documents, seed, min_sentences, max_sentences):
        ids = processor.encode([normalize_text(s) for s in document])
        instances += create_instances(ids, starts, max_seq_length, 0.0, rng)
    return pad_instances(instances, max_seq_length), np.array([i.label for i in instances])


SIB200 = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "training", "datasets", "sib200")


def sib200_sentences(language: str = "zho_Hans", split: str = "train") -> list[str]:
    """The bundled SIB-200 sentences (training/datasets/sib200)."""
    import csv

    with open(os.path.join(SIB200, language, f"{split}.tsv"), encoding="utf-8") as f:
        return [row["text_a"] for row in csv.DictReader(f, delimiter="\t",
                                                        quoting=csv.QUOTE_NONE)]


@functools.lru_cache(maxsize=None)
def wordpiece_vocab_file(cased: bool = False, characters: int = 1200) -> str:
    """A stand-in for Google's vocab_chinese.txt (once per process): its layout ([PAD],
    [unused1..99], [UNK] [CLS] [SEP] [MASK] at 100-103), the `characters` most frequent
    characters of the Chinese SIB-200 sentences (rarer ones stay out, to be [UNK]),
    WORDS, and "##" continuations of letters, digits and a few suffixes."""
    import collections

    counts = collections.Counter(
        c for s in sib200_sentences() + sib200_sentences("eng_Latn") for c in s
        if not c.isspace())
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)]
    tokens += ["[UNK]", "[CLS]", "[SEP]", "[MASK]", "<S>", "<T>"]
    tokens += [c if cased else c.lower() for c, _ in counts.most_common(characters)]
    words = list(WORDS) + ["emma", "went", "london", "cafe", "model", "learn", "hello"]
    tokens += words + ([w.capitalize() for w in words] if cased else [])
    tokens += ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    tokens += ["##s", "##ing", "##ed", "##er", "##tion", "##ly", "12", "2020"]
    tokens = list(dict.fromkeys(tokens))
    path = os.path.join(tempfile.mkdtemp(prefix="albert_wordpiece_"), "vocab.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")
    return path

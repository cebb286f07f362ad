"""WordPiece, checked and timed: tokenization against transformers' BertTokenizer, and
the serving speed of a WordPiece export against a SentencePiece export of the same model.

    python benchmarks/wordpiece.py [--rounds 5] [--json out.json]

Text: the bundled SIB-200 sentences (training/datasets/sib200, Chinese and English,
train and dev: 1,600). Vocabularies, built from those sentences since a fresh clone has
no downloads: a WordPiece stand-in in Google's vocab_chinese.txt layout (tests'
data_fixtures.wordpiece_vocab_file: [unused], special ids 100-103, characters, words,
"##" continuations) and a SentencePiece model of the same corpus (training.build_vocab's
trainer, 2,000 pieces asked).

1. Parity: ids and code-point spans of the Python tokenizer (albert_keras.wordpiece)
   against transformers' BertTokenizer (ids equal; spans with equal starts and ends that
   differ only by characters that normalise to nothing), and of the graph tokenizer
   (albert_keras.wordpiece_tokenizer) against the Python one (equal).
2. Speed: one ALBERT-base classifier (random weights) exported twice by
   serving.export, with the WordPiece and with the SentencePiece vocabulary (vocab_size
   the larger of the two; the lookup costs the same). Both SavedModels are loaded in
   this process and called in turn, round by round: `classify` on Chinese sentences at
   batch 32 (texts/s) and batch 1 (p50 latency), and `tokenize` alone at batch 256.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))  # the bundled-data fixtures
from benchmarks import harness  # noqa: E402


def all_sentences():
    from data_fixtures import sib200_sentences

    return [s for language in ("zho_Hans", "eng_Latn") for split in ("train", "dev")
            for s in sib200_sentences(language, split)]


def parity(vocab_path: str, texts: list[str]) -> dict:
    import tensorflow as tf
    import transformers

    from albert_keras import wordpiece
    from albert_keras.tokenizer import tokenizer_for
    from albert_keras.vocabulary import read_vocabulary

    vocabulary = read_vocabulary(vocab_path)
    reference = transformers.BertTokenizer(vocab_path, do_lower_case=True)
    python = wordpiece.WordPieceTokenizer(vocabulary)
    graph = tokenizer_for(vocabulary).tokenize_with_offsets(tf.constant(texts))
    counts = dict(texts=len(texts), pieces=0, unknown=0, ids_differ=0, starts_differ=0,
                  ends_beyond_deleted=0, graph_differs=0, ends_extended=0)
    for row, text in enumerate(texts):
        expected = reference(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, starts, ends = python.tokenize_with_offsets(text)
        counts["pieces"] += len(ids)
        counts["unknown"] += ids.count(vocabulary.special.unk)
        counts["ids_differ"] += ids != expected["input_ids"]
        for start, end, (ref_start, ref_end) in zip(starts, ends, expected["offset_mapping"]):
            counts["starts_differ"] += start != ref_start
            counts["ends_extended"] += end != ref_end
            counts["ends_beyond_deleted"] += end < ref_end or bool("".join(
                wordpiece.normalize_char(c, True) for c in text[ref_end:end]))
        counts["graph_differs"] += (graph[0][row].numpy().tolist(), graph[1][row].numpy().tolist(),
                                    graph[2][row].numpy().tolist()) != (ids, starts, ends)
    return counts


def export_both(work: str, vocab_path: str, sentences: list[str]) -> dict:
    import keras

    from albert_keras import AlbertClassifier, AlbertConfig
    from albert_keras.vocabulary import (read_vocabulary, train_sentencepiece,
                                         write_sentencepiece_model)
    from benchmarks.train_step import BASE
    from serving.export import export

    spm_model, _ = write_sentencepiece_model(
        train_sentencepiece(sentences, vocab_size=2000), os.path.join(work, "spm"))
    vocabularies = {"wordpiece": read_vocabulary(vocab_path),
                    "sentencepiece": read_vocabulary(spm_model)}
    size = max(v.size for v in vocabularies.values())
    keras.utils.set_random_seed(0)
    model = AlbertClassifier(AlbertConfig(**dict(BASE, vocab_size=size)), num_labels=7)
    exports = {}
    for kind, vocabulary in vocabularies.items():
        exports[kind] = export(model, vocabulary, os.path.join(work, kind), version=1,
                               max_seq_length=128, allow_vocab_mismatch=True)
    return exports, {kind: v.size for kind, v in vocabularies.items()}


def time_exports(exports: dict, texts: list[str], rounds: int) -> dict:
    import tensorflow as tf

    loaded = {kind: tf.saved_model.load(path) for kind, path in exports.items()}
    batch32 = tf.constant((texts * 2)[:32])
    batch256 = tf.constant((texts * 4)[:256])
    singles = [tf.constant([t]) for t in texts[:20]]
    calls = {
        "classify_batch32": lambda m: m.signatures["classify"](text=batch32),
        "tokenize_batch256": lambda m: m.signatures["tokenize"](text=batch256),
    }
    for model in loaded.values():  # warm up every shape
        for call in calls.values():
            call(model)
        model.signatures["classify"](text=singles[0])
    times = {kind: {name: [] for name in [*calls, "classify_batch1"]} for kind in loaded}
    for kind, model in loaded.items():  # how long the sequences are: the model's work
        counts = model.signatures["tokenize"](text=tf.constant(texts))["token_count"]
        times[kind]["mean_pieces"] = float(tf.reduce_mean(tf.cast(counts, tf.float32)))
    for _ in range(rounds):
        for kind, model in loaded.items():
            for name, call in calls.items():
                times[kind][name].append(harness.median(harness.time_calls(
                    lambda: call(model), 3)))
            times[kind]["classify_batch1"] += [
                harness.time_calls(lambda: model.signatures["classify"](text=t), 1)[0]
                for t in singles]
    return times


def drive(args):
    report = harness.run_header("benchmarks/wordpiece.py")
    from data_fixtures import sib200_sentences, wordpiece_vocab_file

    texts = all_sentences()
    vocab_path = wordpiece_vocab_file()
    report["parity"] = parity(vocab_path, texts)
    ceiling = harness.matmul_ceiling_runner()(3)["times"]["float32"]
    report["matmul_gflops_float32"] = 2 * 4096 ** 3 / harness.median(ceiling) / 1e9
    with tempfile.TemporaryDirectory() as work:
        exports, sizes = export_both(work, vocab_path, texts)
        report["vocab_sizes"] = sizes
        chinese = sib200_sentences("zho_Hans", "dev")
        report["times"] = time_exports(exports, chinese, args.rounds)
    harness.publish(report, print_table, args.json)


def print_table(report):
    print(f"{report['date']}  {report['machine']}")
    print(f"float32 matmul ceiling (4096^3, same run): "
          f"{report['matmul_gflops_float32']:.0f} GFLOP/s")
    p = report["parity"]
    print(f"\nParity on {p['texts']:,} SIB-200 sentences ({p['pieces']:,} pieces, "
          f"{p['unknown']} [UNK]):")
    print(f"  Python vs transformers BertTokenizer: texts whose ids differ {p['ids_differ']}, "
          f"piece starts that differ {p['starts_differ']}, ends past transformers' by more "
          f"than deleted characters {p['ends_beyond_deleted']} "
          f"(ends extended over deleted characters: {p['ends_extended']})")
    print(f"  graph vs Python (ids, starts, ends): texts that differ {p['graph_differs']}")
    times = report["times"]
    print(f"\nServing, ALBERT-base classifier, vocabularies {report['vocab_sizes']}, "
          "Chinese sentences:")
    print(f"{'':16}{'pieces/sentence':>16}{'classify b32 texts/s':>22}"
          f"{'classify b1 p50 ms':>20}{'tokenize b256 texts/s':>23}")
    for kind, t in times.items():
        print(f"{kind:16}{t['mean_pieces']:16.1f}{32 / harness.median(t['classify_batch32']):22.1f}"
              f"{1000 * harness.percentile(t['classify_batch1'], 50):20.1f}"
              f"{256 / harness.median(t['tokenize_batch256']):23.0f}")
    wp, sp = times["wordpiece"], times["sentencepiece"]
    ratio = harness.paired_ratio(wp["classify_batch32"], sp["classify_batch32"])
    tokenize = harness.paired_ratio(wp["tokenize_batch256"], sp["tokenize_batch256"])
    print(f"WordPiece time / SentencePiece time (median of per-round ratios): classify b32 "
          f"{ratio[1]:.3f}x, tokenize b256 {tokenize[1]:.3f}x")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", default=None)
    parser.add_argument("--table", default=None, help="print a saved report")
    args = parser.parse_args(argv)
    if args.table:
        print_table(harness.load_report(args.table))
    else:
        drive(args)


if __name__ == "__main__":
    main()

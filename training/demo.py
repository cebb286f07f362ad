"""make demo: the whole pipeline on the bundled corpus, with no flags.

bundled corpus -> train/eval split by document -> SentencePiece vocabulary ->
pretraining TFRecords -> pretrain a small ALBERT (training/configs/demo.json) ->
checkpoints and TensorBoard logs under runs/demo -> SavedModel under saved_models/ ->
a report: final held-out MLM and SOP accuracy against the most-frequent-piece baseline.
"""

from __future__ import annotations

import collections
import os
import sys
import time

from albert_keras import run_directory
from albert_keras.atomic_file import write_json, write_text

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "training", "corpus", "bundled_corpus.txt")
CONFIG = os.path.join("training", "configs", "demo.json")
RUN = os.path.join("runs", "demo")
VOCAB_SIZE = 5000
EVAL_DOCUMENT_SHARE = 0.05


def split_corpus(source: str, train_path: str, eval_path: str) -> tuple[int, int]:
    """Every 20th document goes to the held-out file."""
    with open(source, encoding="utf-8") as f:
        documents = [d for d in f.read().split("\n\n") if d.strip()]
    step = round(1 / EVAL_DOCUMENT_SHARE)
    held_out = [d for i, d in enumerate(documents) if i % step == step - 1]
    train = [d for i, d in enumerate(documents) if i % step != step - 1]
    for path, docs in ((train_path, train), (eval_path, held_out)):
        write_text(path, "\n\n".join(d.strip("\n") for d in docs) + "\n")
    return len(train), len(held_out)


def most_frequent_piece_accuracy(experiment) -> tuple[float, str]:
    """Accuracy of always predicting the most frequent masked piece, on exactly the
    held-out batches that validation uses."""
    from albert_keras.data import pretraining_dataset
    counts, total = collections.Counter(), 0.0
    dataset = pretraining_dataset(experiment.eval_files, experiment.global_batch_size,
                                  experiment.seq_length, experiment.max_predictions,
                                  training=False).take(experiment.eval_steps)
    for batch in dataset:
        ids = batch["masked_lm_ids"].numpy().ravel()
        weights = batch["masked_lm_weights"].numpy().ravel()
        for piece, weight in zip(ids, weights):
            if weight:
                counts[int(piece)] += 1
        total += weights.sum()
    piece, count = counts.most_common(1)[0]
    import sentencepiece
    processor = sentencepiece.SentencePieceProcessor(model_file=experiment.spm_model)
    return float(count / total), processor.id_to_piece(piece)


def stage(title: str):
    print(f"\n=== {title}", flush=True)


def main() -> int:
    os.chdir(ROOT)
    started = time.time()
    from training import build_vocab, create_pretraining_data, pretrain
    from training.experiment import PretrainExperiment, load_experiment

    corpus_dir = os.path.join(RUN, "corpus")
    os.makedirs(corpus_dir, exist_ok=True)
    train_txt, eval_txt = (os.path.join(corpus_dir, n) for n in ("train.txt", "eval.txt"))
    stage("1/5 split the bundled corpus by document")
    train_docs, eval_docs = split_corpus(CORPUS, train_txt, eval_txt)
    print(f"{train_docs} training documents, {eval_docs} held-out documents")

    vocab_prefix = os.path.join(RUN, "vocab", "spm")
    if not os.path.exists(vocab_prefix + ".model"):
        stage(f"2/5 SentencePiece vocabulary ({VOCAB_SIZE} pieces)")
        os.makedirs(os.path.dirname(vocab_prefix), exist_ok=True)
        if build_vocab.main(["--input", train_txt, "--vocab_size", str(VOCAB_SIZE),
                             "--model_prefix", vocab_prefix]):
            return 1
    else:
        stage("2/5 SentencePiece vocabulary: reusing " + vocab_prefix + ".model")

    data_dir = os.path.join(RUN, "data")
    for split, source, dupe in (("train", train_txt, "3"), ("eval", eval_txt, "1")):
        target = os.path.join(data_dir, split)
        if os.path.isdir(target) and os.listdir(target):
            stage(f"3/5 pretraining records ({split}): reusing {target}")
            continue
        stage(f"3/5 pretraining records ({split})")
        if create_pretraining_data.main([
                "--input", source, "--spm_model", vocab_prefix + ".model",
                "--output_dir", target, "--max_seq_length", "128",
                "--max_predictions_per_seq", "20", "--dupe_factor", dupe,
                "--num_output_files", "4", "--num_workers", "2"]):
            return 1

    stage("4/5 pretraining (training/configs/demo.json)")
    experiment = load_experiment(PretrainExperiment, ["--config", CONFIG])
    if pretrain.main(["--config", CONFIG]):
        return 1
    with open(os.path.join(RUN, "metrics.csv"), encoding="utf-8") as f:
        header, *rows = [line.strip().split(",") for line in f if line.strip()]
    final = dict(zip(header, map(float, rows[-1])))

    stage("5/5 SavedModel export for TensorFlow Serving")
    # The name serving/deploy/models.config serves: `docker compose up` picks it up.
    export_base = os.path.join("saved_models", "albert")
    from serving import export
    if export.main(["--model", run_directory.model_file(RUN),
                    "--spm_model", os.path.join(RUN, "spm.model"),
                    "--export_base", export_base, "--max_seq_length", "128"]):
        return 1
    version = max(int(v) for v in os.listdir(export_base) if v.isdigit())

    baseline, piece = most_frequent_piece_accuracy(experiment)
    report = {
        "held_out_masked_lm_accuracy": final["val_masked_lm_accuracy"],
        "most_frequent_piece_accuracy": baseline,
        "most_frequent_piece": piece,
        "held_out_sentence_order_accuracy": final["val_sentence_order_accuracy"],
        "train_masked_lm_accuracy": final["masked_lm_accuracy"],
        "train_sentence_order_accuracy": final["sentence_order_accuracy"],
        "steps": int(experiment.total_steps),
        "minutes": round((time.time() - started) / 60, 1),
    }
    write_json(os.path.join(RUN, "demo_report.json"), report, indent=2)
    stage("report")
    print(f"held-out MLM accuracy        {report['held_out_masked_lm_accuracy']:.4f}")
    print(f"most-frequent-piece baseline {baseline:.4f}  (always predicting {piece!r})")
    print(f"held-out SOP accuracy        {report['held_out_sentence_order_accuracy']:.4f}"
          "  (chance 0.5)")
    print(f"wall time                    {report['minutes']} min")
    print(f"checkpoints                  {RUN}/checkpoints")
    print(f"pretrained model             {run_directory.model_file(RUN)}")
    print(f"SavedModel                   {export_base}/{version}")
    print(f"report                       {RUN}/demo_report.json")
    print(f"TensorBoard                  .venv/bin/tensorboard --logdir {RUN}/logs")
    if report["held_out_masked_lm_accuracy"] <= baseline:
        print("warning: held-out MLM accuracy is not above the baseline", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

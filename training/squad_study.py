"""What does the demo backbone do for question answering? SQuAD 2.0 on the bundled sample:
fine-tuned on two of its articles, evaluated on the third, from the `make demo` backbone
and from random weights, against always answering "no answer".

    python -m training.squad_study [--init_model runs/demo] [--output_dir runs/demo_squad]
    python -m training.squad_study --prepare_only     # only the data split

The split (training/datasets/squad2_sample/squad2-sample.json, three articles of the
SQuAD 2.0 development set): the first --train_articles articles (2) are written to
OUTPUT_DIR/data/train.json and the rest to dev.json, both in the official format.

Each run is `training.finetune` with training/configs/squad_demo.json (the span head);
from random weights it takes the backbone's config (init_model/albert_config.json).
Writes OUTPUT_DIR/study.json and prints a Markdown table of the official metrics, with
each model's metrics on the answerable questions when it always answers (its best span,
whatever the null threshold says): how good its spans are.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from albert_keras import run_directory
from albert_keras.atomic_file import write_json
from training.study_runs import (STARTS, add_study_arguments, finetune_from,
                                 missing_backbone_files)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join("training", "datasets", "squad2_sample", "squad2-sample.json")
CONFIG = os.path.join("training", "configs", "squad_demo.json")


def write_splits(sample: str, data_dir: str, train_articles: int = 2) -> dict:
    """Writes train.json and dev.json by article; returns {name: question count}."""
    from albert_keras.tasks.question_answering.squad_files import load_json, read_squad

    data = load_json(sample)
    articles = data["data"]
    if not 0 < train_articles < len(articles):
        raise ValueError(f"{sample}: {len(articles)} articles; --train_articles must leave "
                         f"at least one for each side, got {train_articles}")
    os.makedirs(data_dir, exist_ok=True)
    counts = {}
    for name, part in (("train", articles[:train_articles]),
                       ("dev", articles[train_articles:])):
        path = os.path.join(data_dir, f"{name}.json")
        write_json(path, {"version": data.get("version", "v2.0"), "data": part})
        counts[name] = len(read_squad(path))
    return counts


def no_answer_baseline(dev: str) -> dict:
    """The official metrics of answering "" to every question."""
    from albert_keras.tasks.question_answering.squad_files import load_json, read_squad
    from albert_keras.tasks.question_answering.official_eval import evaluate_v2

    predictions = {example.qid: "" for example in read_squad(dev)}
    return evaluate_v2(load_json(dev), predictions, source=dev)


def always_answering(run_dir: str, dev: str) -> dict:
    """The official metrics of a fine-tuned model that never answers "" (its best span
    for every question): how good its spans are, whatever the null threshold."""
    import keras

    from albert_keras.tasks.question_answering.dataset import predict_answers
    from albert_keras.tasks.question_answering.evaluation import forward_function
    from albert_keras.tasks.question_answering.official_eval import evaluate_v2
    from albert_keras.tasks.question_answering.squad_files import load_json, read_squad
    from albert_keras.tokenizer import AlbertTokenizer

    model = keras.saving.load_model(run_directory.model_file(run_dir))
    settings = model.settings.replace(null_threshold=float("inf"))
    examples = read_squad(dev)
    found = predict_answers(forward_function(model),
                            AlbertTokenizer.from_file(os.path.join(run_dir, "spm.model")),
                            examples, settings.windows, settings.answers)
    return evaluate_v2(load_json(dev), {e.qid: a["text"] for e, a in zip(examples, found)},
                       source=dev)


def run_one(start: str, args, data_dir: str) -> dict:
    output = os.path.join(args.output_dir, start)
    print(f"== {start} weights -> {output}", flush=True)
    return finetune_from(start, os.path.join(ROOT, CONFIG), output, args.init_model,
                         args.total_steps, train_file=os.path.join(data_dir, "train.json"),
                         eval_file=os.path.join(data_dir, "dev.json"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.squad_study",
                                     description=__doc__.split("\n\n")[0])
    add_study_arguments(parser, "runs/demo_squad")
    parser.add_argument("--sample", default=os.path.join(ROOT, SAMPLE))
    parser.add_argument("--train_articles", type=int, default=2)
    parser.add_argument("--report_only", action="store_true",
                        help="reuse runs that finished (OUTPUT_DIR/*/eval_results.json)")
    args = parser.parse_args(argv)

    data_dir = os.path.join(args.output_dir, "data")
    try:
        counts = write_splits(args.sample, data_dir, args.train_articles)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("split (questions):", json.dumps(counts), flush=True)
    if args.prepare_only:
        return 0
    missing = missing_backbone_files(args.init_model)
    if missing:
        print(f"error: {args.init_model} has no {', '.join(missing)}; run `make demo` first "
              f"or pass --init_model", file=sys.stderr)
        return 2

    dev = os.path.join(data_dir, "dev.json")
    results, spans = {}, {}
    for start in STARTS:
        run_dir = os.path.join(args.output_dir, start)
        done = os.path.join(run_dir, "eval_results.json")
        if args.report_only and os.path.isfile(done):
            with open(done, encoding="utf-8") as f:
                results[start] = json.load(f)
        else:
            results[start] = run_one(start, args, data_dir)
        spans[start] = always_answering(run_dir, dev)
    results["always no answer"] = no_answer_baseline(dev)
    write_json(os.path.join(args.output_dir, "study.json"),
               {"split": counts, "runs": results, "always_answering": spans}, indent=2)
    print(f"\nSQuAD 2.0 on the held-out article ({counts['dev']} questions, "
          f"{results['always no answer']['NoAns_total']} unanswerable)\n")
    print("| model | EM | F1 | HasAns F1 | NoAns EM | HasAns EM / F1, always answering |")
    print("|---|---|---|---|---|---|")
    names = {"pretrained": "from the demo backbone", "random": "from random weights",
             "always no answer": 'always "no answer"'}
    for key, label in names.items():
        r = results[key]
        forced = (f"{spans[key]['HasAns_exact']:.1f} / {spans[key]['HasAns_f1']:.1f}"
                  if key in spans else "-")
        print(f"| {label} | {r['exact']:.1f} | {r['f1']:.1f} | {r['HasAns_f1']:.1f} | "
              f"{r['NoAns_exact']:.1f} | {forced} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

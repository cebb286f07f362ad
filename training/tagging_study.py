"""Does pretraining pay for tagging? UPOS tagging on the bundled UD English EWT sentences,
fine-tuned from a pretrained backbone and from random weights, on 100, 400 and all
training sentences.

    python -m training.tagging_study [--init_model runs/demo] [--output_dir runs/demo_tagging]
    python -m training.tagging_study --prepare_only     # only the data split

The split (training/datasets/ud_english_ewt, the treebank's development file, 2,001
sentences): the evaluation part is every document from the first one that starts at or
after sentence 1,501 (documents are never split); the training pool is what comes
before, and the 100- and 400-sentence sets are its first sentences. Sentence blocks are
copied verbatim into OUTPUT_DIR/data/{train,train_100,train_400,dev}.conllu.

Each run is `training.finetune` with training/configs/tagging_demo.json (the same steps
for every size); from random weights it takes the backbone's config
(init_model/albert_config.json). Writes OUTPUT_DIR/study.json and prints a Markdown
table with the most-frequent-tag baseline.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys

from albert_keras.atomic_file import write_json, write_text
from training.study_runs import (STARTS, add_study_arguments, finetune_from,
                                 missing_backbone_files)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TREEBANK = os.path.join("training", "datasets", "ud_english_ewt", "en_ewt-ud-dev.conllu")
CONFIG = os.path.join("training", "configs", "tagging_demo.json")
EVAL_FROM_SENTENCE = 1501
SIZES = (100, 400, "all")


def sentence_blocks(path: str) -> list:
    """[(starts a document, the block's text)] of a CoNLL-U file, in order."""
    with open(path, encoding="utf-8") as f:
        blocks = [block for block in f.read().split("\n\n") if block.strip()]
    return [("# newdoc" in block, block.strip("\n") + "\n\n") for block in blocks]


def write_splits(treebank: str, data_dir: str) -> dict:
    """Writes the split (module docstring); returns {name: sentence count}."""
    blocks = sentence_blocks(treebank)
    cut = next((i for i, (new_document, _) in enumerate(blocks)
                if new_document and i + 1 >= EVAL_FROM_SENTENCE), None)
    if cut is None:
        raise ValueError(f"{treebank}: no document starts at or after sentence "
                         f"{EVAL_FROM_SENTENCE}")
    texts = [text for _, text in blocks]
    parts = {"train": texts[:cut], "dev": texts[cut:]}
    parts.update({f"train_{n}": texts[:n] for n in SIZES if n != "all"})
    os.makedirs(data_dir, exist_ok=True)
    for name, part in parts.items():
        write_text(os.path.join(data_dir, f"{name}.conllu"), "".join(part))
    return {name: len(part) for name, part in parts.items()}


def majority_baseline(train_file: str, eval_file: str) -> tuple:
    from albert_keras.tasks.tagging.data import read_tagged_file

    counts = collections.Counter(t for s in read_tagged_file(train_file) for t in s.tags)
    tag = counts.most_common(1)[0][0]
    gold = [t for s in read_tagged_file(eval_file) for t in s.tags]
    return tag, sum(t == tag for t in gold) / len(gold)


def run_one(size, start: str, args, data_dir: str) -> dict:
    name = "train" if size == "all" else f"train_{size}"
    output = os.path.join(args.output_dir, f"{start}_{size}")
    print(f"== {start} weights, {size} training sentences -> {output}", flush=True)
    return finetune_from(start, CONFIG, output, args.init_model, args.total_steps,
                         train_file=os.path.join(data_dir, f"{name}.conllu"),
                         eval_file=os.path.join(data_dir, "dev.conllu"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.tagging_study",
                                     description=__doc__.split("\n\n")[0])
    add_study_arguments(parser, "runs/demo_tagging")
    parser.add_argument("--treebank", default=os.path.join(ROOT, TREEBANK))
    args = parser.parse_args(argv)

    data_dir = os.path.join(args.output_dir, "data")
    counts = write_splits(args.treebank, data_dir)
    print("split:", json.dumps(counts), flush=True)
    if args.prepare_only:
        return 0
    missing = missing_backbone_files(args.init_model)
    if missing:
        print(f"error: {args.init_model} has no {', '.join(missing)}; run `make demo` first "
              f"or pass --init_model", file=sys.stderr)
        return 2

    results = {}
    for size in SIZES:
        for start in STARTS:
            results[f"{start}_{size}"] = run_one(size, start, args, data_dir)
    tag, baseline = majority_baseline(os.path.join(data_dir, "train.conllu"),
                                      os.path.join(data_dir, "dev.conllu"))
    write_json(os.path.join(args.output_dir, "study.json"),
               {"split": counts, "runs": results,
                "majority_baseline": {"tag": tag, "accuracy": baseline}}, indent=2)
    print(f"\nUPOS accuracy on {counts['dev']} dev sentences "
          f"({results['pretrained_all']['words']} words)\n")
    print("| training sentences | from the pretrained backbone | from random weights |")
    print("|---|---|---|")
    for size in SIZES:
        label = f"all ({counts['train']})" if size == "all" else str(size)
        print(f"| {label} | {results[f'pretrained_{size}']['accuracy']:.3f} | "
              f"{results[f'random_{size}']['accuracy']:.3f} |")
    print(f"\nmost frequent tag ({tag}) everywhere: {baseline:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

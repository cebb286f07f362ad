"""A small fine-tuning task made from the bundled corpus: which novel is a sentence
from, Pride and Prejudice or Emma? It gives the fine-tuning command real text to learn
from without a download.

    python -m training.novel_task --output_dir runs/demo_finetune/data

Writes train.tsv and dev.tsv (columns text_a, label). Whole chapters go to dev (every
10th chapter of each novel), so no dev sentence shares a chapter with training ones.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys

from albert_keras.atomic_file import atomic_path

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "bundled_corpus.txt")
# Chapters per novel, in the corpus's order (training/corpus/README.md).
NOVELS = (("sense_and_sensibility", 50), ("pride_and_prejudice", 61), ("mansfield_park", 48),
          ("emma", 55), ("northanger_abbey", 31), ("persuasion", 24))
LABELS = ("pride_and_prejudice", "emma")
MIN_WORDS = 8


def chapters_by_novel(path: str = CORPUS) -> dict[str, list[list[str]]]:
    with open(path, encoding="utf-8") as f:
        chapters = [c.strip("\n").split("\n") for c in f.read().split("\n\n") if c.strip()]
    expected = sum(count for _, count in NOVELS)
    if len(chapters) != expected:
        raise ValueError(f"{path}: {len(chapters)} documents, expected {expected} chapters")
    novels, start = {}, 0
    for name, count in NOVELS:
        novels[name] = chapters[start:start + count]
        start += count
    return novels


def write_task(output_dir: str) -> dict[str, int]:
    novels = chapters_by_novel()
    rows = {"train": [], "dev": []}
    for label in LABELS:
        for index, chapter in enumerate(novels[label]):
            split = "dev" if index % 10 == 9 else "train"
            rows[split] += [(s, label) for s in chapter if len(s.split()) >= MIN_WORDS]
    os.makedirs(output_dir, exist_ok=True)
    for split, examples in rows.items():
        path = os.path.join(output_dir, f"{split}.tsv")
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
            writer.writerow(("text_a", "label"))
            writer.writerows(examples)
    return {split: len(examples) for split, examples in rows.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default="runs/demo_finetune/data")
    args = parser.parse_args(argv)
    try:
        counts = write_task(args.output_dir)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.output_dir}/train.tsv ({counts['train']} sentences) and "
          f"dev.tsv ({counts['dev']}); labels {', '.join(LABELS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

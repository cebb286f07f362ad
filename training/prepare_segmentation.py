"""Chinese word segmentation and part of speech as character-level tagging: a UD
treebank (CoNLL-U, e.g. UD Chinese GSDSimp) -> JSONL for `training.finetune --task_type
tagging`.

    python -m training.prepare_segmentation --input zh_gsdsimp-ud-dev.conllu \
        --output_dir runs/segmentation_zh/data [--dev_every 5]

Each sentence's raw text (its `# text =` line) is cut into the units the exported `tag`
signature cuts raw text into (albert_keras/tasks/tagging/word_split.py: every CJK
ideograph and punctuation mark a unit, runs of other characters one unit, whitespace
dropped). A unit is tagged B-UPOS when a treebank word starts with it, I-UPOS when it
continues one (UPOS of that word): the tagger's entities (tasks/tagging/spans.py) are
then the words with their part of speech, and the tagging metrics' span F1 is the CoNLL
2018 shared task's word + UPOS F1 (words aligned by their characters), their unlabeled
span F1 its segmentation (word) F1. A unit that runs across a word boundary (Latin
letters or digits of two words with no space between) cannot be split by the tagger; it
is tagged with the word it starts in and counted.

Writes OUTPUT_DIR/train.jsonl and dev.jsonl ({"tokens": [...], "tags": [...]} per line),
every --dev_every-th sentence to dev.jsonl; multiword-token lines and empty nodes carry
no word of their own and are skipped, as the tagging reader does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from albert_keras import atomic_file
from albert_keras.tasks.tagging.word_split import split_words


def read_treebank(path: str):
    """Yields (raw text, [(word, upos), ...]) per sentence, naming the file and line of a
    sentence without its `# text =` line."""
    text, words, first = None, [], None
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if not line:
                if words:
                    if text is None:
                        raise ValueError(f"{path}:{first}: a sentence without '# text ='")
                    yield text, words
                text, words, first = None, [], None
                continue
            first = first or number
            if line.startswith("# text ="):
                text = line[len("# text ="):].strip()
            elif not line.startswith("#"):
                columns = line.split("\t")
                if len(columns) != 10:
                    raise ValueError(f"{path}:{number}: expected 10 tab-separated columns")
                if "-" in columns[0] or "." in columns[0]:
                    continue
                words.append((columns[1], columns[3]))
    if words:
        if text is None:
            raise ValueError(f"{path}:{first}: a sentence without '# text ='")
        yield text, words


def character_tags(text: str, words: list, where: str = "the sentence") -> tuple:
    """(units, tags, units crossing a word boundary) for one sentence."""
    starts, upos_at, position = {}, [], 0
    for word, upos in words:
        found = text.find(word, position)
        if found < 0:
            raise ValueError(f"{where}: the word {word!r} is not in its text after "
                             f"character {position}")
        starts[found] = upos
        upos_at.append((found, found + len(word), upos))
        position = found + len(word)
    units, tags, crossing = [], [], 0
    for unit, start, end in split_words(text):
        containing = next(((a, b, upos) for a, b, upos in upos_at if a <= start < b), None)
        if containing is None:
            raise ValueError(f"{where}: {unit!r} at {start} belongs to no word")
        a, b, upos = containing
        crossing += end > b
        units.append(unit)
        tags.append(("B-" if start == a else "I-") + upos)
    return units, tags, crossing


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.prepare_segmentation",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, help="a CoNLL-U treebank")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--dev_every", type=int, default=5,
                        help="every N-th sentence goes to dev.jsonl")
    args = parser.parse_args(argv)
    splits = {"train": [], "dev": []}
    crossing = units = 0
    try:
        for index, (text, words) in enumerate(read_treebank(args.input)):
            tokens, tags, crossed = character_tags(text, words,
                                                   f"{args.input}: sentence {index + 1}")
            crossing += crossed
            units += len(tokens)
            split = "dev" if args.dev_every and index % args.dev_every == args.dev_every - 1 \
                else "train"
            splits[split].append(json.dumps({"tokens": tokens, "tags": tags},
                                            ensure_ascii=False))
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    os.makedirs(args.output_dir, exist_ok=True)
    for name, lines in splits.items():
        atomic_file.write_text(os.path.join(args.output_dir, f"{name}.jsonl"),
                               "\n".join(lines) + "\n")
    print(json.dumps({"train_sentences": len(splits["train"]),
                      "dev_sentences": len(splits["dev"]), "units": units,
                      "units_across_a_word_boundary": crossing}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The vocabulary that comes with a converted checkpoint, found by the names its
publishers use, so that the converted model carries it (models/model_vocabulary.py):
- transformers: vocab.txt (BertTokenizer: the Chinese ALBERTs) or spiece.model
  (AlbertTokenizer), with tokenizer_config.json's do_lower_case;
- Google's TF1 tarballs, beside albert_config.json or the checkpoint:
  vocab_chinese.txt (albert_*_zh), vocab.txt, 30k-clean.model (the English ones);
- keras-hub presets: assets/tokenizer/vocabulary.spm.
"""

from __future__ import annotations

import json
import os

NAMES = ("vocab_chinese.txt", "vocab.txt", "spiece.model", "30k-clean.model",
         os.path.join("assets", "tokenizer", "vocabulary.spm"))


def find_vocabulary(directories) -> str | None:
    """The first vocabulary file, by NAMES, in the first directory that has one."""
    for directory in directories:
        for name in NAMES:
            path = os.path.join(directory, name)
            if directory and os.path.isfile(path):
                return path
    return None


def lower_case_of(directory: str) -> bool:
    """tokenizer_config.json's do_lower_case (True when absent, as BERT's and ALBERT's
    tokenizers default)."""
    path = os.path.join(directory, "tokenizer_config.json")
    if not os.path.isfile(path):
        return True
    with open(path, encoding="utf-8") as f:
        return bool(json.load(f).get("do_lower_case", True))


def checkpoint_directories(source: str, input_path: str, config: str | None) -> list[str]:
    """Where a vocabulary for this conversion may lie."""
    if source in ("transformers", "keras_hub"):
        return [input_path] if os.path.isdir(input_path) else []
    found = []
    for path in (config, input_path):
        if path:
            directory = input_path if os.path.isdir(path) else os.path.dirname(path)
            found.append(directory or ".")
    return found

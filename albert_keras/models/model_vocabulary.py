"""The vocabulary a model carries: its tokenizer's file (SentencePiece or WordPiece) and
whether it lowercases, saved inside the .keras file as assets of the backbone (as
keras-hub saves its tokenizers' vocabularies), so that fine-tuning and export need no
vocabulary flag and cannot pair a model with the wrong one.

A .keras file written before models carried a vocabulary loads with none; the programs
then take the vocabulary from their flag, as before.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile

VOCABULARY_ASSET = "vocabulary"
SETTINGS_ASSET = "tokenizer.json"


@dataclasses.dataclass(frozen=True)
class ModelVocabulary:
    vocabulary: object  # a SentencePieceVocabulary or WordPieceVocabulary
    lower_case: bool

    def describe(self) -> str:
        return (f"a {self.vocabulary.kind} vocabulary of {self.vocabulary.size} pieces, "
                f"{'lowercased' if self.lower_case else 'cased'}")


def _backbone(model):
    return getattr(model, "backbone", model)


def attach_vocabulary(model, vocabulary, lower_case: bool) -> None:
    """Gives the model's backbone the vocabulary to save with it."""
    _backbone(model).carried_vocabulary = ModelVocabulary(vocabulary, bool(lower_case))


def carried_vocabulary(model) -> ModelVocabulary | None:
    return getattr(_backbone(model), "carried_vocabulary", None)


def save_assets(carried: ModelVocabulary | None, dir_path: str) -> None:
    if carried is None:
        return
    with open(os.path.join(dir_path, VOCABULARY_ASSET), "wb") as f:
        f.write(carried.vocabulary.file_bytes)
    with open(os.path.join(dir_path, SETTINGS_ASSET), "w", encoding="utf-8") as f:
        json.dump({"kind": carried.vocabulary.kind, "lower_case": carried.lower_case}, f)


def _from_asset_bytes(data: bytes, settings: bytes, source: str) -> ModelVocabulary:
    from albert_keras.vocabulary import vocabulary_from_bytes

    return ModelVocabulary(vocabulary_from_bytes(data, source),
                           bool(json.loads(settings)["lower_case"]))


def load_assets(dir_path: str | None, source: str = "the model") -> ModelVocabulary | None:
    """The vocabulary saved in a backbone's assets directory, or None (an older file)."""
    if not dir_path or not os.path.isfile(os.path.join(dir_path, SETTINGS_ASSET)):
        return None
    with open(os.path.join(dir_path, VOCABULARY_ASSET), "rb") as f:
        data = f.read()
    with open(os.path.join(dir_path, SETTINGS_ASSET), "rb") as f:
        settings = f.read()
    return _from_asset_bytes(data, settings, f"the vocabulary inside {source}")


def read_from_keras_file(path: str) -> ModelVocabulary | None:
    """The vocabulary a .keras file carries, read from the archive without building the
    model (None when it carries none)."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        for name in names:  # assets/<the backbone's path>/tokenizer.json
            if name.startswith("assets/") and name.endswith("/" + SETTINGS_ASSET):
                folder = name[: -len(SETTINGS_ASSET)]
                if folder + VOCABULARY_ASSET in names:
                    return _from_asset_bytes(archive.read(folder + VOCABULARY_ASSET),
                                             archive.read(name), f"the vocabulary inside {path}")
    return None


def choose_vocabulary(carried: ModelVocabulary | None, given, lower_case: bool | None, *,
                      replace: bool, model: str, given_name: str = "",
                      flag: str = "--spm_model", replace_flag: str = "--replace_vocabulary",
                      cased_flag: str = "--cased") -> ModelVocabulary:
    """The vocabulary to use with a model: the one it carries; the `given` one (read
    from given_name) when it carries none (a file saved before models carried one); the
    given one over the carried one only with `replace`. lower_case: None when not asked
    for. Any other disagreement is a ValueError that names the flags."""
    if carried is None:
        if given is None:
            raise ValueError(f"{model} carries no vocabulary (it was saved before models "
                             f"carried theirs): give its vocabulary with {flag}")
        return ModelVocabulary(given, True if lower_case is None else lower_case)
    if replace:
        return ModelVocabulary(given or carried.vocabulary,
                               carried.lower_case if lower_case is None else lower_case)
    if given is not None and given.file_bytes != carried.vocabulary.file_bytes:
        raise ValueError(f"{flag} {given_name} is not the vocabulary {model} carries "
                         f"({carried.describe()}); leave {flag} out to use the model's, or "
                         f"add {replace_flag} to replace it on purpose")
    if lower_case is not None and lower_case != carried.lower_case:
        raise ValueError(f"{model} carries {carried.describe()}; {cased_flag} says otherwise "
                         f"(add {replace_flag} to change it on purpose)")
    return carried

"""Tagging's config section (TaggingConfig) and the settings a tagger carries to
serving (TaggingSettings): each rule and default stated once, here."""

from __future__ import annotations

import dataclasses

from albert_keras.tasks.task import SettingError, check_dropout

FORMATS = ("conllu", "conll", "jsonl")


def default_stride(window_length: int) -> int:
    """Half a window: every piece has at least a quarter window of context on each side
    in its best window, except near the sentence's ends."""
    return max(1, (window_length - 2) // 2)


@dataclasses.dataclass(frozen=True)
class TaggingSettings:
    """How a tagger reads a sentence: windows of window_length pieces ([CLS] pieces
    [SEP]) starting every window_stride pieces (None: half a window). A tagger records
    the ones it was fine-tuned with, so that its export tags the way evaluation did."""

    window_length: int
    window_stride: int | None = None

    def __post_init__(self):
        if self.window_length < 3:
            raise SettingError("window_length", f"must be at least 3 ([CLS] piece [SEP]), "
                               f"got {self.window_length}")
        if self.window_stride is None:
            object.__setattr__(self, "window_stride", default_stride(self.window_length))
        if not 1 <= self.window_stride <= self.window_length - 2:
            raise SettingError("window_stride", f"must be in [1, {self.window_length - 2}] "
                               f"(the window length {self.window_length} - 2), got "
                               f"{self.window_stride}")

    def to_config(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> TaggingSettings:
        return cls(**config)


@dataclasses.dataclass
class TaggingConfig:
    """The experiment's "task" section for task_type tagging.

    label_names: the tags in id order (None: those of train_file, sorted).
    data_format: conllu, conll or jsonl ("": by the file's extension); tag_column: the
    1-based column of the tags (0: the format's own, CoNLL-U 4 = UPOS, columns the last).
    window_stride: pieces between the windows of a long sentence (0: half a window)."""

    label_names: list | None = None
    data_format: str = ""
    tag_column: int = 0
    window_stride: int = 0
    classifier_dropout: float = 0.1

    def validate(self, experiment, fail):
        names = self.label_names
        if names is not None and (not isinstance(names, list) or not names
                                  or len({str(name) for name in names}) != len(names)):
            fail("label_names", "list the tags once each (or null: those of train_file)")
        if self.data_format not in ("",) + FORMATS:
            fail("data_format", f"use {', '.join(FORMATS)} or \"\", not {self.data_format!r}")
        if self.tag_column and self.tag_column < 2:
            fail("tag_column", f"a 1-based column after the word's, got {self.tag_column}")
        try:
            self.settings(experiment.seq_length)
        except SettingError as error:
            fail("seq_length" if error.field == "window_length" else error.field,
                 error.message)
        check_dropout(self.classifier_dropout, fail)

    def settings(self, seq_length: int) -> TaggingSettings:
        return TaggingSettings(seq_length, self.window_stride or None)

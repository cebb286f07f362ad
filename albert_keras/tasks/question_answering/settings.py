"""Question answering's settings, each rule and default stated once: WindowSettings
(how windows.py cuts windows), AnswerSettings (how answers.py picks answers),
AnsweringSettings (both, what a question answerer carries to serving) and the config
section QuestionAnsweringConfig, whose defaults and checks are theirs."""

from __future__ import annotations

import dataclasses

from albert_keras.tasks.task import SettingError

QA_HEADS = ("span", "squad2")
SQUAD_VERSIONS = ("auto", "1.1", "2.0")
METRICS = ("auto", "squad", "cmrc2018")


@dataclasses.dataclass(frozen=True)
class WindowSettings:
    """How windows are cut (windows.py): the reference run_squad defaults."""

    max_seq_length: int = 384
    doc_stride: int = 128
    max_query_length: int = 64

    def __post_init__(self):
        for name in ("doc_stride", "max_query_length"):
            if getattr(self, name) < 1:
                raise SettingError(name, f"must be at least 1, got {getattr(self, name)}")
        if self.max_seq_length < self.max_query_length + 4:
            raise SettingError("max_seq_length", (
                f"{self.max_seq_length} leaves no context after [CLS], max_query_length "
                f"({self.max_query_length}) question pieces and two [SEP]; use at least "
                f"{self.max_query_length + 4}"))


@dataclasses.dataclass(frozen=True)
class AnswerSettings:
    """How answers are picked (answers.py): the reference run_squad defaults."""

    n_best_size: int = 20
    max_answer_length: int = 30
    version_2: bool = True  # SQuAD 2.0: "" is an answer
    null_threshold: float = 0.0

    def __post_init__(self):
        for name in ("n_best_size", "max_answer_length"):
            if getattr(self, name) < 1:
                raise SettingError(name, f"must be at least 1, got {getattr(self, name)}")


@dataclasses.dataclass(frozen=True)
class AnsweringSettings:
    """How a question answerer cuts windows and picks answers: what it was fine-tuned
    and evaluated with (the null threshold chosen on the eval file among them), so that
    its export answers the way evaluation did. Replaced as a whole, never patched."""

    windows: WindowSettings
    answers: AnswerSettings

    def to_config(self) -> dict:
        return {"windows": dataclasses.asdict(self.windows),
                "answers": dataclasses.asdict(self.answers)}

    @classmethod
    def from_config(cls, config: dict) -> AnsweringSettings:
        """From to_config's dict, or from the flat dict of both halves' fields that
        models saved before this class recorded as answer_settings."""
        if "windows" in config:
            return cls(WindowSettings(**config["windows"]), AnswerSettings(**config["answers"]))
        fields = {f.name for f in dataclasses.fields(WindowSettings)}
        return cls(WindowSettings(**{k: v for k, v in config.items() if k in fields}),
                   AnswerSettings(**{k: v for k, v in config.items() if k not in fields}))

    @classmethod
    def for_length(cls, max_seq_length: int) -> AnsweringSettings:
        """For a model that records none (a converted checkpoint): the reference's
        proportions (384, 128, 64) scaled to max_seq_length; SQuAD 2.0, threshold 0."""
        return cls(WindowSettings(max_seq_length, min(128, max(1, max_seq_length // 3)),
                                  min(64, max(1, max_seq_length // 6))), AnswerSettings())

    def replace(self, max_seq_length=None, null_threshold=None, version_2=None):
        """A copy with the given settings (None: kept)."""
        windows, answers = self.windows, self.answers
        if max_seq_length is not None:
            windows = dataclasses.replace(windows, max_seq_length=max_seq_length)
        if null_threshold is not None:
            answers = dataclasses.replace(answers, null_threshold=float(null_threshold))
        if version_2 is not None:
            answers = dataclasses.replace(answers, version_2=version_2)
        return AnsweringSettings(windows, answers)


@dataclasses.dataclass
class QuestionAnsweringConfig:
    """The experiment's "task" section for task_type question_answering (SQuAD 1.1 /
    2.0 JSON files; the experiment's seq_length is the window, 384 in the reference).

    qa_head: "span" (run_squad_v1.py, transformers' AlbertForQuestionAnswering) or
    "squad2" (the reference SQuAD 2.0 head: start-conditioned ends, answerability).
    squad_version "auto": 2.0 when a file has an unanswerable question.
    null_threshold (SQuAD 2.0): null: the eval file's best-F1 threshold.
    metric: "squad" (the official SQuAD scripts: words), "cmrc2018" (CMRC 2018's
    character-level EM and F1, for Chinese) or "auto" (cmrc2018 when the eval file's
    contexts are mostly CJK ideographs)."""

    qa_head: str = "span"
    squad_version: str = "auto"
    doc_stride: int = WindowSettings.doc_stride
    max_query_length: int = WindowSettings.max_query_length
    n_best_size: int = AnswerSettings.n_best_size
    max_answer_length: int = AnswerSettings.max_answer_length
    null_threshold: float | None = None
    metric: str = "auto"

    def validate(self, experiment, fail):
        if self.qa_head not in QA_HEADS:
            fail("qa_head", f"use {' or '.join(QA_HEADS)}, not {self.qa_head!r}")
        if self.squad_version not in SQUAD_VERSIONS:
            fail("squad_version", f"use {', '.join(SQUAD_VERSIONS)}, not {self.squad_version!r}")
        if self.metric not in METRICS:
            fail("metric", f"use {', '.join(METRICS)}, not {self.metric!r}")
        if self.null_threshold is not None and (
                isinstance(self.null_threshold, bool)
                or not isinstance(self.null_threshold, (int, float))):
            fail("null_threshold", f"a number or null, got {self.null_threshold!r}")
        try:
            self.windows(experiment.seq_length)
            self.answers(version_2=True)
        except SettingError as error:
            fail("seq_length" if error.field == "max_seq_length" else error.field,
                 error.message)

    def windows(self, seq_length: int) -> WindowSettings:
        return WindowSettings(seq_length, self.doc_stride, self.max_query_length)

    def answers(self, version_2: bool) -> AnswerSettings:
        return AnswerSettings(self.n_best_size, self.max_answer_length, version_2,
                              0.0 if self.null_threshold is None else float(self.null_threshold))


def model_settings(settings=None, answer_settings=None) -> AnsweringSettings | None:
    """A question answerer's settings from its constructor arguments: `settings` (an
    AnsweringSettings or its config), or `answer_settings`, the flat dict that models
    saved before AnsweringSettings recorded."""
    if isinstance(settings, AnsweringSettings):
        return settings
    if settings or answer_settings:
        return AnsweringSettings.from_config(settings or answer_settings)
    return None

"""The config sections of classification and regression; the rules stated once here."""

from __future__ import annotations

import dataclasses

from albert_keras.tasks.task import check_dropout


@dataclasses.dataclass
class ClassificationConfig:
    """The experiment's "task" section for task_type classification: label_names, the
    labels in class-index order (a file's label column holds these names)."""

    label_names: list | None = None
    classifier_dropout: float = 0.1

    def validate(self, experiment, fail):
        names = self.label_names
        if not isinstance(names, list) or len(names) < 2:
            fail("label_names", "list the classification labels (at least 2), in "
                 "class-index order")
        if len({str(name) for name in names}) != len(names):
            fail("label_names", f"labels repeat: {names}")
        check_dropout(self.classifier_dropout, fail)


@dataclasses.dataclass
class RegressionConfig:
    """The experiment's "task" section for task_type regression (a number per row)."""

    classifier_dropout: float = 0.1

    def validate(self, experiment, fail):
        check_dropout(self.classifier_dropout, fail)

"""Tasks: one folder per task, each with its data, settings, evaluation and serving
signatures, and one Task object (task.py) that names them; the protocol is task.py here.

    classification/      sentence (pair) classification and regression: TSV/CSV/JSONL
    tagging/             word tagging: CoNLL-U, CoNLL, JSONL; windows; entity spans
    question_answering/  SQuAD 1.1 / 2.0: windows, answer extraction, official metrics
    pretraining.py       the pretrained model's signatures (fill_mask, sentence_order)

TASKS maps a config's task_type to its Task. A new task registers itself with
register_task(task); the programs find it there (training.finetune by name,
serving.export by the model it is given).
"""

from __future__ import annotations

from albert_keras.tasks.task import SettingError, Task

TASKS: dict = {}


def register_task(task: Task) -> Task:
    """Adds `task` under task.name (replacing a task of that name); returns it."""
    if not task.name:
        raise ValueError(f"{type(task).__name__} has no name")
    TASKS[task.name] = task
    return task


def task_named(name: str) -> Task:
    _register_builtin_tasks()
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; use one of {', '.join(sorted(TASKS))}")
    return TASKS[name]


def task_of_model(model) -> Task | None:
    """The task that serves `model` (None for a bare backbone): of the tasks whose
    model_classes it is an instance of, the one registered last (so a task registered
    for a subclass of a built-in task's model wins over the built-in task)."""
    _register_builtin_tasks()
    for task in reversed(list(TASKS.values())):
        if task.serves(model):
            return task
    return None


def all_tasks() -> list:
    _register_builtin_tasks()
    return list(TASKS.values())


_BUILTIN_REGISTERED = []


def _register_builtin_tasks():
    """The built-in tasks, registered on first use (their modules import TensorFlow)."""
    if _BUILTIN_REGISTERED:
        return
    _BUILTIN_REGISTERED.append(True)
    from albert_keras.tasks import pretraining
    from albert_keras.tasks.classification import task as classification
    from albert_keras.tasks.question_answering import task as question_answering
    from albert_keras.tasks.tagging import task as tagging

    builtin = {task.name: task for module in (classification, tagging, question_answering,
                                              pretraining)
               for task in module.TASKS}
    # A task registered before (a user's) replaces a built-in one of its name.
    merged = {**builtin, **TASKS}
    TASKS.clear()
    TASKS.update(merged)


__all__ = ["SettingError", "TASKS", "Task", "all_tasks", "register_task", "task_named",
           "task_of_model"]

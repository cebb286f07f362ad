"""SQuAD examples -> tf.data batches of windows for training, and the evaluation path
(windows -> model -> answers) that training.finetune scores and the exported `answer`
signature is checked against. Windows: windows.py; extraction:
answers.py.

The examples are held in memory (the questions, contexts and gold spans as string and
int tensors: SQuAD 2.0's 130k training questions take about 100 MB) and cut into
windows inside tf.data, so there is no feature file to prepare or to go stale.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from albert_keras.tasks.question_answering.answers import AnswerSettings, extract_answers
from albert_keras.tasks.question_answering.windows import WindowSettings, squad_windows
from albert_keras.tasks.window_batches import window_batches

LABEL_NAMES = ("start_positions", "end_positions", "is_impossible")


def gold_span(example) -> tuple:
    """The first gold answer as a code-point span [start, end), (-1, -1) for none: the
    span training uses (the reference trains on the first answer)."""
    if not example.answers:
        return -1, -1
    text, start = example.answers[0]
    return start, start + len(text)


def squad_dataset(examples, tokenizer, settings: WindowSettings, batch_size: int,
                  training: bool = True,
                  input_context: tf.distribute.InputContext | None = None,
                  seed: int | None = None, examples_per_map: int = 32,
                  shuffle_buffer: int = 10_000) -> tf.data.Dataset:
    """Batches of windows: the backbone's features with "start_positions",
    "end_positions" int32 and "is_impossible" float32 [batch]. training=True shuffles
    questions and windows and drops the last partial batch; with an input_context, each
    input pipeline takes every num_input_pipelines-th question and batches per replica."""
    spans = np.array([gold_span(e) for e in examples], np.int32).reshape(-1, 2)
    examples_data = tf.data.Dataset.from_tensor_slices((
        tf.constant([e.question for e in examples], tf.string),
        tf.constant([e.context for e in examples], tf.string), spans[:, 0], spans[:, 1]))

    def to_windows(questions, contexts, starts, ends):
        windows = squad_windows(tokenizer, questions, contexts, settings, starts, ends)
        return dict(windows["features"], **{name: windows[name] for name in LABEL_NAMES})

    return window_batches(examples_data, len(examples), to_windows, batch_size, training,
                          input_context, seed, examples_per_map, shuffle_buffer)


def predict_answers(forward, tokenizer, examples, window_settings: WindowSettings,
                    answer_settings: AnswerSettings, examples_per_batch: int = 32,
                    windows_per_call: int = 64) -> list:
    """Per example (in order), the answer dict of extract_answers: text, start, end
    (code points), score, null_odds. forward: features -> the question answerer's
    outputs over the windows, called on at most windows_per_call windows at once."""
    answers = []
    for begin in range(0, len(examples), examples_per_batch):
        chunk = examples[begin:begin + examples_per_batch]
        contexts = tf.constant([e.context for e in chunk], tf.string)
        windows = squad_windows(tokenizer, [e.question for e in chunk], contexts,
                                window_settings)
        count = int(tf.shape(windows["window_example"])[0])
        outputs = [forward({name: value[first:first + windows_per_call]
                            for name, value in windows["features"].items()})
                   for first in range(0, count, windows_per_call)]
        outputs = {name: tf.concat([part[name] for part in outputs], 0)
                   for name in outputs[0]}  # (a question has at least one window)
        found = extract_answers(windows, outputs, contexts, answer_settings)
        found = {name: value.numpy() for name, value in found.items()}
        for i in range(len(chunk)):
            answers.append(dict(text=found["text"][i].decode("utf-8"),
                                start=int(found["start"][i]), end=int(found["end"][i]),
                                score=float(found["score"][i]),
                                null_odds=float(found["null_odds"][i])))
    return answers

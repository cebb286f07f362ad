"""Question answering (SQuAD 1.1 / 2.0): the Task object. Its pieces: settings.py
(config section, AnsweringSettings), squad_files.py (reading SQuAD JSON), windows.py
(questions and contexts into windows), answers.py (answer extraction), dataset.py
(training batches, the evaluation path), evaluation.py (EM / F1, null threshold,
predictions), official_eval.py (the official scripts' rules), models/question_answerer.py
and models/squad2_answerer.py; serving signature answer.

`answer` takes question and context strings and runs the windows of windows.py and the
extraction of answers.py, the path evaluation runs, with the settings the model was
fine-tuned and evaluated with (its null threshold among them, which the exporter can
override)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from albert_keras.models.question_answerer import AlbertQuestionAnswerer
from albert_keras.models.squad2_answerer import AlbertSquad2Answerer
from albert_keras.tasks.question_answering import evaluation
from albert_keras.tasks.question_answering.answers import extract_answers
from albert_keras.tasks.question_answering.dataset import squad_dataset
from albert_keras.tasks.question_answering.settings import (AnsweringSettings,
                                                            QuestionAnsweringConfig)
from albert_keras.tasks.question_answering.windows import squad_windows
from albert_keras.tasks.serving_ops import TEXT, forward_in_length_groups, valid_utf8
from albert_keras.tasks.task import Task


class QuestionAnsweringTask(Task):
    name = "question_answering"
    config_class = QuestionAnsweringConfig
    model_classes = (AlbertQuestionAnswerer, AlbertSquad2Answerer)
    signature_names = ("answer",)
    example_inputs = {"answer": {
        "question": np.array([b"What jumps?", b"Who?"]),
        "context": np.array([b"The quick brown fox jumps over the lazy dog.", b""])}}
    export_options = {
        "null_threshold": dict(
            type=float, help="SQuAD 2.0 question answerers: answer \"\" when the "
                             "no-answer score exceeds this (default: the threshold stored "
                             "at fine-tuning, the eval file's best F1)"),
        "squad_version": dict(
            choices=("1.1", "2.0"), help="question answerers: 1.1 always answers, 2.0 may "
                                         "answer \"\" (default: the fine-tuning run's; a "
                                         "converted model records none and answers as 2.0)"),
    }
    client_options = {
        "question": dict(action="append",
                         help="answer: a question; repeat for a batch, each with a --context"),
        "context": dict(action="append",
                        help="answer: the text the question's answer is taken from"),
    }

    # ------------------------------------------------------------ fine-tuning
    def read_data(self, experiment, damaged):
        return evaluation.SquadData(experiment, damaged)

    def build_model(self, backbone, experiment, data):
        model_class = (AlbertSquad2Answerer if experiment.task.qa_head == "squad2"
                       else AlbertQuestionAnswerer)
        return model_class(backbone=backbone, settings=data.settings)

    def dataset(self, experiment, data, tokenizer, training, batch_size, input_context=None):
        return squad_dataset(data.train if training else data.eval, tokenizer,
                             data.settings.windows, batch_size, training=training,
                             input_context=input_context, seed=experiment.seed)

    def callbacks(self, experiment, data, tokenizer):
        widened, answers = evaluation.widened_answers(data.train, tokenizer)
        print(f"Gold answers that start or end inside a piece, widened to whole pieces: "
              f"{widened} of {answers}", flush=True)
        return [evaluation.SquadEvaluation(tokenizer, data)] if data.eval else []

    def evaluate(self, model, experiment, data, tokenizer, output_dir):
        """The official metrics; the model then answers with the settings evaluated
        (the null threshold chosen among them), saved with it."""
        results, model.settings = evaluation.final_evaluation(model, tokenizer, data,
                                                              output_dir)
        return dict(results, num_examples=len(data.eval))

    # ------------------------------------------------------------ serving
    def serving_length(self, model) -> int:
        return (model.settings.windows.max_seq_length if model.settings
                else model.config.max_position_embeddings)

    def serving_settings(self, model, max_seq_length, null_threshold=None,
                         squad_version=None, **options):
        """The model's settings at max_seq_length (a model that records none: the
        reference's proportions), with null_threshold and squad_version ("1.1": always
        answer, "2.0": may answer "") replacing its own."""
        self.check_options(options)
        if squad_version not in (None,) + self.export_options["squad_version"]["choices"]:
            raise ValueError(f"squad_version must be 1.1 or 2.0, got {squad_version!r}")
        settings = model.settings or AnsweringSettings.for_length(max_seq_length)
        return settings.replace(
            max_seq_length=max_seq_length, null_threshold=null_threshold,
            version_2=None if squad_version is None else squad_version == "2.0")

    def signatures(self, module, settings) -> dict:
        model = module.model
        # The span head's logits have a position axis; the reference head's beam needs
        # as many positions as it keeps starts and ends.
        if isinstance(model, AlbertSquad2Answerer):
            forward = dict(positional=("start_log_probs",),
                           min_width=max(model.start_n_top, model.end_n_top, 2))
        else:
            forward = dict(positional=("start_logits", "end_logits"))

        def answer(question, context):
            """Questions and contexts [batch] -> the answer text, its code-point start
            and end in the context (-1 for none), its score; SQuAD 2.0 models also the
            no-answer score (null_odds) and whether the answer is "no answer"."""
            question, context = valid_utf8(question), valid_utf8(context)
            same_batch = tf.debugging.assert_equal(
                tf.size(question), tf.size(context),
                message="question and context must have the same batch size")
            with tf.control_dependencies([same_batch]):
                windows = squad_windows(module.tokenizer, question, context, settings.windows)
            outputs = forward_in_length_groups(model, windows["features"], **forward)
            found = extract_answers(windows, outputs, context, settings.answers)
            outputs = {"answer": found["text"], "answer_start": found["start"],
                       "answer_end": found["end"], "score": found["score"]}
            if settings.answers.version_2:
                outputs.update(no_answer_score=found["null_odds"],
                               no_answer=tf.equal(found["start"], -1))
            return outputs

        return {"answer": tf.function(answer, input_signature=[TEXT, TEXT])}

    def client_inputs(self, signature, args):
        if not args.question:
            return None
        if not args.context or len(args.context) != len(args.question):
            raise ValueError(f"give one --context per --question ({len(args.question)} "
                             f"questions, {len(args.context or [])} contexts)")
        return {"question": args.question, "context": args.context}


TASKS = (QuestionAnsweringTask(),)

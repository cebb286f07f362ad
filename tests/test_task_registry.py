"""A task defined here, registered with albert_keras.tasks.register_task, runs through
training.finetune and serving.export (its config section, data, model, evaluation,
signature, warmup request and client option) without an edit to any project file.

The toy task: is a sentence longer than `threshold_words` words? Its model is a
classifier subclass, so that the exporter finds the task by the model's class."""

import dataclasses
import json
import os
import random
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from albert_keras.models.classifier import AlbertClassifier
from albert_keras.tasks import TASKS, all_tasks, register_task, task_named, task_of_model
from albert_keras.tasks.serving_ops import TEXT
from albert_keras.tasks.task import Task
from albert_keras.tokenizer import pack_segments
from data_fixtures import WORDS, tiny_spm_model
from serving import client as client_lib
from serving import export as export_lib
from serving.export_module import signature_names
from serving.warmup import WARMUP_FILE, read_warmup_file
from training import finetune

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_CONFIG = os.path.join(ROOT, "training", "configs", "finetune_tiny.json")


@keras.saving.register_keras_serializable(package="toy_task_test")
class LengthClassifier(AlbertClassifier):
    """The toy task's model: a classifier of its own class."""


@dataclasses.dataclass
class LengthSection:
    threshold_words: int = 3
    classifier_dropout: float = 0.1

    def validate(self, experiment, fail):
        if self.threshold_words < 1:
            fail("threshold_words", f"must be at least 1, got {self.threshold_words}")


def is_long(text: str, threshold: int) -> int:
    return int(len(text.split()) > threshold)


class LengthTask(Task):
    name = "toy_sentence_length"
    config_class = LengthSection
    model_classes = (LengthClassifier,)
    signature_names = ("score_length",)
    example_inputs = {"score_length": {"text": np.array([b"one two three four five", b"one"])}}
    client_options = {"toy_text": dict(action="append", help="score_length: a sentence")}

    def read_data(self, experiment, damaged):
        def read(path):
            texts = [line.rstrip("\n") for line in open(path, encoding="utf-8")]
            return texts, [is_long(t, experiment.task.threshold_words) for t in texts]

        data = types.SimpleNamespace(train=read(experiment.train_file),
                                     eval=read(experiment.eval_file))
        data.num_train = len(data.train[0])
        return data

    def build_model(self, backbone, experiment, data):
        return LengthClassifier(backbone=backbone, num_labels=2, label_names=["short", "long"],
                                dropout=experiment.task.classifier_dropout)

    def compile_options(self, experiment):
        return {"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}

    def dataset(self, experiment, data, tokenizer, training, batch_size, input_context=None):
        texts, labels = data.train if training else data.eval
        dataset = tf.data.Dataset.from_tensor_slices((texts, np.array(labels, np.int32)))
        if input_context:
            dataset = dataset.shard(input_context.num_input_pipelines,
                                    input_context.input_pipeline_id)
            batch_size = input_context.get_per_replica_batch_size(batch_size)
        if training:
            dataset = dataset.shuffle(len(texts), seed=experiment.seed)
        return dataset.batch(batch_size, drop_remainder=training).map(
            lambda text, label: (pack_segments(tokenizer.tokenize(text),
                                               seq_length=experiment.seq_length), label))

    def evaluate(self, model, experiment, data, tokenizer, output_dir):
        predictions = []
        for features, _ in self.dataset(experiment, data, tokenizer, False, 16):
            predictions += np.argmax(model(features, training=False), -1).tolist()
        gold = data.eval[1]
        accuracy = float(np.mean(np.array(predictions) == np.array(gold)))
        return {"length_accuracy": accuracy, "num_examples": len(gold)}

    def signatures(self, module, settings):
        def score_length(text):
            logits = tf.cast(module.model(module.pack(text), training=False), tf.float32)
            return {"long_probability": tf.nn.softmax(logits)[:, 1]}

        return {"score_length": tf.function(score_length, input_signature=[TEXT])}

    def client_inputs(self, signature, args):
        return {"text": args.toy_text} if args.toy_text else None


@pytest.fixture(scope="module")
def toy_task():
    task = register_task(LengthTask())
    yield task
    TASKS.pop(task.name)


def sentences(path, count, seed):
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(WORDS[:200]) for _ in range(rng.choice([1, 2, 6, 7])))
             for _ in range(count)]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return str(path)


def test_a_task_defined_outside_the_project_fine_tunes_and_exports(toy_task, tmp_path, capsys):
    assert task_named("toy_sentence_length") is toy_task
    assert "classification" in [task.name for task in all_tasks()]  # the built-in ones stay
    train = sentences(tmp_path / "train.txt", 192, seed=0)
    dev = sentences(tmp_path / "dev.txt", 48, seed=1)
    run_dir = tmp_path / "run"
    args = ["--config", TINY_CONFIG, "--output_dir", str(run_dir),
            "--spm_model", tiny_spm_model(), "--task_type", "toy_sentence_length",
            "--task.threshold_words", "4", "--train_file", train, "--eval_file", dev,
            "--total_steps", "100", "--steps_per_epoch", "50", "--eval_steps", "1"]
    assert finetune.main(args) == 0
    # The config file's classification section (label_names) is not this task's.
    assert "label_names left out" in capsys.readouterr().err
    with open(run_dir / "experiment.json", encoding="utf-8") as f:
        assert json.load(f)["task"] == {"threshold_words": 4, "classifier_dropout": 0.0}
    with open(run_dir / "eval_results.json", encoding="utf-8") as f:
        results = json.load(f)
    assert results["num_examples"] == 48 and results["step"] == 100
    assert results["length_accuracy"] > 0.9  # 1-2 words against 6-7: easy to learn

    model = keras.saving.load_model(str(run_dir / "final_model.keras"), compile=False)
    assert type(model) is LengthClassifier and task_of_model(model) is toy_task
    with open(tiny_spm_model(), "rb") as f:
        proto = f.read()
    version_dir = export_lib.export(model, proto, str(tmp_path / "export"), max_seq_length=32)
    assert signature_names(model)[0] == "score_length"
    loaded = tf.saved_model.load(version_dir)
    assert {"score_length", "serving_default", "classify", "embed"} - set(loaded.signatures) \
        == {"classify"}  # the toy task's signature, not classification's
    text = ["one two three four five six", "one"]
    served = loaded.signatures["serving_default"](text=tf.constant(text))
    expected = tf.nn.softmax(model(pack_segments(_tokenize(proto, text), seq_length=32),
                                   training=False))[:, 1]
    np.testing.assert_allclose(served["long_probability"], expected, atol=1e-5)
    requests = read_warmup_file(os.path.join(version_dir, WARMUP_FILE))
    assert [r.model_spec.signature_name for r in requests][0] == "score_length"

    parsed = types.SimpleNamespace(toy_text=["a b c"], text=None, text_b=None, words=None,
                                   question=None, context=None)
    assert client_lib.signature_inputs("score_length", parsed) == {"text": ["a b c"]}


def _tokenize(proto, text):
    from albert_keras.tokenizer import AlbertTokenizer
    from albert_keras.vocabulary import SentencePieceVocabulary

    return AlbertTokenizer(SentencePieceVocabulary.of(proto)).tokenize(tf.constant(text))


def test_a_field_of_another_task_names_where_it_belongs(toy_task, tmp_path):
    from training.experiment import FinetuneExperiment, load_experiment

    train = sentences(tmp_path / "train.txt", 40, seed=0)
    base = ["--config", TINY_CONFIG, "--spm_model", tiny_spm_model(), "--train_file", train,
            "--eval_file", ""]
    with pytest.raises(ValueError, match=r"field 'doc_stride': belongs to the section of "
                                         r"task question_answering"):
        load_experiment(FinetuneExperiment, base + ["--doc_stride", "64"])
    with pytest.raises(ValueError, match=r"field 'task.threshold_words': must be at least 1"):
        load_experiment(FinetuneExperiment, base + ["--task_type", "toy_sentence_length",
                                                    "--task.threshold_words", "0"])
    experiment = load_experiment(FinetuneExperiment, base + ["--task.label_names",
                                                             '["a", "b", "c"]'])
    assert experiment.task.label_names == ["a", "b", "c"]


def old_flat_experiment(**values):
    """An experiment.json as fine-tuning wrote it before task sections: every task's
    fields at the top level, at their defaults, and the fusion under its former name."""
    fields = dict(label_names=None, data_format="", tag_column=0, window_stride=0,
                  classifier_dropout=0.1, qa_head="span", squad_version="auto",
                  doc_stride=128, max_query_length=64, n_best_size=20, max_answer_length=30,
                  null_threshold=None, kernels="auto", task_type="classification",
                  init_model="", cased=False)
    fields.update(values)
    return fields


@pytest.mark.parametrize("values, section", [
    (dict(label_names=["no", "yes"]), {"label_names": ["no", "yes"],
                                       "classifier_dropout": 0.1}),
    (dict(task_type="question_answering", doc_stride=64, seq_length=128),
     {"qa_head": "span", "squad_version": "auto", "doc_stride": 64, "max_query_length": 64,
      "n_best_size": 20, "max_answer_length": 30, "null_threshold": None,
      "metric": "auto"}),
    (dict(task_type="tagging", window_stride=12, label_names=None),
     {"label_names": None, "data_format": "", "tag_column": 0, "window_stride": 12,
      "classifier_dropout": 0.1}),
])
def test_an_experiment_json_written_before_task_sections_still_loads(tmp_path, values,
                                                                     section):
    from training.experiment import FinetuneExperiment, load_experiment

    train = sentences(tmp_path / "train.txt", 40, seed=0)
    config = dict(json.load(open(TINY_CONFIG, encoding="utf-8")), train_file=train,
                  eval_file="", spm_model=tiny_spm_model())
    config.pop("task")
    config.update(old_flat_experiment(**values))
    (tmp_path / "experiment.json").write_text(json.dumps(config), "utf-8")
    experiment = load_experiment(FinetuneExperiment, ["--config",
                                                      str(tmp_path / "experiment.json")])
    assert dataclasses.asdict(experiment.task) == section
    assert experiment.fusion == "auto"


def test_a_set_field_of_another_task_in_a_file_is_an_error(tmp_path):
    from training.experiment import FinetuneExperiment, load_experiment

    train = sentences(tmp_path / "train.txt", 40, seed=0)
    config = dict(json.load(open(TINY_CONFIG, encoding="utf-8")), train_file=train,
                  eval_file="", spm_model=tiny_spm_model(), doc_stride=64)
    (tmp_path / "c.json").write_text(json.dumps(config), "utf-8")
    with pytest.raises(ValueError, match=r"field 'doc_stride': belongs to the section of task "
                                         r"question_answering"):
        load_experiment(FinetuneExperiment, ["--config", str(tmp_path / "c.json")])


def test_export_options_are_checked_by_the_task():
    answering = task_named("question_answering")
    with pytest.raises(ValueError, match="squad_version must be 1.1 or 2.0, got '2'"):
        answering.serving_settings(types.SimpleNamespace(settings=None), 32, squad_version="2")
    with pytest.raises(ValueError, match="top_k is not an export option of task "
                                         "question_answering"):
        answering.serving_settings(types.SimpleNamespace(settings=None), 32, top_k=3)

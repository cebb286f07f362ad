"""serving.export: signatures against the Keras model in a fresh process, saved_model_cli,
warmup records, atomic versions, bad inputs."""

import os
import subprocess
import sys

import numpy as np
import pytest
import sentencepiece as spm
import tensorflow as tf

from albert_keras import atomic_file
from albert_keras.special_tokens import MASK_ID
from albert_keras.tasks.tagging.settings import default_stride
from albert_keras.text_normalization import normalize_text
from albert_keras.tokenizer import AlbertTokenizer
from serving import export as export_lib
from serving.export_module import AlbertServingModule, signature_names
from serving.warmup import WARMUP_FILE, read_warmup_file
from serving_fixtures import (LABEL_NAMES, MAX_SEQ_LENGTH, SIGNATURE_INPUTS, TAG_NAMES,
                              build_model, exported, model_proto, spm_model_path)

# The exported models of serving_fixtures are built once per process: the modules that
# share them run in one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("exports")

KINDS = ("pretrainer", "classifier", "tagger", "backbone")
# Exports with --fusion xla_cpu: the pretrainer's signatures cover encode, fill_mask,
# sentence_order and the embeddings; the classifier's classify.
XLA_KINDS = ("pretrainer", "classifier")
ATOL = 1e-5

# Runs in a fresh interpreter that imports only tensorflow and tensorflow_text.
FRESH_PROCESS_CODE = r"""
import sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401
inputs_path, out_path = sys.argv[1], sys.argv[2]
exports = sys.argv[3:]
requests = dict(np.load(inputs_path, allow_pickle=True))
results = {}
for export_dir in exports:
    loaded = tf.saved_model.load(export_dir)
    for signature, function in loaded.signatures.items():
        wanted = function.structured_input_signature[1]
        args = {name: tf.constant(requests[signature + "." + name], spec.dtype)
                for name, spec in wanted.items()}
        for name, value in function(**args).items():
            results[export_dir + "|" + signature + "|" + name] = value.numpy()
assert "albert_keras" not in sys.modules and "serving" not in sys.modules, "project code imported"
np.savez(out_path, **results)
"""


def _valid_utf8(texts):
    return [t.decode("utf-8", "replace") for t in texts]


def _trim(features):
    width = max(2, int(np.max(np.sum(features["input_mask"], 1), initial=0)))
    return {k: np.asarray(v)[:, :width] for k, v in features.items()}


def reference_features(text, text_b=None):
    """The tokenizer's public API + trimming to the longest row: what the graph must do."""
    tokenizer = AlbertTokenizer(model_proto())
    text_b = None if text_b is None else tf.constant(_valid_utf8(text_b))
    return _trim(tokenizer(tf.constant(_valid_utf8(text)), text_b, seq_length=MAX_SEQ_LENGTH))


def reference_mask_features(texts):
    """fill_mask packing rebuilt with the Python SentencePiece processor."""
    processor = spm.SentencePieceProcessor(model_file=spm_model_path())
    rows = []
    for text in _valid_utf8(texts):
        ids = []
        for i, part in enumerate(text.split("[MASK]")):
            if i:
                ids.append(MASK_ID)
            ids += processor.encode(normalize_text(part))
        rows.append([2] + ids[:MAX_SEQ_LENGTH - 2] + [3])
    width = max(len(r) for r in rows)
    input_ids = np.array([r + [0] * (width - len(r)) for r in rows], np.int32)
    return {"input_ids": input_ids, "segment_ids": np.zeros_like(input_ids),
            "input_mask": (np.arange(width)[None] < np.array([len(r) for r in rows])[:, None]
                           ).astype(np.int32)}


def _padded(rows, fill, dtype=None):
    width = max((len(row) for row in rows), default=0)
    return np.array([list(row) + [fill] * (width - len(row)) for row in rows], dtype=dtype)


def tagging_outputs(model, signature, inputs):
    """tag / tag_words by the evaluation path (tasks/tagging/data.predict_word_logits), the
    Python word splitting and the Python entity chunking."""
    from albert_keras.tasks.tagging import data as tagging
    from albert_keras.tasks.tagging.spans import entity_spans
    from albert_keras.tasks.tagging.word_split import split_words

    if signature == "tag_words":
        rows = [[w.decode("utf-8", "replace") for w in row if w] for row in inputs["words"]]
    else:
        texts = _valid_utf8(inputs["text"])
        split = [split_words(text) for text in texts]
        rows = [[word for word, _, _ in words] for words in split]
    sentences = [tagging.TaggedSentence(tuple(r), ("O",) * len(r), (0,) * len(r)) for r in rows]
    logits = tagging.predict_word_logits(
        lambda features: model(features, training=False), AlbertTokenizer(model_proto()),
        sentences, MAX_SEQ_LENGTH, default_stride(MAX_SEQ_LENGTH))
    probabilities = [tf.nn.softmax(l).numpy() for l in logits]
    ids = [p.argmax(-1).tolist() for p in probabilities]
    tags = [[TAG_NAMES[i].encode() for i in row] for row in ids]
    scores = [p.max(-1).tolist() for p in probabilities]
    if signature == "tag_words":
        places = [[j for j, w in enumerate(row) if w] for row in inputs["words"]]
        shape = inputs["words"].shape
        dense_tags, dense_ids = np.full(shape, b"", object), np.full(shape, -1)
        dense_scores = np.zeros(shape, np.float32)
        for i, row in enumerate(places):
            dense_tags[i, row], dense_ids[i, row] = tags[i], ids[i]
            dense_scores[i, row] = scores[i]
        return {"tags": dense_tags, "tag_ids": dense_ids, "scores": dense_scores,
                "word_count": np.array([len(r) for r in rows])}
    entities = [entity_spans([t.decode() for t in row]) for row in tags]
    starts = [[split[i][first][1] for _, first, _ in spans] for i, spans in enumerate(entities)]
    ends = [[split[i][last][2] for _, _, last in spans] for i, spans in enumerate(entities)]
    return {
        "words": _padded([[w.encode() for w in r] for r in rows], b"", object),
        "tags": _padded(tags, b"", object), "tag_ids": _padded(ids, -1),
        "scores": _padded(scores, 0.0, np.float32),
        "word_start": _padded([[s for _, s, _ in words] for words in split], -1),
        "word_end": _padded([[e for _, _, e in words] for words in split], -1),
        "word_count": np.array([len(r) for r in rows]),
        "entity_type": _padded([[kind.encode() for kind, _, _ in spans] for spans in entities],
                               b"", object),
        "entity_text": _padded([[texts[i][a:b].encode() for a, b in zip(starts[i], ends[i])]
                                for i in range(len(texts))], b"", object),
        "entity_start": _padded(starts, -1), "entity_end": _padded(ends, -1),
        "entity_count": np.array([len(spans) for spans in entities]),
    }


def keras_outputs(kind, model, signature):
    """What each signature must return, computed with the Keras model."""
    inputs = SIGNATURE_INPUTS[signature]
    if signature in ("tag", "tag_words"):
        return tagging_outputs(model, signature, inputs)
    backbone = model if kind == "backbone" else model.backbone
    if signature == "encode":
        return {k: v.numpy() for k, v in backbone(inputs).items()}
    if signature == "tokenize":
        processor = spm.SentencePieceProcessor(model_file=spm_model_path())
        ids = [processor.encode(normalize_text(t)) for t in _valid_utf8(inputs["text"])]
        width = max(len(i) for i in ids)
        return {"ids": np.array([i + [0] * (width - len(i)) for i in ids]),
                "token_count": np.array([len(i) for i in ids])}
    if signature == "fill_mask":
        features = reference_mask_features(inputs["text"])
        positions = [list(np.flatnonzero(row == MASK_ID)) for row in features["input_ids"]]
        count = max(len(p) for p in positions)
        dense = np.array([p + [0] * (count - len(p)) for p in positions], np.int32)
        logits = model(dict(features, masked_lm_positions=dense))["mlm_logits"].numpy()
        probabilities = tf.nn.softmax(logits).numpy()
        top = np.argsort(-probabilities, axis=-1)[..., :5]
        top_p = np.take_along_axis(probabilities, top, -1)
        real = (np.arange(count)[None] < np.array([len(p) for p in positions])[:, None])[..., None]
        return {"top_ids": np.where(real, top, 0), "top_probabilities": np.where(real, top_p, 0),
                "mask_positions": dense, "mask_count": np.array([len(p) for p in positions])}
    text_b = inputs.get("text_b")
    features = reference_features(inputs.get("text", inputs.get("text_a")), text_b)
    if signature in ("embed", "embed_pair"):
        outputs = {k: v.numpy() for k, v in backbone(features).items()}
        return dict(outputs, input_mask=features["input_mask"])
    if signature == "sentence_order":
        batch = len(features["input_ids"])
        logits = model(dict(features, masked_lm_positions=np.zeros([batch, 1], np.int32)))
        logits = logits["sop_logits"].numpy()
        return {"sop_logits": logits,
                "original_order_probability": tf.nn.softmax(logits).numpy()[:, 0]}
    if signature in ("classify", "classify_pair"):
        logits = model(features).numpy()
        label_id = logits.argmax(-1)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits).numpy(),
                "label_id": label_id,
                "label": np.array([LABEL_NAMES[i].encode() for i in label_id], dtype=object)}
    raise AssertionError(signature)


@pytest.fixture(scope="module")
def fresh_process_outputs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fresh")
    inputs_path = directory / "inputs.npz"
    out_path = directory / "outputs.npz"
    np.savez(inputs_path, **{f"{sig}.{name}": value for sig, inputs in SIGNATURE_INPUTS.items()
                             for name, value in inputs.items()},
             **{"serving_default.text": SIGNATURE_INPUTS["embed"]["text"]})
    dirs = ([exported(kind)[2] for kind in KINDS]
            + [exported(kind, "xla_cpu")[2] for kind in XLA_KINDS])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_CODE, str(inputs_path), str(out_path), *dirs],
        cwd=directory, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return dict(np.load(out_path, allow_pickle=True))


# The documented signatures of each model kind; the first is serving_default's.
SIGNATURES = {
    "pretrainer": ("embed", "fill_mask", "sentence_order", "embed_pair", "encode", "tokenize"),
    "classifier": ("classify", "classify_pair", "embed", "embed_pair", "encode", "tokenize"),
    "tagger": ("tag", "tag_words", "embed", "embed_pair", "encode", "tokenize"),
    "question_answerer": ("answer", "embed", "embed_pair", "encode", "tokenize"),
    "backbone": ("embed", "embed_pair", "encode", "tokenize"),
}


@pytest.mark.parametrize("kind, fusion", [(kind, "plain") for kind in KINDS]
                         + [(kind, "xla_cpu") for kind in XLA_KINDS])
def test_every_signature_matches_keras_in_a_fresh_process(kind, fusion, fresh_process_outputs):
    model, _, version_dir = exported(kind, fusion)
    with open(os.path.join(version_dir, "saved_model.pb"), "rb") as graph:
        # XLA kernels are functions marked for compilation; plain exports have none.
        assert (b"_XlaMustCompile" in graph.read()) == (fusion == "xla_cpu")
    names = signature_names(model)
    assert names == SIGNATURES[{"squad2_answerer": "question_answerer",
                                "entity_tagger": "tagger"}.get(kind, kind)]
    found = {key.split("|")[1] for key in fresh_process_outputs
             if key.startswith(version_dir + "|")}
    assert found == set(names) | {"serving_default"}
    for signature in names:
        expected = keras_outputs(kind, model, signature)
        for name, value in expected.items():
            got = fresh_process_outputs[f"{version_dir}|{signature}|{name}"]
            assert got.shape == np.shape(value), (signature, name)
            if np.asarray(value).dtype.kind in "fc":
                np.testing.assert_allclose(got, value, atol=ATOL, err_msg=f"{signature}.{name}")
            else:
                np.testing.assert_array_equal(got, value, err_msg=f"{signature}.{name}")
    default = fresh_process_outputs[f"{version_dir}|serving_default|" + {
        "pretrainer": "pooled_output", "classifier": "probabilities", "tagger": "tags",
        "backbone": "pooled_output"}[kind]]
    first = fresh_process_outputs[f"{version_dir}|{names[0]}|" + {
        "classifier": "probabilities", "tagger": "tags"}.get(kind, "pooled_output")]
    np.testing.assert_array_equal(default, first)


def test_raw_text_packing_facts(fresh_process_outputs):
    version_dir = exported("pretrainer")[2]

    def out(signature, name):
        return fresh_process_outputs[f"{version_dir}|{signature}|{name}"]

    mask = out("embed", "input_mask").sum(1)
    assert mask[1] == 2  # "" -> [CLS] [SEP]
    assert mask[2] == MAX_SEQ_LENGTH  # 10,000 characters, truncated
    assert out("embed", "sequence_output").shape[1] == MAX_SEQ_LENGTH
    # The long text's mask is truncated away; the one between NULs is kept.
    assert list(out("fill_mask", "mask_count")) == [2, 0, 1, 0, 0, 1]
    pieces = out("fill_mask", "top_pieces")
    assert pieces.shape == (6, 2, 5) and pieces[1].tolist() == [[b""] * 5] * 2
    probability = out("sentence_order", "original_order_probability")
    assert probability.shape == (6,) and np.all((probability >= 0) & (probability <= 1))
    tokens = out("tokenize", "pieces")
    assert tokens[0, 0].decode().startswith("\u2581")


def test_saved_model_cli_lists_documented_signatures():
    version_dir = exported("classifier")[2]
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run([cli, "show", "--dir", version_dir, "--all"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    for signature in SIGNATURES["classifier"] + ("serving_default",):
        assert f"signature_def['{signature}']" in text
    for tensor, dtype in [("text", "DT_STRING"), ("text_b", "DT_STRING"),
                          ("probabilities", "DT_FLOAT"), ("label", "DT_STRING"),
                          ("label_id", "DT_INT32"), ("input_ids", "DT_INT32"),
                          ("sequence_output", "DT_FLOAT"), ("pieces", "DT_STRING")]:
        assert f"['{tensor}'] tensor_info:\n        dtype: {dtype}" in text, tensor


@pytest.mark.parametrize("kind, signatures", [("pretrainer", "pretrainer"),
                                              ("squad2_answerer", "question_answerer")])
def test_warmup_records_one_per_signature_and_they_run(kind, signatures):
    _, export_base, version_dir = exported(kind)
    requests = read_warmup_file(os.path.join(version_dir, WARMUP_FILE))
    assert [r.model_spec.signature_name for r in requests] == list(SIGNATURES[signatures])
    assert {r.model_spec.name for r in requests} == {os.path.basename(export_base)}
    loaded = tf.saved_model.load(version_dir)
    for request in requests:
        function = loaded.signatures[request.model_spec.signature_name]
        outputs = function(**{k: tf.constant(tf.make_ndarray(v))
                              for k, v in request.inputs.items()})
        assert all(v.shape[0] == 2 for v in outputs.values())


def test_batches_of_0_and_256():
    loaded = tf.saved_model.load(exported("classifier")[2])
    empty = tf.constant([], tf.string)
    out = loaded.signatures["embed"](text=empty)
    assert out["pooled_output"].shape == (0, 32) and out["sequence_output"].shape[0] == 0
    out = loaded.signatures["classify_pair"](text=empty, text_b=empty)
    assert out["probabilities"].shape == (0, 3) and out["label"].shape == (0,)
    assert loaded.signatures["tokenize"](text=empty)["ids"].shape == (0, 0)
    big = tf.constant([f"sentence number {i}" for i in range(256)])
    out = loaded.signatures["classify"](text=big)
    assert out["label"].shape == (256,) and set(out["label"].numpy()) <= {
        n.encode() for n in LABEL_NAMES}
    pretrainer = tf.saved_model.load(exported("pretrainer")[2])
    out = pretrainer.signatures["fill_mask"](text=empty)
    assert out["top_ids"].shape == (0, 0, 5) and out["mask_count"].shape == (0,)
    out = pretrainer.signatures["sentence_order"](text_a=empty, text_b=empty)
    assert out["original_order_probability"].shape == (0,)
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        loaded.signatures["classify"](text=tf.constant([1, 2]))


def test_regression_classifier_returns_a_score():
    from albert_keras import AlbertClassifier
    from serving_fixtures import tiny_config

    model = AlbertClassifier(tiny_config(), task_type="regression")
    module = AlbertServingModule(model, model_proto(), max_seq_length=MAX_SEQ_LENGTH)
    text = ["a short text", "another one that is longer than the first"]
    out = module.classify(tf.constant(text))
    assert set(out) == {"score"}
    expected = model(reference_features([t.encode() for t in text])).numpy()[:, 0]
    np.testing.assert_allclose(out["score"].numpy(), expected, atol=ATOL)


# ------------------------------------------------------------------ atomic versions
def _interrupted_save(module, export_dir, signatures=None):
    with open(os.path.join(export_dir, "saved_model.pb"), "wb") as f:
        f.write(b"\x08partial")
    raise KeyboardInterrupt("interrupted mid-write")


def test_interrupted_export_leaves_no_version(tmp_path, monkeypatch):
    base = tmp_path / "albert"
    monkeypatch.setattr(export_lib.tf.saved_model, "save", _interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        export_lib.export(build_model("backbone"), model_proto(), str(base),
                          max_seq_length=MAX_SEQ_LENGTH)
    assert os.listdir(base) == []  # the partial .tmp-1-* was removed


def test_killed_export_leaves_only_an_ignored_temp_dir(tmp_path, monkeypatch):
    base = tmp_path / "albert"
    (base / "3").mkdir(parents=True)
    monkeypatch.setattr(export_lib.tf.saved_model, "save", _interrupted_save)
    monkeypatch.setattr(atomic_file, "_remove", lambda path: None)  # killed: no cleanup
    with pytest.raises(KeyboardInterrupt):
        export_lib.export(build_model("backbone"), model_proto(), str(base),
                          max_seq_length=MAX_SEQ_LENGTH)
    names = sorted(os.listdir(base), key=lambda name: name != "3")
    assert names[0] == "3" and len(names) == 2 and names[1].startswith(".tmp-4-")
    assert not names[1].isdigit()  # TF Serving only loads integer-named versions
    assert export_lib.existing_versions(str(base)) == [3]
    assert export_lib.next_version(str(base)) == 4


def test_cli_refuses_an_existing_version_and_a_missing_model(tmp_path, capsys):
    _, export_base, _ = exported("pretrainer")
    run_dir = os.path.dirname(os.path.dirname(export_base)) + "/run"
    assert export_lib.main(["--model", run_dir, "--spm_model", spm_model_path(),
                            "--export_base", export_base, "--version", "1"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert export_lib.main(["--model", str(tmp_path), "--spm_model", spm_model_path(),
                            "--export_base", str(tmp_path / "x")]) == 2
    assert "final_model.keras" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() or os.listdir(tmp_path / "x") == []


def test_refuses_a_vocabulary_that_is_not_the_models(tmp_path, monkeypatch, capsys):
    from albert_keras.vocabulary import train_sentencepiece, write_sentencepiece_model
    from data_fixtures import generated_documents

    sentences = [s for doc in generated_documents(100, seed=3) for s in doc]
    other = write_sentencepiece_model(train_sentencepiece(sentences, vocab_size=120),
                                      str(tmp_path / "other"))[0]
    pieces = spm.SentencePieceProcessor(model_file=other).get_piece_size()
    with open(other, "rb") as f:
        other_proto = f.read()
    for kind in KINDS:
        model = build_model(kind)
        with pytest.raises(ValueError, match=f"has {pieces} pieces but the model's "
                                             f"vocab_size is {model.config.vocab_size}"):
            export_lib.export(model, other_proto, str(tmp_path / kind))
        assert not (tmp_path / kind).exists()

    _, export_base, _ = exported("pretrainer")
    run_dir = os.path.dirname(os.path.dirname(export_base)) + "/run"
    argv = ["--model", run_dir, "--spm_model", other, "--export_base", str(tmp_path / "x")]
    assert export_lib.main(argv) == 2
    assert f"{other} has {pieces} pieces" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    # Forced, the export goes on (to the save, stubbed here).
    saved = []
    monkeypatch.setattr(export_lib.tf.saved_model, "save",
                        lambda module, path, signatures=None: saved.append(path))
    assert export_lib.main(argv + ["--allow_vocab_mismatch"]) == 0
    assert len(saved) == 1


# ------------------------------------------------------------------ deployment files
DEPLOY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "serving", "deploy")


def _message_class(name, fields):
    """A proto message class from (name, number, type, label, type_name) tuples, for the two
    TF Serving configs that tensorflow-serving-api does not ship (same field names)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(descriptor_pb2.FileDescriptorProto.FromString(
        wrappers_pb2.DESCRIPTOR.serialized_pb).SerializeToString())
    file = descriptor_pb2.FileDescriptorProto(name=f"{name}.proto", package="check",
                                              dependency=["google/protobuf/wrappers.proto"])
    for message_name, message_fields in fields.items():
        message = file.message_type.add(name=message_name)
        for field_name, number, kind, label, type_name in message_fields:
            field = message.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"check.{name}"))


def test_deploy_files_parse_and_agree():
    import yaml
    from google.protobuf import descriptor_pb2, text_format
    from tensorflow_serving.config import model_server_config_pb2

    F = descriptor_pb2.FieldDescriptorProto
    one, many = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    wrapped_int64 = (F.TYPE_MESSAGE, one, ".google.protobuf.Int64Value")
    batching = _message_class("BatchingParameters", {"BatchingParameters": [
        ("max_batch_size", 1, *wrapped_int64),
        ("batch_timeout_micros", 2, *wrapped_int64),
        ("max_enqueued_batches", 3, *wrapped_int64),
        ("num_batch_threads", 4, *wrapped_int64),
        ("allowed_batch_sizes", 6, F.TYPE_INT64, many, None),
        ("pad_variable_length_inputs", 7, F.TYPE_BOOL, one, None)]})
    monitoring = _message_class("MonitoringConfig", {
        "MonitoringConfig": [("prometheus_config", 1, F.TYPE_MESSAGE, one,
                              ".check.PrometheusConfig")],
        "PrometheusConfig": [("enable", 1, F.TYPE_BOOL, one, None),
                             ("path", 2, F.TYPE_STRING, one, None)]})

    def read(name):
        with open(os.path.join(DEPLOY, name), encoding="utf-8") as f:
            return f.read()

    models = text_format.Parse(read("models.config"), model_server_config_pb2.ModelServerConfig())
    params = text_format.Parse(read("batching_parameters.txt"), batching())
    metrics = text_format.Parse(read("monitoring.config"), monitoring())
    compose = yaml.safe_load(read("docker-compose.yml"))
    service = compose["services"]["albert-serving"]
    assert service["image"] == "tensorflow/serving:2.20.0"  # the newest published release
    # Published on the loopback interface only, unless the user changes it on purpose.
    assert sorted(service["ports"]) == ["127.0.0.1:8500:8500", "127.0.0.1:8501:8501"]
    assert "../../saved_models:/models:ro" in service["volumes"]
    flags = dict(arg.split("=", 1) for arg in service["command"])
    mounted = {v.split(":")[1] for v in service["volumes"]}
    for flag in ("--model_config_file", "--batching_parameters_file",
                 "--monitoring_config_file"):
        assert flags[flag] in mounted
    assert flags["--port"] == "8500" and flags["--rest_api_port"] == "8501"
    for config in models.model_config_list.config:
        assert config.base_path.startswith("/models/")
        assert config.model_version_policy.WhichOneof("policy_choice") == "latest"
    allowed = list(params.allowed_batch_sizes)
    assert allowed == sorted(allowed) and allowed[-1] == params.max_batch_size.value
    assert metrics.prometheus_config.enable


@pytest.mark.parametrize("kind", ["question_answerer", "squad2_answerer"])
def test_length_groups_give_the_padded_batchs_outputs(kind):
    """The answer signature's forward in groups of similar length equals the model on
    the whole batch cut to its longest window (tasks/serving_ops.forward_in_length_groups)."""
    from albert_keras.tasks.serving_ops import forward_in_length_groups, trim_padding

    model = build_model(kind)
    rng = np.random.default_rng(0)
    lengths = np.array([7, 30, 3, 12, 30, 5, 19, 8, 25, 2, 11], np.int32)
    width = 40
    positions = np.arange(width)[None]
    mask = (positions < lengths[:, None]).astype(np.int32)
    features = {"input_ids": (rng.integers(5, 200, size=(len(lengths), width)) * mask
                              ).astype(np.int32),
                "segment_ids": ((positions >= 4) & (mask == 1)).astype(np.int32),
                "input_mask": mask}
    plain = model(trim_padding(features), training=False)
    settings = (dict(positional=("start_log_probs",), min_width=5)
                if kind == "squad2_answerer"
                else dict(positional=("start_logits", "end_logits")))
    # Single windows; threes of exactly equal length (none here); the default pairs;
    # threes, eights and 32s whatever their padding.
    for group_size, max_padding in ((1, 0.05), (3, 0.0), (2, 0.05), (3, 1e9), (8, 1e9),
                                    (32, 1e9)):
        grouped = forward_in_length_groups(model, features, group_size=group_size,
                                            max_padding=max_padding, **settings)
        assert sorted(grouped) == sorted(plain)
        for name, value in plain.items():
            value, got = value.numpy(), grouped[name].numpy()
            assert got.shape == value.shape, name
            if name in settings["positional"]:  # real positions only: padding is no output
                real = mask[:, :value.shape[1]] == 1
                np.testing.assert_allclose(got[real], value[real], atol=1e-5)
            elif value.dtype.kind == "i":
                assert (got == value).all(), name
            else:
                np.testing.assert_allclose(got, value, atol=1e-5, err_msg=name)
    none = forward_in_length_groups(model, {k: v[:0] for k, v in features.items()},
                                     **settings)
    assert all(value.shape[0] == 0 for value in none.values())


@pytest.mark.parametrize("lengths, begin, group_size, max_padding, expected", [
    ([100, 104], 0, 2, 0.05, 2),      # 208 padded for 204 real: 2.0% padding
    ([100, 120], 0, 2, 0.05, 1),      # 240 for 220: 9.1%
    ([100, 120], 0, 2, 0.1, 2),
    ([5, 10, 10], 0, 3, 0.25, 3),     # two: 20 for 15 (33%); three: 30 for 25 (20%)
    ([5, 10, 10], 0, 3, 0.1, 1),
    ([5, 10, 10], 1, 3, 0.0, 2),      # from the second: the two 10s, no padding
    ([5, 10, 10], 2, 3, 1e9, 1),      # the last window
    ([], 0, 2, 0.05, 1),              # no windows: one empty group
])
def test_length_group_sizes_by_hand(lengths, begin, group_size, max_padding, expected):
    from albert_keras.tasks.serving_ops import group_size_at

    size = group_size_at(tf.constant(lengths, tf.int32), tf.constant(begin), group_size,
                          max_padding)
    assert int(size) == expected


def test_squad_version_decides_whether_a_converted_answerer_may_answer_nothing(tmp_path):
    model = build_model("question_answerer")  # records no settings, as from_transformers
    path = export_lib.export(model, model_proto(), str(tmp_path / "qa"), version=1,
                             max_seq_length=32, squad_version="1.1")
    answer = tf.saved_model.load(path).signatures["answer"]
    out = answer(question=tf.constant(["what?"] * 3),
                 context=tf.constant(["a b c", "the cat sat on the mat.", "x"]))
    assert "no_answer" not in out and b"" not in out["answer"].numpy().tolist()
    with pytest.raises(ValueError, match="squad_version is not an export option of task "
                                         "classification"):
        export_lib.export(build_model("classifier"), model_proto(), str(tmp_path / "c"),
                          squad_version="1.1")

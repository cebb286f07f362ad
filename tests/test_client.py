"""serving.client end to end over real sockets, against tests/fake_tf_serving.py serving
the exported SavedModels."""

import json
import os
import socket
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from albert_keras.tokenizer import AlbertTokenizer
from fake_tf_serving import FakeTfServing
from serving import client as client_lib
from serving.client import (GrpcClient, InvalidInputError, ModelNotFoundError, RestClient,
                            SignatureNotFoundError, UnavailableError)
from serving_fixtures import LABEL_NAMES, LONG_TEXT, MAX_SEQ_LENGTH, exported, model_proto

# The exported models of serving_fixtures are built once per process: the modules that
# share them run in one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("exports")

TEXTS = ["Hello world, the city of music.", "", LONG_TEXT]


@pytest.fixture(scope="module")
def pretrainer_server():
    _, export_base, _ = exported("pretrainer")
    with FakeTfServing(os.path.basename(export_base), export_base) as server:
        yield server


@pytest.fixture(scope="module")
def classifier_server():
    _, export_base, _ = exported("classifier")
    with FakeTfServing(os.path.basename(export_base), export_base) as server:
        yield server


def clients(server, **kwargs):
    kwargs.setdefault("backoff_s", 0.01)
    return (GrpcClient(f"127.0.0.1:{server.grpc_port}", **kwargs),
            RestClient(f"127.0.0.1:{server.rest_port}", **kwargs))


def test_embed_over_grpc_and_rest_matches_the_keras_model(pretrainer_server):
    model = exported("pretrainer")[0]
    grpc_client, rest_client = clients(pretrainer_server)
    with grpc_client:
        by_grpc = grpc_client.predict(pretrainer_server.model_name, "embed", {"text": TEXTS})
    by_rest = rest_client.predict(pretrainer_server.model_name, "embed", {"text": TEXTS})
    by_rows = rest_client.predict(pretrainer_server.model_name, "embed", {"text": TEXTS},
                                  format="row")
    features = AlbertTokenizer(model_proto())(tf.constant(TEXTS), seq_length=MAX_SEQ_LENGTH)
    width = int(np.max(np.sum(features["input_mask"], 1)))
    expected = model.backbone({k: v[:, :width] for k, v in features.items()})
    np.testing.assert_allclose(by_grpc["pooled_output"], expected["pooled_output"], atol=1e-5)
    np.testing.assert_allclose(by_grpc["sequence_output"], expected["sequence_output"],
                               atol=1e-5)
    for other in (by_rest, by_rows):
        assert set(other) == set(by_grpc)
        for name in by_grpc:
            np.testing.assert_array_equal(other[name], by_grpc[name])
            assert other[name].dtype == by_grpc[name].dtype


def test_metadata_lists_the_signatures(pretrainer_server):
    grpc_client, rest_client = clients(pretrainer_server)
    name = pretrainer_server.model_name
    with grpc_client:
        metadata = grpc_client.metadata(name)
    assert metadata == rest_client.metadata(name)
    assert metadata["model_spec"] == {"name": name, "version": 1}
    signatures = metadata["signatures"]
    assert set(signatures) == {"serving_default", "embed", "embed_pair", "encode",
                               "fill_mask", "sentence_order", "tokenize"}
    assert signatures["sentence_order"]["inputs"] == {
        "text_a": {"dtype": "DT_STRING", "shape": [-1]},
        "text_b": {"dtype": "DT_STRING", "shape": [-1]}}
    assert signatures["fill_mask"]["outputs"]["top_pieces"] == {
        "dtype": "DT_STRING", "shape": [-1, -1, 5]}
    assert rest_client.status(name) == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE",
         "status": {"error_code": "OK", "error_message": ""}}]}


def test_pretrainer_signatures_over_grpc(pretrainer_server):
    name = pretrainer_server.model_name
    with GrpcClient(f"127.0.0.1:{pretrainer_server.grpc_port}") as client:
        filled = client.predict(name, "fill_mask", {"text": ["the [MASK] of the city", "x"]})
        assert filled["mask_count"].tolist() == [1, 0]
        assert filled["top_pieces"].shape == (2, 1, 5)
        assert filled["top_probabilities"][0, 0].sum() <= 1.0 + 1e-6
        order = client.predict(name, "sentence_order",
                               {"text_a": ["First one."], "text_b": ["Then this."]})
        assert order["original_order_probability"].shape == (1,)
        tokens = client.predict(name, "tokenize", {"text": ["Hello world"]})
        assert tokens["pieces"].dtype == object and tokens["token_count"][0] > 0
        encoded = client.predict(name, "encode", {"input_ids": [[2, 10, 3]],
                                                  "segment_ids": [[0, 0, 0]],
                                                  "input_mask": [[1, 1, 1]]})
        assert encoded["sequence_output"].shape == (1, 3, 32)


def test_classify_returns_label_strings_over_rest(classifier_server):
    rest_client = RestClient(f"127.0.0.1:{classifier_server.rest_port}")
    name = classifier_server.model_name
    out = rest_client.predict(name, "classify", {"text": TEXTS}, format="row")
    assert out["probabilities"].shape == (3, 3)
    assert {label.decode() for label in out["label"]} <= set(LABEL_NAMES)
    assert [LABEL_NAMES[i] for i in out["label_id"]] == [b.decode() for b in out["label"]]
    default = rest_client.predict(name, "serving_default", {"text": TEXTS})
    np.testing.assert_array_equal(default["probabilities"], out["probabilities"])
    pair = rest_client.predict(name, "classify_pair", {"text": ["a"], "text_b": ["b"]},
                               version=1)
    assert pair["label_id"].shape == (1,)


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_bad_inputs_give_outputs_or_clear_errors(pretrainer_server, protocol):
    grpc_client, rest_client = clients(pretrainer_server)
    client = grpc_client if protocol == "grpc" else rest_client
    name = pretrainer_server.model_name
    odd = ["", " ", LONG_TEXT, b"\xff\xfe\xc3 bad bytes", "\u00e9\u4e2d\U0001f600"]
    out = client.predict(name, "embed", {"text": odd})
    assert out["pooled_output"].shape == (5, 32)
    assert out["input_mask"].sum(1).tolist()[:3] == [2, 2, MAX_SEQ_LENGTH]
    out = client.predict(name, "embed", {"text": np.array([], dtype=object)})
    assert out["pooled_output"].shape[0] == 0
    out = client.predict(name, "fill_mask", {"text": np.array([], dtype=object)})
    assert out["mask_count"].shape == (0,)
    if protocol == "grpc":
        out = client.predict(name, "embed", {"text": [f"row {i}" for i in range(256)]})
        assert out["pooled_output"].shape == (256, 32)

    with pytest.raises(InvalidInputError, match=r"missing \['text_b'\]"):
        client.predict(name, "embed_pair", {"text": ["a"]})
    with pytest.raises(SignatureNotFoundError, match="no signature 'classify'"):
        client.predict(name, "classify", {"text": ["a"]})
    with pytest.raises(InvalidInputError, match="must be strings"):
        client.predict(name, "embed", {"text": [1, 2]})
    # The same mistakes, sent unchecked: the server answers as TF Serving does.
    raw = dict(check_inputs=False)
    with pytest.raises(InvalidInputError, match=r"Missing but required: \{text_b\}"):
        client.predict(name, "embed_pair", {"text": ["a"]}, **raw)
    with pytest.raises(InvalidInputError, match=r"Sent extra: \{extra\}"):
        client.predict(name, "embed", {"text": ["a"], "extra": ["b"]}, **raw)
    with pytest.raises(SignatureNotFoundError, match='Serving signature key "classify" not'):
        client.predict(name, "classify", {"text": ["a"]}, **raw)
    with pytest.raises(InvalidInputError):
        client.predict(name, "embed", {"text": np.array([1, 2], np.int32)}, **raw)
    with pytest.raises(InvalidInputError):
        client.predict(name, "embed", {"text": [["rank", "two"]]}, **raw)
    with pytest.raises(ModelNotFoundError, match=r"Servable not found for request: Latest\(no"):
        client.predict("nope", "embed", {"text": ["a"]}, **raw)
    with pytest.raises(ModelNotFoundError, match=r"Specific\(.*, 7\)"):
        client.predict(name, "embed", {"text": ["a"]}, version=7, **raw)
    with pytest.raises(ModelNotFoundError):
        client.metadata("nope")
    # Still serving.
    assert client.predict(name, "embed", {"text": ["still alive"]})["pooled_output"].shape == (1, 32)


def test_rest_malformed_requests_get_json_errors(pretrainer_server):
    base = f"http://127.0.0.1:{pretrainer_server.rest_port}/v1/models/"
    name = pretrainer_server.model_name
    cases = [(f"{base}{name}:predict", b"{not json", 400, "JSON Parse error"),
             (f"{base}{name}:predict", b'{"signature_name": "embed"}', 400, "'inputs' or"),
             (f"{base}{name}:predict", b'{"inputs": {"text": [1]}, "signature_name": "embed"}',
              400, "expected type: string"),
             (f"{base}{name}/versions/x:predict", b"{}", 400, "Malformed version"),
             (f"{base}nope:predict", b'{"inputs": {"text": ["a"]}}', 404, "Servable not found"),
             (f"{base}{name}:explode", b"{}", 404, "Malformed request")]
    for url, body, status, message in cases:
        request = urllib.request.Request(url, data=body, method="POST")
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request, timeout=10)
        assert error.value.code == status, url
        assert message in json.loads(error.value.read())["error"], url


def test_retries_with_backoff_while_unavailable(pretrainer_server):
    name = pretrainer_server.model_name
    grpc_client, rest_client = clients(pretrainer_server, max_attempts=3)
    for client in (grpc_client, rest_client):
        client.predict(name, "tokenize", {"text": ["x"]})  # caches the signatures
        seen = pretrainer_server.requests_seen
        pretrainer_server.unavailable_responses = 2
        out = client.predict(name, "tokenize", {"text": ["retry me"]})
        assert out["token_count"].shape == (1,)
        assert pretrainer_server.requests_seen - seen == 3
    grpc_client.close()
    pretrainer_server.unavailable_responses = 5
    with pytest.raises(UnavailableError, match="after 3 attempts"):
        rest_client.predict(name, "tokenize", {"text": ["x"]})
    pretrainer_server.unavailable_responses = 0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("client_class", [GrpcClient, RestClient])
def test_unreachable_server_fails_after_bounded_retries(client_class):
    client = client_class(f"127.0.0.1:{_closed_port()}", timeout=2, max_attempts=3,
                          backoff_s=0.05)
    start = time.monotonic()
    with pytest.raises(UnavailableError):
        client.predict("albert", "embed", {"text": ["a"]}, check_inputs=False)
    elapsed = time.monotonic() - start
    assert 0.15 <= elapsed < 10  # slept 0.05 + 0.1 between the 3 attempts
    client.close()


@pytest.mark.parametrize("rest", [False, True])
def test_cli_prints_json(pretrainer_server, capsys, rest):
    port = pretrainer_server.rest_port if rest else pretrainer_server.grpc_port
    args = ["--target", f"127.0.0.1:{port}", "--model", pretrainer_server.model_name,
            "--signature", "sentence_order", "--text", "First.", "--text_b", "Second."]
    assert client_lib.main(args + (["--rest"] if rest else [])) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["original_order_probability"]) == 1
    assert client_lib.main(["--target", f"127.0.0.1:{port}", "--model", "nope",
                            "--text", "a"] + (["--rest"] if rest else [])) == 1
    error = json.loads(capsys.readouterr().err)
    assert error["code"] == "NOT_FOUND" and "Servable not found" in error["error"]


def test_mismatched_shapes_are_invalid_argument(pretrainer_server):
    name = pretrainer_server.model_name
    with GrpcClient(f"127.0.0.1:{pretrainer_server.grpc_port}") as client:
        with pytest.raises(InvalidInputError, match="same batch size"):
            client.predict(name, "sentence_order", {"text_a": ["a", "b"], "text_b": ["c"]})
        with pytest.raises(InvalidInputError, match="shape of input_ids"):
            client.predict(name, "encode", {"input_ids": [[2, 3]], "segment_ids": [[0]],
                                            "input_mask": [[1, 1]]})
        with pytest.raises(InvalidInputError, match="max_position_embeddings"):
            client.predict(name, "encode", {"input_ids": np.full([1, 65], 2),
                                            "segment_ids": np.zeros([1, 65], int),
                                            "input_mask": np.ones([1, 65], int)})


@pytest.mark.parametrize("rest", [False, True])
def test_cli_tags_raw_text_and_split_words(capsys, rest):
    _, export_base, _ = exported("tagger")
    capsys.readouterr()  # the export's own output
    with FakeTfServing(os.path.basename(export_base), export_base) as server:
        port = server.rest_port if rest else server.grpc_port
        common = ["--target", f"127.0.0.1:{port}", "--model", server.model_name] + (
            ["--rest"] if rest else [])
        assert client_lib.main(common + ["--signature", "tag",
                                         "--text", "Peter flew to Brussels."]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["words"] == [["Peter", "flew", "to", "Brussels", "."]]
        assert out["word_start"] == [[0, 6, 11, 14, 22]]
        assert {"entity_text", "entity_type", "entity_count"} <= set(out)
        assert client_lib.main(common + ["--signature", "tag_words", "--words", "a b c",
                                         "--words", "d"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["word_count"] == [3, 1] and out["tags"][1][1:] == ["", ""]
        assert all(tag in ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
                   for tag in out["tags"][0] + out["tags"][1][:1])


@pytest.mark.parametrize("rest", [False, True])
def test_cli_answers_questions(capsys, rest):
    _, export_base, _ = exported("question_answerer")
    capsys.readouterr()  # the export's own output
    context = "Zoë moved to Köln in 1999, said the report."
    with FakeTfServing(os.path.basename(export_base), export_base) as server:
        port = server.rest_port if rest else server.grpc_port
        common = ["--target", f"127.0.0.1:{port}", "--model", server.model_name] + (
            ["--rest"] if rest else [])
        assert client_lib.main(common + ["--signature", "answer", "--question", "Where?",
                                         "--context", context, "--question", "Who?",
                                         "--context", ""]) == 0
        out = json.loads(capsys.readouterr().out)
        assert {"answer", "answer_start", "answer_end", "score", "no_answer_score",
                "no_answer"} <= set(out)
        for text, answer, start, end in zip([context, ""], out["answer"], out["answer_start"],
                                            out["answer_end"]):
            assert text[start:end] == answer
        assert out["answer"][1] == "" and out["no_answer"][1]
        with pytest.raises(SystemExit):
            client_lib.main(common + ["--signature", "answer", "--question", "Where?"])

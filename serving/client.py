"""Clients for a TF Serving model: gRPC (PredictionService) and REST (/v1/models/...).

    python -m serving.client --target localhost:8500 --model albert --signature embed \\
        --text "Hello world." [--text_b "..."] [--rest] [--version N]
    python -m serving.client --target localhost:8500 --model albert_squad \\
        --signature answer --question "Who?" --context "Ada wrote it."

Both clients return outputs as numpy arrays (strings as bytes), retry with exponential
backoff while the server is UNAVAILABLE (gRPC) or refuses connections / answers 503
(REST), and raise a ServingError subclass that says what was wrong: ModelNotFoundError,
SignatureNotFoundError, InvalidInputError, UnavailableError.

With check_inputs=True (the default) the client reads the model's metadata once, checks
the signature and input names before sending, and casts inputs to the declared dtypes
(Python ints become int32 where the signature says int32).
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import sys
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (get_model_metadata_pb2, model_pb2, predict_pb2,
                                     prediction_service_pb2_grpc)

DEFAULT_SIGNATURE = "serving_default"


class ServingError(Exception):
    """An error answered by (or on the way to) the model server."""

    def __init__(self, message: str, code: str = "UNKNOWN"):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ModelNotFoundError(ServingError):
    """The server has no such model, or no such version of it."""


class SignatureNotFoundError(ServingError):
    """The model has no signature of that name."""


class InvalidInputError(ServingError):
    """Missing, extra or badly typed inputs, or an op failed on them."""


class UnavailableError(ServingError):
    """The server could not be reached, after all retries."""


def error_for(code: str, message: str) -> ServingError:
    """The ServingError subclass for a TF Serving status code and message."""
    if code == "NOT_FOUND" or "Servable not found" in message:
        return ModelNotFoundError(message, code)
    if "signature" in message.lower() and "not found" in message.lower():
        return SignatureNotFoundError(message, code)
    if code == "UNAVAILABLE":
        return UnavailableError(message, code)
    if code in ("INVALID_ARGUMENT", "FAILED_PRECONDITION"):
        return InvalidInputError(message, code)
    return ServingError(message, code)


# ------------------------------------------------------------------ metadata
_DTYPES = {"DT_STRING": object, "DT_INT32": np.int32, "DT_INT64": np.int64,
           "DT_FLOAT": np.float32, "DT_DOUBLE": np.float64, "DT_BOOL": np.bool_}


def _tensor_info(info: dict) -> dict:
    shape = info.get("tensor_shape", {})
    dims = None if shape.get("unknown_rank") else [
        int(dim.get("size", 0)) for dim in shape.get("dim", [])]
    return {"dtype": info.get("dtype", "DT_INVALID"), "shape": dims}


def signatures_from_proto_json(signature_def_map: dict) -> dict:
    """SignatureDefMap (as JSON) -> {signature: {"inputs": {name: {dtype, shape}}, "outputs"}}."""
    signatures = {}
    for name, signature in signature_def_map.get("signature_def", {}).items():
        if name == "__saved_model_init_op":
            continue
        signatures[name] = {
            part: {key: _tensor_info(info) for key, info in signature.get(part, {}).items()}
            for part in ("inputs", "outputs")}
    return signatures


def _check_and_cast(signatures: dict, model: str, signature: str, inputs: dict) -> dict:
    if signature not in signatures:
        raise SignatureNotFoundError(
            f"model {model!r} has no signature {signature!r}; it has "
            f"{sorted(signatures)}", "FAILED_PRECONDITION")
    declared = signatures[signature]["inputs"]
    missing = sorted(set(declared) - set(inputs))
    extra = sorted(set(inputs) - set(declared))
    if missing or extra:
        raise InvalidInputError(
            f"signature {signature!r} takes inputs {sorted(declared)}; missing {missing}, "
            f"unexpected {extra}", "INVALID_ARGUMENT")
    cast = {}
    for name, value in inputs.items():
        dtype = _DTYPES.get(declared[name]["dtype"])
        array = _as_array(value)
        if dtype is object:
            if array.size == 0:
                array = array.astype(object)
            elif array.dtype.kind not in "OSU":
                raise InvalidInputError(
                    f"input {name!r} of signature {signature!r} must be strings, "
                    f"got {array.dtype}", "INVALID_ARGUMENT")
        elif dtype is not None and array.dtype != dtype:
            if array.dtype.kind not in "biuf" or (array.dtype.kind == "f"
                                                  and np.dtype(dtype).kind in "iu"):
                raise InvalidInputError(
                    f"input {name!r} of signature {signature!r} must be "
                    f"{declared[name]['dtype']}, got {array.dtype}", "INVALID_ARGUMENT")
            array = array.astype(dtype)
        cast[name] = array
    return cast


def _as_array(value) -> np.ndarray:
    """Lists and arrays to numpy; str becomes UTF-8 bytes (TF strings are bytes), and any
    text (str, bytes or a mix) becomes an object array."""
    if isinstance(value, np.ndarray) and value.dtype.kind not in "USO":
        return value

    def encode(item):
        if isinstance(item, (list, tuple)):
            return [encode(x) for x in item]
        return item.encode("utf-8") if isinstance(item, str) else item

    def first_leaf(item):
        while isinstance(item, list) and item:
            item = item[0]
        return item

    from_array = isinstance(value, np.ndarray)
    encoded = encode(value.tolist() if from_array else value)
    if from_array or isinstance(first_leaf(encoded), bytes):
        return np.array(encoded, dtype=object)
    return np.asarray(encoded)


class _Retrying:
    """Bounded retries with exponential backoff (base * 2**attempt, capped)."""

    def __init__(self, max_attempts: int, backoff_s: float, max_backoff_s: float):
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s

    def delays(self):
        for attempt in range(self.max_attempts - 1):
            yield min(self.backoff_s * 2 ** attempt, self.max_backoff_s)


class _MetadataCache:
    def __init__(self):
        self._signatures = {}

    def signatures(self, client, model, version, timeout):
        key = (model, version)
        if key not in self._signatures:
            self._signatures[key] = client.metadata(model, version, timeout=timeout)["signatures"]
        return self._signatures[key]


# ------------------------------------------------------------------ gRPC
class GrpcClient:
    """TF Serving's PredictionService (port 8500) through tensorflow-serving-api."""

    def __init__(self, target: str, timeout: float = 10.0, max_attempts: int = 4,
                 backoff_s: float = 0.2, max_backoff_s: float = 5.0,
                 max_message_bytes: int = 64 * 1024 * 1024):
        self.target = target
        self.timeout = timeout
        self._retrying = _Retrying(max_attempts, backoff_s, max_backoff_s)
        self._channel = grpc.insecure_channel(target, options=[
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes)])
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._metadata = _MetadataCache()

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method, request, timeout):
        timeout = self.timeout if timeout is None else timeout
        delays = self._retrying.delays()
        while True:
            try:
                return method(request, timeout=timeout)
            except grpc.RpcError as error:
                code = error.code()
                if code == grpc.StatusCode.UNAVAILABLE:
                    delay = next(delays, None)
                    if delay is not None:
                        time.sleep(delay)
                        continue
                    raise UnavailableError(
                        f"{self.target} unavailable after {self._retrying.max_attempts} "
                        f"attempts: {error.details()}", code.name) from None
                raise error_for(code.name, error.details() or "") from None

    @staticmethod
    def _model_spec(model, version, signature=""):
        spec = model_pb2.ModelSpec(name=model, signature_name=signature)
        if version is not None:
            spec.version.value = int(version)
        return spec

    def metadata(self, model: str, version: int | None = None, timeout: float | None = None):
        """{"model_spec": {"name", "version"}, "signatures": {name: {"inputs", "outputs"}}}."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=self._model_spec(model, version), metadata_field=["signature_def"])
        response = self._call(self._stub.GetModelMetadata, request, timeout)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        as_json = json_format.MessageToDict(signature_map, preserving_proto_field_name=True)
        return {"model_spec": {"name": response.model_spec.name,
                               "version": response.model_spec.version.value},
                "signatures": signatures_from_proto_json(as_json)}

    def predict(self, model: str, signature: str = DEFAULT_SIGNATURE, inputs: dict = None,
                version: int | None = None, timeout: float | None = None,
                check_inputs: bool = True) -> dict:
        """Runs one signature; returns {output name: numpy array}."""
        inputs = inputs or {}
        if check_inputs:
            signatures = self._metadata.signatures(self, model, version, timeout)
            inputs = _check_and_cast(signatures, model, signature, inputs)
        request = predict_pb2.PredictRequest(
            model_spec=self._model_spec(model, version, signature))
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(_as_array(value)))
        response = self._call(self._stub.Predict, request, timeout)
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


# ------------------------------------------------------------------ REST
_HTTP_CODES = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 408: "DEADLINE_EXCEEDED",
               499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE",
               504: "DEADLINE_EXCEEDED"}


def _to_json_value(array: np.ndarray):
    """numpy -> JSON lists; bytes that are not UTF-8 go as {"b64": ...}, as TF Serving reads."""
    array = np.asarray(array)
    if array.dtype.kind in "OS":
        def convert(item):
            if isinstance(item, bytes):
                try:
                    return item.decode("utf-8")
                except UnicodeDecodeError:
                    return {"b64": base64.b64encode(item).decode("ascii")}
            return item
        return np.vectorize(convert, otypes=[object])(array).tolist() if array.ndim else \
            convert(array.item())
    return array.tolist()


def _from_json_value(value, dtype: str | None):
    def strings(item):
        if isinstance(item, list):
            return [strings(x) for x in item]
        if isinstance(item, dict) and "b64" in item:
            return base64.b64decode(item["b64"])
        return item.encode("utf-8") if isinstance(item, str) else item

    if dtype == "DT_STRING":
        return np.array(strings(value), dtype=object)
    numpy_dtype = _DTYPES.get(dtype)
    return np.array(value, dtype=numpy_dtype if numpy_dtype not in (None, object) else None)


class RestClient:
    """TF Serving's REST API (port 8501): /v1/models/NAME[/versions/N][:predict|/metadata]."""

    def __init__(self, target: str, timeout: float = 10.0, max_attempts: int = 4,
                 backoff_s: float = 0.2, max_backoff_s: float = 5.0):
        self.base_url = target if "://" in target else f"http://{target}"
        self.timeout = timeout
        self._retrying = _Retrying(max_attempts, backoff_s, max_backoff_s)
        self._metadata = _MetadataCache()

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _url(self, model, version, suffix=""):
        url = f"{self.base_url}/v1/models/{model}"
        if version is not None:
            url += f"/versions/{int(version)}"
        return url + suffix

    def _request(self, url, body=None, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        data = None if body is None else json.dumps(body).encode("utf-8")
        delays = self._retrying.delays()
        while True:
            request = urllib.request.Request(
                url, data=data, headers={"Content-Type": "application/json"},
                method="GET" if data is None else "POST")
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    return json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as error:
                text = error.read().decode("utf-8", "replace")
                try:
                    message = json.loads(text).get("error", text)
                except (ValueError, AttributeError):
                    message = text
                code = _HTTP_CODES.get(error.code, f"HTTP_{error.code}")
                if error.code != 503:
                    raise error_for(code, message) from None
                reason = f"HTTP 503: {message}"
            except (urllib.error.URLError, ConnectionError, socket.timeout) as error:
                reason = getattr(error, "reason", error)
                if isinstance(reason, socket.timeout) or isinstance(error, socket.timeout):
                    raise ServingError(f"{url}: timed out after {timeout}s",
                                       "DEADLINE_EXCEEDED") from None
                if not isinstance(reason, (ConnectionRefusedError, ConnectionResetError)) \
                        and not isinstance(error, ConnectionError):
                    raise ServingError(f"{url}: {reason}", "UNAVAILABLE") from None
            delay = next(delays, None)
            if delay is None:
                raise UnavailableError(
                    f"{url} unavailable after {self._retrying.max_attempts} attempts: "
                    f"{reason}", "UNAVAILABLE")
            time.sleep(delay)

    def status(self, model: str, version: int | None = None, timeout=None) -> dict:
        """GET /v1/models/NAME[/versions/N]: the model_version_status list."""
        return self._request(self._url(model, version), timeout=timeout)

    def metadata(self, model: str, version: int | None = None, timeout=None) -> dict:
        """Same shape as GrpcClient.metadata."""
        answer = self._request(self._url(model, version, "/metadata"), timeout=timeout)
        spec = answer.get("model_spec", {})
        signature_map = answer.get("metadata", {}).get("signature_def", {})
        return {"model_spec": {"name": spec.get("name", model),
                               "version": int(spec.get("version", 0) or 0)},
                "signatures": signatures_from_proto_json(signature_map)}

    def predict(self, model: str, signature: str = DEFAULT_SIGNATURE, inputs: dict = None,
                version: int | None = None, timeout: float | None = None,
                check_inputs: bool = True, format: str = "columnar") -> dict:
        """Runs one signature; format "columnar" ("inputs") or "row" ("instances")."""
        inputs = inputs or {}
        output_types = {}
        if check_inputs:
            signatures = self._metadata.signatures(self, model, version, timeout)
            inputs = _check_and_cast(signatures, model, signature, inputs)
            output_types = {name: info["dtype"]
                            for name, info in signatures[signature]["outputs"].items()}
        arrays = {name: _as_array(value) for name, value in inputs.items()}
        if format == "columnar":
            body = {"signature_name": signature,
                    "inputs": {name: _to_json_value(a) for name, a in arrays.items()}}
        elif format == "row":
            sizes = {a.shape[0] if a.ndim else None for a in arrays.values()}
            if len(sizes) != 1 or None in sizes:
                raise InvalidInputError("row format needs every input to have the same "
                                        "batch size", "INVALID_ARGUMENT")
            batch = sizes.pop()
            body = {"signature_name": signature,
                    "instances": [{name: _to_json_value(a[i]) for name, a in arrays.items()}
                                  for i in range(batch)]}
        else:
            raise ValueError(f"format must be 'columnar' or 'row', got {format!r}")
        answer = self._request(self._url(model, version, ":predict"), body, timeout)
        if "outputs" in answer:
            outputs = answer["outputs"]
            if not isinstance(outputs, dict):  # a single output comes unnamed
                outputs = {next(iter(output_types), "output"): outputs}
        else:
            rows = answer["predictions"]
            if rows and not isinstance(rows[0], dict):
                rows = [{next(iter(output_types), "output"): row} for row in rows]
            names = list(rows[0]) if rows else list(output_types)
            outputs = {name: [row[name] for row in rows] for name in names}
        return {name: _from_json_value(value, output_types.get(name))
                for name, value in outputs.items()}


# ------------------------------------------------------------------ CLI
def text_inputs(text: list, text_b: list | None) -> dict:
    """The shared raw-text signatures' input dict from --text (and --text_b) values."""
    return {"text": text, **({"text_b": text_b} if text_b is not None else {})}


def signature_inputs(signature: str, args) -> dict | None:
    """The inputs from the parsed flags: a task's own flags (its client_options), else
    --text / --text_b; None when none were given."""
    from albert_keras.tasks import all_tasks  # the tasks' flags (imports the models)

    for task in all_tasks():
        inputs = task.client_inputs(signature, args)
        if inputs is not None:
            return inputs
    return text_inputs(args.text, args.text_b) if args.text else None


def _jsonable(value):
    if isinstance(value, dict):
        return {key: _jsonable(v) for key, v in value.items()}
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (np.generic,)):
        return value.item()
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.client",
                                     description="Query an ALBERT model on TF Serving.")
    parser.add_argument("--target", required=True,
                        help="HOST:PORT (8500 gRPC, 8501 REST with --rest)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--signature", default=DEFAULT_SIGNATURE)
    parser.add_argument("--text", action="append",
                        help="input text; repeat for a batch")
    parser.add_argument("--text_b", action="append",
                        help="second segment (embed_pair, classify_pair, sentence_order)")
    from albert_keras.tasks import all_tasks  # the tasks' flags (imports the models)

    task_options = {name: options for task in all_tasks()
                    for name, options in task.client_options.items()}
    for name, options in task_options.items():  # --words, --question, --context, ...
        parser.add_argument(f"--{name}", **options)
    parser.add_argument("--inputs_json", help='any inputs as JSON: {"input_ids": [[2, 3]], ...}')
    parser.add_argument("--version", type=int, default=None)
    parser.add_argument("--rest", action="store_true", help="use the REST API, not gRPC")
    parser.add_argument("--metadata", action="store_true", help="print the signatures and exit")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--max_attempts", type=int, default=4)
    args = parser.parse_args(argv)

    client_class = RestClient if args.rest else GrpcClient
    with client_class(args.target, timeout=args.timeout,
                      max_attempts=args.max_attempts) as client:
        try:
            if args.metadata:
                result = client.metadata(args.model, args.version)
            else:
                if args.inputs_json:
                    inputs = json.loads(args.inputs_json)
                else:
                    try:
                        inputs = signature_inputs(args.signature, args)
                    except ValueError as error:
                        parser.error(str(error))
                    if inputs is None:
                        flags = ", ".join(f"--{name}" for name in ["text", *task_options])
                        parser.error(f"give {flags} or --inputs_json (or --metadata)")
                result = client.predict(args.model, args.signature, inputs, args.version)
        except ServingError as error:
            print(json.dumps({"error": error.message, "code": error.code}), file=sys.stderr)
            return 1
    print(json.dumps(_jsonable(result), indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

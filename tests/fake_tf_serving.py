"""A test-only stand-in for tensorflow_model_server (which cannot be installed here).

Serves the SavedModel versions under one base path the way TF Serving does, over real
sockets on 127.0.0.1 (ephemeral ports):
- gRPC: tensorflow.serving.PredictionService Predict and GetModelMetadata;
- REST: GET /v1/models/NAME[/versions/N], GET .../metadata, POST ...:predict with
  "instances" (row) or "inputs" (columnar) JSON.
Versions are the integer-named directories (others, like .tmp-*, are ignored); each
version's assets.extra/tf_serving_warmup_requests are replayed on load, and a failing
warmup fails the load, as in TF Serving. Errors use TF Serving's status codes and
messages; any failure answers an error and leaves the server running.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (get_model_metadata_pb2, predict_pb2,
                                     prediction_log_pb2, prediction_service_pb2_grpc)

_HTTP_STATUS = {"OK": 200, "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400,
                "OUT_OF_RANGE": 400, "NOT_FOUND": 404, "UNAVAILABLE": 503,
                "DEADLINE_EXCEEDED": 504, "UNIMPLEMENTED": 501}
_MAX_BODY_BYTES = 32 * 1024 * 1024


class ServingStatus(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class _Version:
    def __init__(self, path: str):
        self.path = path
        self.loaded = tf.saved_model.load(path)
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            saved_model = saved_model_pb2.SavedModel.FromString(f.read())
        self.signature_defs = {name: signature for name, signature
                               in saved_model.meta_graphs[0].signature_def.items()
                               if name != "__saved_model_init_op"}


class FakeTfServing:
    """One model, NAME, served from BASE_PATH/<integer version>/."""

    def __init__(self, model_name: str, base_path: str):
        self.model_name = model_name
        self.versions = {}
        for name in sorted(os.listdir(base_path)):
            if name.isdigit():
                self.versions[int(name)] = _Version(os.path.join(base_path, name))
                self._warm_up(int(name))
        self.unavailable_responses = 0  # answer UNAVAILABLE to this many next calls
        self.requests_seen = 0
        self._lock = threading.Lock()
        self._grpc_server = None
        self._http_server = None
        self.grpc_port = self.rest_port = None

    # -------------------------------------------------------------- the servable
    def _warm_up(self, version: int):
        path = os.path.join(self.versions[version].path, "assets.extra",
                            "tf_serving_warmup_requests")
        if not os.path.exists(path):
            return
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            self.predict(self.model_name, version, request.model_spec.signature_name, inputs)

    def _maybe_unavailable(self):
        with self._lock:
            self.requests_seen += 1
            if self.unavailable_responses > 0:
                self.unavailable_responses -= 1
                raise ServingStatus("UNAVAILABLE", "Server is warming up (simulated)")

    def version(self, model_name: str, version: int | None) -> tuple[int, _Version]:
        if model_name != self.model_name or not self.versions:
            raise ServingStatus("NOT_FOUND",
                                f"Servable not found for request: Latest({model_name})"
                                if version is None else
                                f"Servable not found for request: Specific({model_name}, {version})")
        if version is None:
            version = max(self.versions)
        if version not in self.versions:
            raise ServingStatus(
                "NOT_FOUND", f"Servable not found for request: Specific({model_name}, {version})")
        return version, self.versions[version]

    def predict(self, model_name, version, signature_name, inputs: dict):
        """inputs: name -> numpy array. Returns (version, signature, {name: numpy})."""
        version, servable = self.version(model_name, version)
        signature_name = signature_name or "serving_default"
        if signature_name not in servable.signature_defs:
            raise ServingStatus("FAILED_PRECONDITION",
                                f'Serving signature key "{signature_name}" not found.')
        signature = servable.signature_defs[signature_name]
        sent, wanted = set(inputs), set(signature.inputs)
        if sent != wanted:
            raise ServingStatus(
                "INVALID_ARGUMENT",
                f"input size does not match signature: {len(sent)}!={len(wanted)} "
                f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(wanted))}}}). "
                f"Sent extra: {{{','.join(sorted(sent - wanted))}}}. "
                f"Missing but required: {{{','.join(sorted(wanted - sent))}}}.")
        tensors = {}
        for index, name in enumerate(sorted(inputs)):
            expected = tf.dtypes.as_dtype(signature.inputs[name].dtype)
            value = inputs[name]
            got = tf.dtypes.as_dtype(value.dtype) if value.dtype != object else tf.string
            if got != expected:
                raise ServingStatus("INVALID_ARGUMENT",
                                    f"Expects arg[{index}] to be {expected.name} but "
                                    f"{got.name} is provided")
            tensors[name] = tf.constant(value, dtype=expected)
        function = servable.loaded.signatures[signature_name]
        try:
            outputs = function(**tensors)
        except tf.errors.OpError as error:
            raise ServingStatus(_op_error_code(error), error.message) from None
        except (ValueError, TypeError) as error:  # shape or rank not accepted
            raise ServingStatus("INVALID_ARGUMENT", str(error)) from None
        return version, signature_name, {k: v.numpy() for k, v in outputs.items()}

    def metadata(self, model_name, version):
        version, servable = self.version(model_name, version)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature in servable.signature_defs.items():
            signature_map.signature_def[name].CopyFrom(signature)
        return version, signature_map

    # -------------------------------------------------------------- servers
    def start(self) -> "FakeTfServing":
        self._grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionService(self), self._grpc_server)
        self.grpc_port = self._grpc_server.add_insecure_port("127.0.0.1:0")
        self._grpc_server.start()
        handler = type("Handler", (_RestHandler,), {"serving": self})
        self._http_server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._http_server.daemon_threads = True
        self.rest_port = self._http_server.server_address[1]
        threading.Thread(target=self._http_server.serve_forever,
                         kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def stop(self):
        if self._grpc_server is not None:
            self._grpc_server.stop(grace=0).wait(5)
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _op_error_code(error) -> str:
    return {tf.errors.InvalidArgumentError: "INVALID_ARGUMENT",
            tf.errors.NotFoundError: "NOT_FOUND",
            tf.errors.ResourceExhaustedError: "RESOURCE_EXHAUSTED",
            tf.errors.OutOfRangeError: "OUT_OF_RANGE",
            tf.errors.FailedPreconditionError: "FAILED_PRECONDITION"}.get(type(error), "INTERNAL")


# ------------------------------------------------------------------ gRPC
class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, serving: FakeTfServing):
        self.serving = serving

    def _abort(self, context, status: ServingStatus):
        context.abort(getattr(grpc.StatusCode, status.code, grpc.StatusCode.INTERNAL),
                      status.message)

    def Predict(self, request, context):
        try:
            self.serving._maybe_unavailable()
            spec = request.model_spec
            version = spec.version.value if spec.HasField("version") else None
            try:
                inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            except Exception as error:  # malformed TensorProto
                raise ServingStatus("INVALID_ARGUMENT", f"Bad input tensor: {error}") from None
            version, signature, outputs = self.serving.predict(
                spec.name, version, spec.signature_name, inputs)
        except ServingStatus as status:
            self._abort(context, status)
        except Exception as error:  # never take the server down
            self._abort(context, ServingStatus("INTERNAL", repr(error)))
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = version
        response.model_spec.signature_name = signature
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request, context):
        try:
            self.serving._maybe_unavailable()
            unsupported = [f for f in request.metadata_field if f != "signature_def"]
            if unsupported or not request.metadata_field:
                raise ServingStatus("INVALID_ARGUMENT",
                                    f"Metadata field {unsupported or ['']} is not supported")
            spec = request.model_spec
            version = spec.version.value if spec.HasField("version") else None
            version, signature_map = self.serving.metadata(spec.name, version)
        except ServingStatus as status:
            self._abort(context, status)
        except Exception as error:
            self._abort(context, ServingStatus("INTERNAL", repr(error)))
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = version
        response.metadata["signature_def"].Pack(signature_map)
        return response


# ------------------------------------------------------------------ REST
def _json_to_array(value, dtype: tf.DType) -> np.ndarray:
    def strings(item):
        if isinstance(item, list):
            return [strings(x) for x in item]
        if isinstance(item, dict):
            if set(item) != {"b64"}:
                raise ServingStatus("INVALID_ARGUMENT", f"JSON object {item} is not {{'b64': ...}}")
            return base64.b64decode(item["b64"])
        if not isinstance(item, str):
            raise ServingStatus("INVALID_ARGUMENT",
                                f"JSON Value: {json.dumps(item)} Type: {type(item).__name__} "
                                "is not of expected type: string")
        return item.encode("utf-8")

    if dtype == tf.string:
        return np.array(strings(value), dtype=object).reshape(np.shape(value))
    try:
        array = np.array(value)
        if array.dtype.kind not in "biuf" and array.size:
            raise ValueError(array.dtype)
        if dtype.is_integer and array.dtype.kind == "f":
            raise ValueError("float for an integer input")
        return array.astype(dtype.as_numpy_dtype)
    except (ValueError, TypeError) as error:
        raise ServingStatus("INVALID_ARGUMENT",
                            f"JSON Value is not of expected type {dtype.name}: {error}") from None


def _array_to_json(name: str, array):
    array = np.asarray(array)
    if array.dtype.kind in "OS":
        def convert(item):
            if name.endswith("_bytes"):
                return {"b64": base64.b64encode(item).decode("ascii")}
            return item.decode("utf-8", "replace")
        if array.ndim == 0:
            return convert(array.item())
        return np.vectorize(convert, otypes=[object])(array).tolist() if array.size else \
            array.tolist()
    return array.tolist()


class _RestHandler(BaseHTTPRequestHandler):
    serving: FakeTfServing = None
    timeout = 30  # seconds a connection may idle: no unbounded reads
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: dict):
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: ServingStatus):
        self._send(_HTTP_STATUS.get(status.code, 500), {"error": status.message})

    def _route(self):
        """/v1/models/NAME[/versions/N][/metadata|:predict] -> (name, version, action)."""
        path = self.path.split("?", 1)[0]
        action = None
        if path.endswith(":predict"):
            path, action = path[:-len(":predict")], "predict"
        elif path.endswith("/metadata"):
            path, action = path[:-len("/metadata")], "metadata"
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[:2] == ["v1", "models"]:
            return parts[2], None, action
        if len(parts) == 5 and parts[:2] == ["v1", "models"] and parts[3] == "versions":
            if not parts[4].isdigit():
                raise ServingStatus("INVALID_ARGUMENT", f"Malformed version: {parts[4]}")
            return parts[2], int(parts[4]), action
        raise ServingStatus("NOT_FOUND", f"Malformed request: {self.command} {self.path}")

    def do_GET(self):
        try:
            self.serving._maybe_unavailable()
            name, version, action = self._route()
            if action == "metadata":
                version, signature_map = self.serving.metadata(name, version)
                self._send(200, {
                    "model_spec": {"name": name, "signature_name": "", "version": str(version)},
                    "metadata": {"signature_def": json_format.MessageToDict(
                        signature_map, preserving_proto_field_name=True)}})
            elif action is None:
                versions = [version] if version is not None else sorted(self.serving.versions)
                for v in versions:
                    self.serving.version(name, v)
                self._send(200, {"model_version_status": [
                    {"version": str(v), "state": "AVAILABLE",
                     "status": {"error_code": "OK", "error_message": ""}} for v in versions]})
            else:
                raise ServingStatus("NOT_FOUND", f"Malformed request: GET {self.path}")
        except ServingStatus as status:
            self._error(status)
        except Exception as error:
            self._error(ServingStatus("INTERNAL", repr(error)))

    def do_POST(self):
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY_BYTES:
                raise ServingStatus("INVALID_ARGUMENT", f"Request body of {length} bytes is "
                                    "too large")
            body = self.rfile.read(length)
            self.serving._maybe_unavailable()
            name, version, action = self._route()
            if action != "predict":
                raise ServingStatus("NOT_FOUND", f"Malformed request: POST {self.path}")
            try:
                request = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                raise ServingStatus("INVALID_ARGUMENT", f"JSON Parse error: {error}") from None
            if not isinstance(request, dict):
                raise ServingStatus("INVALID_ARGUMENT", "JSON Parse error: not an object")
            self._predict(name, version, request)
        except ServingStatus as status:
            self._error(status)
        except Exception as error:
            self._error(ServingStatus("INTERNAL", repr(error)))

    def _predict(self, name, version, request):
        _, servable = self.serving.version(name, version)
        signature_name = request.get("signature_name") or "serving_default"
        if signature_name not in servable.signature_defs:
            raise ServingStatus("FAILED_PRECONDITION",
                                f'Serving signature key "{signature_name}" not found.')
        declared = servable.signature_defs[signature_name].inputs
        if ("instances" in request) == ("inputs" in request):
            raise ServingStatus("INVALID_ARGUMENT",
                                "Missing 'inputs' or 'instances' key" if "inputs" not in request
                                else "Request must have only one of 'inputs' or 'instances'")

        def dtype_of(input_name):
            if input_name not in declared:
                return tf.string  # reported as extra by predict()
            return tf.dtypes.as_dtype(declared[input_name].dtype)

        row_format = "instances" in request
        if row_format:
            rows = request["instances"]
            if not isinstance(rows, list):
                raise ServingStatus("INVALID_ARGUMENT", "'instances' must be a list")
            if rows and all(isinstance(row, dict) for row in rows):
                names = list(rows[0])
                if any(set(row) != set(names) for row in rows):
                    raise ServingStatus("INVALID_ARGUMENT",
                                        "Failed to process element: all instances must have "
                                        "the same named inputs")
                columns = {n: [row[n] for row in rows] for n in names}
            elif len(declared) == 1:
                columns = {next(iter(declared)): rows}
            else:
                columns = {} if not rows else {"instances": rows}
        else:
            columns = request["inputs"]
            if not isinstance(columns, dict):
                if len(declared) != 1:
                    raise ServingStatus("INVALID_ARGUMENT",
                                        "Unnamed 'inputs' need a signature with one input")
                columns = {next(iter(declared)): columns}
        inputs = {n: _json_to_array(v, dtype_of(n)) for n, v in columns.items()}
        _, _, outputs = self.serving.predict(name, version, signature_name, inputs)
        if row_format:
            batch = {len(v) for v in outputs.values() if v.ndim}
            count = batch.pop() if len(batch) == 1 else 0
            rows = [{k: _array_to_json(k, v[i]) for k, v in outputs.items()}
                    for i in range(count)]
            if len(outputs) == 1:
                rows = [next(iter(row.values())) for row in rows]
            self._send(200, {"predictions": rows})
        else:
            values = {k: _array_to_json(k, v) for k, v in outputs.items()}
            self._send(200, {"outputs": next(iter(values.values())) if len(values) == 1
                             else values})

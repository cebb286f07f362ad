"""Every op in every function of each export is a TensorFlow or tensorflow-text op
(what stock TF Serving links), and none runs Python."""

import json
import os
import subprocess
import sys

import pytest
from tensorflow.core.protobuf import saved_model_pb2

from serving_fixtures import exported

# The exported models of serving_fixtures are built once per process: the modules that
# share them run in one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("exports")

PYTHON_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}

# Classifies op names in a fresh process: registered by tensorflow alone ("core"),
# only after importing tensorflow_text ("text"), or by neither ("unknown").
CLASSIFY_OPS = r"""
import json, sys
import tensorflow as tf
from tensorflow.python.framework import op_def_registry
ops = json.loads(sys.stdin.read())
core = {op for op in ops if op_def_registry.get(op) is not None}
import tensorflow_text  # noqa: F401
text = {op for op in ops if op not in core and op_def_registry.get(op) is not None}
print(json.dumps({op: "core" if op in core else "text" if op in text else "unknown"
                  for op in ops}))
"""


def op_types(saved_model_dir: str) -> set:
    """Op types of the graph and of every function in its library."""
    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
        saved_model = saved_model_pb2.SavedModel.FromString(f.read())
    ops = set()
    for meta_graph in saved_model.meta_graphs:
        graph = meta_graph.graph_def
        ops.update(node.op for node in graph.node)
        for function in graph.library.function:
            ops.update(node.op for node in function.node_def)
    return ops


@pytest.fixture(scope="module")
def ops_by_export():
    return {kind: op_types(exported(kind)[2])
            for kind in ("pretrainer", "classifier", "tagger", "question_answerer",
                         "squad2_answerer", "backbone")}


def test_only_tensorflow_and_tensorflow_text_ops(ops_by_export):
    all_ops = sorted(set().union(*ops_by_export.values()))
    # Function calls name library functions, not ops; those are checked through the library.
    function_names = set()
    for kind in ops_by_export:
        with open(os.path.join(exported(kind)[2], "saved_model.pb"), "rb") as f:
            graph = saved_model_pb2.SavedModel.FromString(f.read()).meta_graphs[0].graph_def
        function_names.update(fn.signature.name for fn in graph.library.function)
    ops = [op for op in all_ops if op not in function_names]
    result = subprocess.run([sys.executable, "-c", CLASSIFY_OPS], input=json.dumps(ops),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    origin = json.loads(result.stdout.strip().splitlines()[-1])
    assert not [op for op, where in origin.items() if where == "unknown"]
    assert not PYTHON_OPS & set(ops)
    text_ops = {op for op, where in origin.items() if where == "text"}
    # The tokenizer and the tagger's word splitting are all that is outside core TensorFlow.
    assert text_ops and all(op.startswith(("Sentencepiece", "Normalize", "RegexSplitWithOffsets"))
                            for op in text_ops), text_ops


def test_exports_hold_no_xla_kernels_even_when_the_model_trains_with_them(tmp_path):
    """The exporter rebuilds the model with its --fusion (plain by default) whatever
    the model was built with, so no function in the SavedModel asks for XLA
    compilation (stock TF Serving cannot run it on CPU)."""
    import dataclasses

    import tensorflow as tf

    from albert_keras import AlbertBackbone
    from serving import export as export_lib
    from serving_fixtures import build_model, model_proto

    plain = build_model("backbone")
    model = AlbertBackbone(dataclasses.replace(plain.config, fusion="xla_cpu"))
    model.set_weights(plain.get_weights())
    version_dir = export_lib.export(model, model_proto(), str(tmp_path / "m"))
    assert model.config.fusion == "xla_cpu"  # the exporter made a copy
    with open(os.path.join(version_dir, "saved_model.pb"), "rb") as f:
        graph = saved_model_pb2.SavedModel.FromString(f.read()).meta_graphs[0].graph_def
    compiled = [fn.signature.name for fn in graph.library.function
                if fn.attr["_XlaMustCompile"].b]
    compiled += [node.name for fn in graph.library.function for node in fn.node_def
                 if node.attr["_XlaMustCompile"].b]
    assert not compiled
    # The check can fail: the model itself, traced, does carry XLA kernels.
    features = {name: tf.ones((1, 4), tf.int32)
                for name in ("input_ids", "segment_ids", "input_mask")}
    graph_def = tf.function(lambda f: model(f, training=False)).get_concrete_function(
        features).graph.as_graph_def()
    assert any(fn.attr["_XlaMustCompile"].b for fn in graph_def.library.function) or any(
        node.attr["_XlaMustCompile"].b for node in graph_def.node)

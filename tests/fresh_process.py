"""Runs a SavedModel in a new Python process that imports only tensorflow and
tensorflow_text, as TensorFlow Serving would: nothing of the project may be needed."""

import json
import os
import subprocess
import sys

import tensorflow as tf


class ExportedTokenizer(tf.Module):
    """A tokenizer saved alone: `tokenize` gives the packed features (seq_length 16) and
    each piece's id and code-point span (padded with -1)."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(self, text):
        ids, starts, ends = self.tokenizer.tokenize_with_offsets(text)
        return dict(self.tokenizer(text, seq_length=16), ids=ids.to_tensor(-1),
                    starts=starts.to_tensor(-1), ends=ends.to_tensor(-1))


def call_reloaded(export_dir: str | None, expression: str, cwd: str, setup: str = ""):
    """Loads export_dir as `m` (if given), runs `setup` lines, and returns the JSON
    value of `expression` (which must give JSON-able Python values)."""
    load = f"m = tf.saved_model.load({export_dir!r})" if export_dir else ""
    script = (
        "import sys, json, tensorflow as tf, tensorflow_text\n"
        f"{load}\n"
        f"{setup}\n"
        f"print(json.dumps({expression}))\n"
        "assert 'albert_keras' not in sys.modules\n"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])

"""One worker of a two-process MultiWorkerMirroredStrategy run (started by
test_distributed.py with TF_CONFIG set). Trains a tiny pretrainer on fixed synthetic
batches and prints the loss history and a weights fingerprint.

    python tests/multi_worker_worker.py [--no-fix]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from training import distributed_fit_fix  # noqa: E402

if "--no-fix" not in sys.argv:
    distributed_fit_fix.apply()
strategy = tf.distribute.MultiWorkerMirroredStrategy()

import keras  # noqa: E402

from albert_keras import AlbertConfig, AlbertPretrainer  # noqa: E402
from albert_keras.optimization import create_optimizer  # noqa: E402
from training.model_setup import weights_fingerprint  # noqa: E402

GLOBAL_BATCH, SEQ, PRED = 8, 16, 3


def synthetic(seed):
    rng = np.random.default_rng(seed)
    mask = np.ones((GLOBAL_BATCH, SEQ), "int32")
    mask[::2, 12:] = 0
    return {
        "input_ids": (rng.integers(5, 60, (GLOBAL_BATCH, SEQ)) * mask).astype("int32"),
        "segment_ids": np.repeat([[0] * 8 + [1] * 8], GLOBAL_BATCH, 0).astype("int32") * mask,
        "input_mask": mask,
        "masked_lm_positions": rng.integers(1, 11, (GLOBAL_BATCH, PRED)).astype("int32"),
        "masked_lm_ids": rng.integers(5, 60, (GLOBAL_BATCH, PRED)).astype("int32"),
        "masked_lm_weights": (rng.random((GLOBAL_BATCH, PRED)) > 0.2).astype("float32"),
        "next_sentence_labels": rng.integers(0, 2, (GLOBAL_BATCH, 1)).astype("int32"),
    }


def dataset_fn(context):
    batches = [synthetic(i) for i in range(4)]
    per_replica = context.get_per_replica_batch_size(GLOBAL_BATCH)
    start = context.input_pipeline_id * per_replica
    rows = [{k: v[start:start + per_replica] for k, v in b.items()} for b in batches]
    stacked = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    return tf.data.Dataset.from_tensor_slices(stacked).repeat()


keras.utils.set_random_seed(7)
with strategy.scope():
    config = AlbertConfig(vocab_size=60, embedding_size=8, hidden_size=16, num_hidden_layers=2,
                          num_attention_heads=2, intermediate_size=24, max_position_embeddings=SEQ)
    model = AlbertPretrainer(config)
    model.compile(optimizer=create_optimizer("lamb", learning_rate=1e-2, total_steps=8,
                                             warmup_steps=1))
history = model.fit(strategy.distribute_datasets_from_function(dataset_fn), epochs=2,
                    steps_per_epoch=3, verbose=0, shuffle=False)
print("losses", " ".join(f"{v:.6f}" for v in history.history["loss"]))
print("fingerprint", weights_fingerprint(model), flush=True)

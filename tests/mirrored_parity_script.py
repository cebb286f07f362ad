"""Trains the same tiny model from the same weights on the same global batches under the
default strategy and under MirroredStrategy over 2 logical CPU devices, and prints the
largest loss and weight differences, for each case named on the command line:
MODEL:ACCUMULATE:REMAT, where MODEL is pretrainer or tagger, ACCUMULATE K splits each
replica's batch into K micro-batches in the mirrored run (one update per global batch)
and REMAT "block" recomputes its encoder blocks there. Each output line starts with its
case and a dot (pretrainer:1:none.max_loss_diff). Run by test_distributed.py, all cases
in one process of their own: logical devices must be configured before TensorFlow
starts."""

import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from training import distributed_fit_fix  # noqa: E402

if "--no-fix" not in sys.argv:
    distributed_fit_fix.apply()

from albert_keras import AlbertConfig, AlbertPretrainer, AlbertTagger  # noqa: E402
from albert_keras.optimization import create_optimizer  # noqa: E402

GLOBAL_BATCH, SEQ, PRED, STEPS = 8, 16, 4, 5


def batches(tagger):
    rng = np.random.default_rng(3)
    mask = np.ones((STEPS, GLOBAL_BATCH, SEQ), "int32")
    mask[:, 1::2, 10:] = 0
    data = {
        "input_ids": (rng.integers(5, 60, mask.shape) * mask).astype("int32"),
        "segment_ids": (np.arange(SEQ)[None, None] >= 8).astype("int32") * mask,
        "input_mask": mask,
        "masked_lm_positions": rng.integers(1, 9, (STEPS, GLOBAL_BATCH, PRED)).astype("int32"),
        "masked_lm_ids": rng.integers(5, 60, (STEPS, GLOBAL_BATCH, PRED)).astype("int32"),
        # Uneven real-prediction counts between the two replicas' halves of each batch.
        "masked_lm_weights": (rng.random((STEPS, GLOBAL_BATCH, PRED)) > 0.4).astype("float32"),
        "next_sentence_labels": rng.integers(0, 2, (STEPS, GLOBAL_BATCH, 1)).astype("int32"),
    }
    if tagger:
        # Labeled words at random, and many more in the first replica's half of each batch.
        data["label_ids"] = rng.integers(0, 5, mask.shape).astype("int32")
        share = np.where(np.arange(GLOBAL_BATCH) < GLOBAL_BATCH // 2, 0.8, 0.2)[None, :, None]
        data["label_weights"] = ((rng.random(mask.shape) < share) * mask).astype("float32")
    return data


config = AlbertConfig(vocab_size=60, embedding_size=8, hidden_size=16, num_hidden_layers=2,
                      num_attention_heads=2, intermediate_size=24, max_position_embeddings=SEQ)



def build(model_config, tagger):
    if tagger:
        return AlbertTagger(model_config, tag_names=list("ABCDE"), dropout=0.0)
    return AlbertPretrainer(model_config)


def train(strategy, data, initial, tagger, accumulate=1, remat="none"):
    def dataset_fn(context):
        # One pipeline feeds its replicas consecutive per-replica batches: step s
        # gives replica r rows [r * per_replica, (r + 1) * per_replica) of batch s.
        per_replica = context.get_per_replica_batch_size(GLOBAL_BATCH)
        local = context.num_replicas_in_sync // context.num_input_pipelines
        first = context.input_pipeline_id * local
        slices = {k: np.stack([v[s, (first + r) * per_replica:(first + r + 1) * per_replica]
                               for s in range(STEPS) for r in range(local)])
                  for k, v in data.items()}
        return tf.data.Dataset.from_tensor_slices(slices)

    with strategy.scope():
        model = build(dataclasses.replace(config, remat=remat), tagger)
        model.set_weights(initial)
        model.compile(optimizer=create_optimizer("lamb", learning_rate=1e-2, total_steps=STEPS,
                                                 warmup_steps=1, clip_norm=float(os.environ.get("CLIP", "1.0"))),
                      gradient_accumulation_steps=accumulate)
    losses = []
    callback = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: losses.append(float(logs["loss"])))
    dataset = strategy.distribute_datasets_from_function(dataset_fn)
    model.fit(dataset, epochs=1, steps_per_epoch=STEPS, verbose=0, shuffle=False,
              callbacks=[callback])
    return np.array(losses), model.get_weights()


mirrored = tf.distribute.MirroredStrategy(devices=["/cpu:0", "/cpu:1"])
defaults = {}  # model -> the default strategy's run, shared by its cases
for case in [arg for arg in sys.argv[1:] if not arg.startswith("--")]:
    model_name, accumulate, remat = case.split(":")
    tagger = model_name == "tagger"
    data = batches(tagger)
    keras.utils.set_random_seed(11)
    initial = build(config, tagger).get_weights()
    if model_name not in defaults:
        defaults[model_name] = train(tf.distribute.get_strategy(), data, initial, tagger)
    default_losses, default_weights = defaults[model_name]
    mirrored_losses, mirrored_weights = train(mirrored, data, initial, tagger, int(accumulate),
                                              remat)
    print(case + ".replicas", mirrored.num_replicas_in_sync)
    print(case + ".losses", default_losses.tolist(), mirrored_losses.tolist())
    print(case + ".max_loss_diff", float(np.abs(default_losses - mirrored_losses).max()))
    print(case + ".max_weight_diff", max(float(np.abs(a - b).max())
                                       for a, b in zip(default_weights, mirrored_weights)))
    print(case + ".weights_moved", max(float(np.abs(a - b).max())
                                     for a, b in zip(initial, default_weights)))

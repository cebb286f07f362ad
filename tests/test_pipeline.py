import collections

import numpy as np
import pytest
import tensorflow as tf

from albert_keras.data import CorruptRecordError, pretraining_dataset, verify_tfrecords
from albert_keras.data.records import serialize_instance
from albert_keras.special_tokens import MASK_ID
from data_fixtures import instance_arrays

SEQ, MAX_PRED = 64, 10


def _write_files(directory, arrays, labels, num_files, masks=None):
    writers = [tf.io.TFRecordWriter(str(directory / f"part-{k}.tfrecord")) for k in range(num_files)]
    zeros = np.zeros(MAX_PRED, np.int64)
    for row in range(len(labels)):
        positions, ids, weights = masks[row] if masks else (zeros, zeros, zeros.astype(np.float32))
        writers[row % num_files].write(serialize_instance(
            arrays["input_ids"][row], arrays["input_mask"][row], arrays["segment_ids"][row],
            arrays["token_boundary"][row], labels[row], positions, ids, weights))
    for writer in writers:
        writer.close()
    return str(directory / "part-*.tfrecord")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    arrays, labels = instance_arrays(120, SEQ, seed=6)
    directory = tmp_path_factory.mktemp("records")
    return _write_files(directory, arrays, labels, 4), arrays, labels


def _key(features, row):
    """The unmasked sequence of a row: identifies its record."""
    ids = features["input_ids"][row].numpy().copy()
    weights = features["masked_lm_weights"][row].numpy() > 0
    ids[features["masked_lm_positions"][row].numpy()[weights]] = (
        features["masked_lm_ids"][row].numpy()[weights])
    return tuple(ids) + tuple(features["segment_ids"][row].numpy())


def test_training_batches_have_static_shapes(data):
    pattern, arrays, _ = data
    dataset = pretraining_dataset(pattern, 16, SEQ, MAX_PRED, seed=1)
    spec = dataset.element_spec
    assert sorted(spec) == sorted(["input_ids", "segment_ids", "input_mask", "masked_lm_positions",
                                   "masked_lm_ids", "masked_lm_weights", "next_sentence_labels"])
    for name in ("input_ids", "segment_ids", "input_mask"):
        assert spec[name].shape == (16, SEQ) and spec[name].dtype == tf.int32
    assert spec["masked_lm_positions"].shape == (16, MAX_PRED)
    assert spec["masked_lm_weights"].dtype == tf.float32
    assert spec["next_sentence_labels"].shape == (16, 1)
    batch = next(iter(dataset))
    assert (batch["masked_lm_weights"].numpy().sum(axis=1) > 0).all()
    masked = np.take_along_axis(batch["input_ids"].numpy(), batch["masked_lm_positions"].numpy(), 1)
    assert (masked[batch["masked_lm_weights"].numpy() > 0] == MASK_ID).mean() > 0.6


def test_evaluation_reads_every_record_once_in_order(data):
    pattern, arrays, labels = data
    batches = list(pretraining_dataset(pattern, 16, SEQ, MAX_PRED, training=False))
    keys = [_key(b, r) for b in batches for r in range(len(b["input_ids"]))]
    expected = [tuple(arrays["input_ids"][i]) + tuple(arrays["segment_ids"][i])
                for i in range(len(labels))]
    assert sorted(keys) == sorted(expected) and len(keys) == len(expected)
    again = list(pretraining_dataset(pattern, 16, SEQ, MAX_PRED, training=False))
    for a, b in zip(batches, again):
        for name in a:
            np.testing.assert_array_equal(a[name].numpy(), b[name].numpy())


def test_deterministic_with_seed_and_fresh_masks_each_epoch(data):
    pattern, _, labels = data
    n = len(labels)

    def first_batches(seed, count):
        dataset = pretraining_dataset(pattern, n // 2, SEQ, MAX_PRED, seed=seed, shuffle_buffer=4)
        return list(dataset.take(count))

    a, b, c = first_batches(3, 4), first_batches(3, 4), first_batches(4, 1)
    for x, y in zip(a, b):
        for name in x:
            np.testing.assert_array_equal(x[name].numpy(), y[name].numpy())
    assert not np.array_equal(a[0]["input_ids"].numpy(), c[0]["input_ids"].numpy())
    # The same record in two epochs gets different masks.
    masks = collections.defaultdict(list)
    for epoch_batch in a:
        for row in range(n // 2):
            weights = epoch_batch["masked_lm_weights"][row].numpy() > 0
            masks[_key(epoch_batch, row)].append(
                tuple(epoch_batch["masked_lm_positions"][row].numpy()[weights]))
    repeated = [m for m in masks.values() if len(m) >= 2]
    assert repeated and np.mean([m[0] != m[1] for m in repeated]) > 0.5


def test_disjoint_file_shards_per_input_pipeline(data):
    pattern, _, labels = data
    seen = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline,
                                             num_replicas_in_sync=2)
        dataset = pretraining_dataset(pattern, 8, SEQ, MAX_PRED, input_context=context,
                                      training=False)
        assert dataset.element_spec["input_ids"].shape[0] in (None, 4)
        keys = {_key(b, r) for b in dataset for r in range(len(b["input_ids"]))}
        assert max(len(b["input_ids"]) for b in dataset) == 4  # per-replica batch
        seen.append(keys)
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == len(labels)
    context = tf.distribute.InputContext(num_input_pipelines=5, input_pipeline_id=0)
    with pytest.raises(ValueError, match="4 files cannot be split by file over 5"):
        pretraining_dataset(pattern, 8, SEQ, MAX_PRED, input_context=context)


def test_distribute_datasets_from_function(data):
    pattern = data[0]
    strategy = tf.distribute.get_strategy()
    dataset = strategy.distribute_datasets_from_function(
        lambda context: pretraining_dataset(pattern, 8, SEQ, MAX_PRED, input_context=context, seed=0))
    assert next(iter(dataset))["input_ids"].shape == (8, SEQ)


def test_reference_layout_with_static_masks_is_used_as_is(tmp_path):
    """Records as the reference writes them (features in its order, masks stored)."""
    arrays, labels = instance_arrays(30, SEQ, seed=8)
    rng = np.random.default_rng(0)
    masks, expected_ids = [], arrays["input_ids"].copy()
    for row in range(len(labels)):
        n = int(arrays["input_mask"][row].sum())
        positions = np.sort(rng.choice(np.arange(1, n - 1), size=3, replace=False))
        positions = np.concatenate([positions, np.zeros(MAX_PRED - 3, np.int64)])
        ids = np.concatenate([arrays["input_ids"][row, positions[:3]], np.zeros(MAX_PRED - 3, np.int64)])
        weights = np.array([1.0] * 3 + [0.0] * (MAX_PRED - 3), np.float32)
        expected_ids[row, positions[:3]] = MASK_ID
        masks.append((positions, ids, weights))
    writer = tf.io.TFRecordWriter(str(tmp_path / "reference.tfrecord"))
    for row in range(len(labels)):
        # The reference's write_instance_to_example_files: an OrderedDict of features.
        def ints(values):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))
        features = collections.OrderedDict()
        features["input_ids"] = ints(expected_ids[row])
        features["input_mask"] = ints(arrays["input_mask"][row])
        features["segment_ids"] = ints(arrays["segment_ids"][row])
        features["token_boundary"] = ints(arrays["token_boundary"][row])
        features["masked_lm_positions"] = ints(masks[row][0])
        features["masked_lm_ids"] = ints(masks[row][1])
        features["masked_lm_weights"] = tf.train.Feature(
            float_list=tf.train.FloatList(value=list(masks[row][2])))
        features["next_sentence_labels"] = ints([labels[row]])
        example = tf.train.Example(features=tf.train.Features(feature=features))
        writer.write(example.SerializeToString())
    writer.close()
    batch = next(iter(pretraining_dataset(str(tmp_path / "*.tfrecord"), 64, SEQ, MAX_PRED,
                                          training=False)))
    np.testing.assert_array_equal(batch["input_ids"].numpy(), expected_ids)
    np.testing.assert_array_equal(batch["segment_ids"].numpy(), arrays["segment_ids"])
    np.testing.assert_array_equal(batch["masked_lm_positions"].numpy(), [m[0] for m in masks])
    np.testing.assert_array_equal(batch["masked_lm_ids"].numpy(), [m[1] for m in masks])
    np.testing.assert_array_equal(batch["masked_lm_weights"].numpy(), [m[2] for m in masks])
    np.testing.assert_array_equal(batch["next_sentence_labels"].numpy()[:, 0], labels)


def test_bad_inputs(data, tmp_path):
    pattern = data[0]
    with pytest.raises(FileNotFoundError, match="no TFRecord files match"):
        pretraining_dataset(str(tmp_path / "none*"), 8, SEQ, MAX_PRED)
    with pytest.raises(ValueError, match="holds sequences of 64 tokens, but seq_length=128"):
        pretraining_dataset(pattern, 8, 128, MAX_PRED)
    with pytest.raises(ValueError, match="max_predictions must be in"):
        pretraining_dataset(pattern, 8, SEQ, SEQ)
    with pytest.raises(ValueError, match="at least 8"):
        pretraining_dataset(pattern, 8, 4, 2)
    good = tf.io.gfile.glob(pattern)[0]
    raw = bytearray(open(good, "rb").read())
    raw[len(raw) // 2] ^= 0xFF
    corrupt = tmp_path / "corrupt.tfrecord"
    corrupt.write_bytes(bytes(raw))
    with pytest.raises(CorruptRecordError, match=r"corrupt.tfrecord: corrupted record at byte \d+ \(record \d+"):
        verify_tfrecords([good, str(corrupt)])
    (tmp_path / "junk.tfrecord").write_bytes(b"not a tfrecord at all")
    with pytest.raises(CorruptRecordError, match="junk.tfrecord: record 0"):
        pretraining_dataset(str(tmp_path / "junk.tfrecord"), 8, SEQ, MAX_PRED)


def test_vocab_size_draws_random_replacements_from_the_vocabulary(data):
    pattern, arrays, _ = data
    dataset = pretraining_dataset(pattern, 32, SEQ, MAX_PRED, seed=2, vocab_size=1000)
    drawn = []
    for batch in dataset.take(8):
        weights = batch["masked_lm_weights"].numpy() > 0
        assert weights.any(axis=1).all()
        now = np.take_along_axis(batch["input_ids"].numpy(),
                                 batch["masked_lm_positions"].numpy(), 1)[weights]
        original = batch["masked_lm_ids"].numpy()[weights]
        drawn += list(now[(now != MASK_ID) & (now != original)])
    drawn = np.array(drawn)
    assert len(drawn) > 20 and drawn.min() >= 5 and drawn.max() < 1000
    assert not np.isin(drawn, arrays["input_ids"]).all()  # not just the corpus's tokens
    with pytest.raises(ValueError, match="vocab_size must exceed 5"):
        pretraining_dataset(pattern, 8, SEQ, MAX_PRED, vocab_size=5)

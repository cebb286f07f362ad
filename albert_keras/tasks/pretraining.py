"""The pretrained model's serving (the pretraining itself is training.pretrain and
albert_keras/data/): signatures fill_mask (the MLM head's top_k pieces at each [MASK])
and sentence_order (the SOP head's probability that two segments are in their order)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from albert_keras.models.pretrainer import AlbertPretrainer
from albert_keras.tasks.serving_ops import TEXT, trim_padding, valid_utf8
from albert_keras.tasks.task import Task
from albert_keras.tokenizer import pack_segments

MASK_TEXT = "[MASK]"
DEFAULT_TOP_K = 5


class PretrainingTask(Task):
    name = "pretraining"
    finetunable = False  # training.pretrain trains it
    model_classes = (AlbertPretrainer,)
    signature_names = ("fill_mask", "sentence_order")
    serving_default = "embed"
    example_inputs = {
        "fill_mask": {"text": np.array([b"The quick brown [MASK] jumps.", b"No mask."])},
        "sentence_order": {"text_a": np.array([b"The quick brown fox jumps over the lazy dog.",
                                               b"A short one."]),
                           "text_b": np.array([b"It was a sunny day.", b"Another sentence."])},
    }
    export_options = {"top_k": dict(type=int, help=f"fill_mask candidates per mask "
                                                   f"(default {DEFAULT_TOP_K})")}

    def serving_settings(self, model, max_seq_length, top_k=None, **options):
        """The number of fill_mask candidates (at most the vocabulary)."""
        self.check_options(options)
        top_k = DEFAULT_TOP_K if top_k is None else top_k
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        return min(top_k, model.config.vocab_size)

    def signatures(self, module, top_k) -> dict:
        def sentence_order(text_a, text_b):
            features = module.pack(text_a, text_b)
            # The pooler reads row 0 only: the last block computes just that row.
            first_row = tf.zeros_like(features["input_ids"][:, :1])
            backbone = module.model.backbone
            pooled = backbone.pooler(backbone.sequence_output_at(features, first_row))
            logits = tf.cast(module.model.sop_head(pooled, training=False), tf.float32)
            # Class 0 is "segments in their original order".
            return {"original_order_probability": tf.nn.softmax(logits)[:, 0],
                    "sop_logits": logits}

        def fill_mask(text):
            features = pack_with_masks(module, text)
            is_mask = tf.equal(features["input_ids"], module.tokenizer.special.mask)
            positions = tf.ragged.boolean_mask(
                tf.broadcast_to(tf.range(tf.shape(is_mask)[1]), tf.shape(is_mask)), is_mask)
            mask_count = tf.cast(positions.row_lengths(), tf.int32)
            dense_positions = positions.to_tensor(0)  # [batch, max masks]
            logits = mlm_logits(module.model, features, dense_positions,
                                module.tokenizer.special)
            top_probabilities, top_ids = tf.math.top_k(tf.nn.softmax(logits), k=top_k)
            # Slots past a row's mask_count are padding: id 0, piece "", probability 0.
            real = tf.sequence_mask(mask_count, tf.shape(dense_positions)[1])[:, :, None]
            top_ids = tf.where(real, top_ids, 0)
            return {"top_ids": top_ids,
                    "top_pieces": tf.where(real, tf.gather(module.piece_table(), top_ids), ""),
                    "top_probabilities": tf.where(real, top_probabilities, 0.0),
                    "mask_positions": dense_positions,
                    "mask_count": mask_count}

        return {"fill_mask": tf.function(fill_mask, input_signature=[TEXT]),
                "sentence_order": tf.function(sentence_order, input_signature=[TEXT, TEXT])}

    def client_inputs(self, signature, args):
        if signature != "sentence_order" or not args.text:
            return None
        return {"text_a": args.text, **({"text_b": args.text_b} if args.text_b else {})}


def pack_with_masks(module, text):
    """Splits each text on the literal [MASK], tokenizes the parts and joins them with
    the vocabulary's [MASK] id (tokenizers would cut "[MASK]" into ordinary pieces)."""
    special = module.tokenizer.special
    parts = tf.strings.split(valid_utf8(text), sep=MASK_TEXT)  # [batch, (parts)]
    part_tokens = module.tokenizer.tokenize(parts.flat_values)  # [parts, (tokens)]
    # Every part but the last of its row is followed by one [MASK].
    index_in_row = tf.cast(tf.ragged.range(parts.row_lengths()).flat_values, tf.int32)
    row_of_part = tf.cast(parts.value_rowids(), tf.int32)
    parts_in_row = tf.cast(tf.gather(parts.row_lengths(), row_of_part), tf.int32)
    followed_by_mask = tf.cast(index_in_row < parts_in_row - 1, tf.int32)
    masks = tf.RaggedTensor.from_row_lengths(
        tf.fill([tf.reduce_sum(followed_by_mask)], tf.constant(special.mask, tf.int32)),
        followed_by_mask).with_row_splits_dtype(part_tokens.row_splits.dtype)
    joined = tf.concat([tf.cast(part_tokens, tf.int32), masks], axis=1)
    tokens = tf.RaggedTensor.from_row_splits(joined, parts.row_splits).merge_dims(1, 2)
    return trim_padding(pack_segments(tokens, seq_length=module.max_seq_length,
                                      special=special))


def mlm_logits(model, features, positions, special):
    """The pretrainer's mlm_logits [batch, masks, V] for any batch and mask count.

    The MLM head's gather fails on a batch of 0 rows or 0 positions, so the model
    always runs on one extra ([CLS] [SEP]) row and at least one position, and those
    are cut from the result.
    """
    batch, masks = tf.shape(positions)[0], tf.shape(positions)[1]
    width = tf.shape(features["input_ids"])[1]
    extra_row = {
        "input_ids": tf.pad(tf.constant([[special.cls, special.sep]]), [[0, 0], [0, width - 2]]),
        "segment_ids": tf.zeros([1, width], tf.int32),
        "input_mask": tf.pad(tf.ones([1, 2], tf.int32), [[0, 0], [0, width - 2]]),
    }
    padded = {name: tf.concat([value, extra_row[name]], axis=0)
              for name, value in features.items()}
    padded["masked_lm_positions"] = tf.pad(positions, [[0, 1], [0, tf.maximum(1 - masks, 0)]])
    logits = model(padded, training=False)["mlm_logits"]
    return tf.cast(logits[:batch, :masks], tf.float32)


TASKS = (PretrainingTask(),)

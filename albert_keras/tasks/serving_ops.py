"""Graph pieces every task's serving signatures share: input specs, UTF-8 repair,
padding cut to the longest row, and a forward pass over windows of mixed lengths."""

from __future__ import annotations

import tensorflow as tf

TEXT = tf.TensorSpec([None], tf.string)
IDS = tf.TensorSpec([None, None], tf.int32)
WORDS = tf.TensorSpec([None, None], tf.string)


def valid_utf8(text, shape=(None,)):
    """Checks that text has `shape` (a SavedModel signature does not check fed shapes),
    and turns invalid UTF-8 into U+FFFD, so normalisation and SentencePiece never see it."""
    text = tf.ensure_shape(text, shape)
    return tf.strings.unicode_transcode(
        text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)


def trim_padding(features):
    """Cuts [batch, max_seq_length] features to the longest row (at least 2 columns)."""
    lengths = tf.reduce_sum(features["input_mask"], axis=1)
    width = tf.maximum(tf.reduce_max(lengths), 2)  # reduce_max of 0 rows is INT_MIN
    return {name: value[:, :width] for name, value in features.items()}


def group_size_at(lengths, begin, group_size: int, max_padding: float):
    """How many windows, from `begin` in ascending length order, the group starting
    there takes: the most, up to group_size, whose padding to the longest of them stays
    within max_padding of their real tokens (at least 1)."""
    sizes = tf.range(1, group_size + 1)
    count = tf.size(lengths)
    ends = tf.minimum(begin + sizes, count)
    running = tf.concat([[0], tf.cumsum(lengths)], axis=0)
    real = tf.cast(tf.gather(running, ends) - running[begin], tf.float32)
    # The longest of each candidate group (a 0 in place of none, for 0 windows).
    longest = tf.gather(tf.concat([lengths, [0]], axis=0), tf.maximum(ends - 1, 0))
    padded = tf.cast(sizes * longest, tf.float32)
    fits = (begin + sizes <= count) & (padded <= (1.0 + max_padding) * real)
    return tf.reduce_max(tf.where(fits, sizes, 1))


def forward_in_length_groups(model, features, positional: tuple, min_width: int = 2,
                              group_size: int = 2, max_padding: float = 0.05):
    """The model's outputs over windows of mixed lengths, as model(trim_padding(features))
    gives them, computed in groups of similar length: the windows sorted by length, each
    group the next up to group_size windows whose padding to the group's longest is at
    most max_padding of their real tokens, cut to that length (at least min_width
    columns). Outputs named in `positional` have a position axis (axis 1); they come back
    padded with 0 to the batch's width. Padding changes no real position's output (it is
    masked in attention), so this only skips the work on padding: a batch of short and
    long windows otherwise pays for every window at the longest one's length.

    Measured on a 2-core CPU (the QA benchmark's 35 windows of 32 questions): pairs were
    1.04x faster than single windows at 1.8% padding, and groups of 4 and 8 slower than
    pairs (1.12x and 1.23x the time); a pair that would pad more than 5% (such as a
    question's 384-piece window with its 150-piece last one) runs as two."""
    lengths = tf.reduce_sum(features["input_mask"], axis=1)
    width = tf.maximum(tf.reduce_max(lengths), 2)
    order = tf.argsort(lengths, stable=True)
    lengths = tf.gather(lengths, order)
    ordered = {name: tf.gather(value, order) for name, value in features.items()}
    count = tf.size(lengths)

    def run(begin):
        size = group_size_at(lengths, begin, group_size, max_padding)
        part = {name: value[begin:begin + size] for name, value in ordered.items()}
        group_width = tf.minimum(
            tf.maximum(tf.reduce_max(tf.reduce_sum(part["input_mask"], axis=1)), min_width),
            width)
        outputs = model({name: value[:, :group_width] for name, value in part.items()},
                        training=False)
        return size, {name: (tf.pad(value, [[0, 0], [0, width - group_width]])
                             if name in positional else value)
                      for name, value in outputs.items()}

    # The first group (no windows when there are none) also gives the output names and
    # dtypes; the loop runs the rest.
    taken, first = run(0)
    names = sorted(first)
    arrays = [tf.TensorArray(first[name].dtype, size=1, dynamic_size=True, infer_shape=False
                             ).write(0, first[name]) for name in names]

    def body(i, begin, arrays):
        size, outputs = run(begin)
        return (i + 1, begin + size,
                [array.write(i, outputs[name]) for array, name in zip(arrays, names)])

    _, _, arrays = tf.while_loop(lambda i, begin, _: begin < count, body,
                                 [tf.constant(1), tf.minimum(taken, count), arrays])
    restore = tf.math.invert_permutation(order)
    return {name: tf.gather(array.concat(), restore) for name, array in zip(names, arrays)}

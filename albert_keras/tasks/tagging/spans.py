"""Entity spans from word tags, with conlleval's semantics (IOB1, IOB2/BIO, BIOES).

A tag is PREFIX-TYPE ("B-PER") or "O". conlleval decides, between each word and the
previous one (the previous of a sentence's first word is "O"), whether a chunk ends
before the word and whether one starts at it:

- a chunk ends after the previous word when that word is E or S; or B or I followed by
  B, S or O; or when the previous word is not O and its type differs from this one's;
- a chunk starts at a word tagged B or S; or E or I after E, S or O; or when the word is
  not O and its type differs from the previous word's.

So "I-PER I-PER" (IOB1) is one PER entity, "B-PER I-LOC" two entities, and an "I-LOC"
after "O" starts a LOC entity. An entity is correct at evaluation when its type, first
and last word all match a gold entity (conlleval, and seqeval's default mode).

`entity_spans` is the rule in Python (the spec, used by the metrics); `entity_bounds_graph`
is the same rule in TensorFlow ops for the exported `tag` signature; the tests check
them against each other and against seqeval.
"""

from __future__ import annotations

import re

import tensorflow as tf

_ENTITY_TAG = re.compile(r"^[BIES]-.+$")


def is_entity_tag_set(tag_names) -> bool:
    """Whether the tags are an entity scheme (O and PREFIX-TYPE, PREFIX in B I E S)
    with at least one typed tag."""
    typed = [t for t in tag_names if t != "O"]
    return bool(typed) and all(_ENTITY_TAG.match(t) for t in typed)


def split_tag(tag: str) -> tuple:
    """"B-PER" -> ("B", "PER"); "O" -> ("O", "")."""
    if tag == "O":
        return "O", ""
    prefix, _, kind = tag.partition("-")
    return prefix, kind


def _ends(prev_prefix, prev_type, prefix, kind) -> bool:
    return (prev_prefix in ("E", "S")
            or (prev_prefix in ("B", "I") and prefix in ("B", "S", "O"))
            or (prev_prefix != "O" and prev_type != kind))


def _starts(prev_prefix, prev_type, prefix, kind) -> bool:
    return (prefix in ("B", "S")
            or (prefix in ("E", "I") and prev_prefix in ("E", "S", "O"))
            or (prefix != "O" and prev_type != kind))


def entity_spans(tags) -> list:
    """[(type, first word, last word)] of a sentence's tags, in order."""
    spans, start, previous = [], None, ("O", "")
    for index, tag in enumerate(list(tags) + ["O"]):
        current = split_tag(tag)
        if start is not None and _ends(*previous, *current):
            spans.append((previous[1], start, index - 1))
            start = None
        if index < len(tags) and _starts(*previous, *current):
            start = index
        previous = current
    return spans


def entity_bounds_graph(tag_ids: tf.RaggedTensor, tag_names) -> dict:
    """Tag ids [batch, (words)] -> the entities, ragged [batch, (entities)]: "type" (a
    string), "first" and "last" (word indices, int32). `entity_spans` in TensorFlow ops."""
    parts = [split_tag(t) for t in tag_names]
    prefixes = ("O", "B", "I", "E", "S")
    types = sorted({kind for _, kind in parts} | {""})  # "": the type of "O"
    prefix_of = tf.constant([prefixes.index(p) if p in prefixes else 0 for p, _ in parts])
    type_of = tf.constant([types.index(k) for _, k in parts])
    O, B, I, E, S = range(5)  # noqa: E741 (the tag prefixes' own letters)
    outside = types.index("")

    tag_ids = tf.cast(tag_ids, tf.int32)
    lengths = tf.cast(tag_ids.row_lengths(), tf.int32)
    # Dense [batch, words + 2]: an "O" before each sentence and "O" after (padding too).
    prefix = tf.pad(tf.gather(prefix_of, tag_ids).to_tensor(O), [[0, 0], [1, 1]],
                    constant_values=O)
    kind = tf.pad(tf.gather(type_of, tag_ids).to_tensor(outside), [[0, 0], [1, 1]],
                  constant_values=outside)
    width = tf.shape(prefix)[1] - 2
    in_row = tf.sequence_mask(lengths, width)

    def is_in(values, members):
        return tf.reduce_any(tf.stack([tf.equal(values, m) for m in members]), axis=0)

    def ends(pp, pk, p, k):
        return (is_in(pp, (E, S)) | (is_in(pp, (B, I)) & is_in(p, (B, S, O)))
                | ((pp != O) & (pk != k)))

    def starts(pp, pk, p, k):
        return (is_in(p, (B, S)) | (is_in(p, (E, I)) & is_in(pp, (E, S, O)))
                | ((p != O) & (pk != k)))

    prev_p, prev_k = prefix[:, :-2], kind[:, :-2]
    cur_p, cur_k = prefix[:, 1:-1], kind[:, 1:-1]
    next_p, next_k = prefix[:, 2:], kind[:, 2:]
    start = starts(prev_p, prev_k, cur_p, cur_k) & in_row
    end = ends(cur_p, cur_k, next_p, next_k) & in_row
    # Every chunk that starts ends once, in order: the n-th start pairs with the n-th end.
    position = tf.broadcast_to(tf.range(width), tf.shape(start))
    first = tf.ragged.boolean_mask(position, start)
    last = tf.ragged.boolean_mask(position, end)
    type_names = tf.constant(types)
    entity_type = tf.gather(type_names, tf.ragged.boolean_mask(cur_k, start))
    return {"type": entity_type, "first": first, "last": last}

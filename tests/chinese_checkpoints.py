"""Stand-ins for the three public Chinese ALBERT families, small and random but in the
published layouts, each beside its WordPiece vocabulary as it ships:
- google_zh: google-research/albert's albert_*_zh tarball (TF1 checkpoint in the
  reference layout, albert_config.json, vocab_chinese.txt);
- transformers_zh: a transformers AlbertForMaskedLM directory with a BERT vocab.txt and
  tokenizer_config.json (BertTokenizer);
- brightmart: brightmart/albert_zh (TF1 checkpoint with word_embeddings_2 and
  encoder/layer_shared, its albert_config.json keys, vocab.txt);
and brightmart_reference, a TF1 graph of brightmart's published equations
(modeling.py, run_pretraining.py) that restores the checkpoint by its variable names.
"""

import json
import os
import shutil

import numpy as np
import tensorflow as tf

from test_convert_tf1 import reference_arrays, write_checkpoint, write_reference_config

SIZES = dict(embedding_size=16, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
             intermediate_size=37, max_position_embeddings=64, type_vocab_size=2)


def google_zh(directory, vocab_path, vocab_size):
    c = dict(SIZES, vocab_size=vocab_size, num_hidden_groups=1, inner_group_num=1)
    prefix = write_checkpoint(directory, reference_arrays(c, seed=11).reference)
    write_reference_config(directory, c)
    shutil.copyfile(vocab_path, os.path.join(directory, "vocab_chinese.txt"))
    return prefix, str(directory / "albert_config.json")


def transformers_zh(directory, vocab_path, vocab_size):
    import torch
    import transformers

    config = transformers.AlbertConfig(vocab_size=vocab_size, hidden_act="gelu_new",
                                       hidden_dropout_prob=0.0,
                                       attention_probs_dropout_prob=0.0, **SIZES)
    torch.manual_seed(5)
    model = transformers.AlbertForMaskedLM(config).eval()
    model.save_pretrained(directory)
    shutil.copyfile(vocab_path, os.path.join(directory, "vocab.txt"))
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "BertTokenizer", "do_lower_case": True}))
    return str(directory)


def brightmart_arrays(vocab_size, seed=7):
    """Random arrays under brightmart/albert_zh's variable names."""
    rng = np.random.default_rng(seed)
    E, H, I = SIZES["embedding_size"], SIZES["hidden_size"], SIZES["intermediate_size"]
    shapes = {
        "bert/embeddings/word_embeddings": (vocab_size, E),
        "bert/embeddings/word_embeddings_2": (E, H),
        "bert/embeddings/token_type_embeddings": (2, H),
        "bert/embeddings/position_embeddings": (SIZES["max_position_embeddings"], H),
        "bert/pooler/dense/kernel": (H, H), "bert/pooler/dense/bias": (H,),
        "cls/predictions/transform/dense/kernel": (H, H),
        "cls/predictions/transform/dense/bias": (H,),
        "cls/predictions/output_bias": (vocab_size,),
        "cls/seq_relationship/output_weights": (2, H),
        "cls/seq_relationship/output_bias": (2,),
    }
    block = "bert/encoder/layer_shared"
    for name, (fan_in, fan_out) in {"attention/self/query": (H, H), "attention/self/key": (H, H),
                                    "attention/self/value": (H, H),
                                    "attention/output/dense": (H, H),
                                    "intermediate/dense": (H, I), "output/dense": (I, H)}.items():
        shapes[f"{block}/{name}/kernel"] = (fan_in, fan_out)
        shapes[f"{block}/{name}/bias"] = (fan_out,)
    for norm in ("bert/embeddings/LayerNorm", f"{block}/attention/output/LayerNorm",
                 f"{block}/output/LayerNorm", "cls/predictions/transform/LayerNorm"):
        shapes[f"{norm}/gamma"] = shapes[f"{norm}/beta"] = (H,)
    arrays = {name: (0.5 * rng.standard_normal(shape)).astype("float32")
              for name, shape in shapes.items()}
    for name in arrays:
        if name.endswith("/gamma"):
            arrays[name] += 1.0
    return arrays


def brightmart(directory, vocab_path, vocab_size, hidden_act="relu"):
    """hidden_act: as its configs write it ("relu" in some, "gelu", the tanh form, in
    others); the converted model computes what the config says."""
    prefix = write_checkpoint(directory, brightmart_arrays(vocab_size))
    (directory / "albert_config.json").write_text(json.dumps(dict(
        SIZES, vocab_size=vocab_size, hidden_act=hidden_act, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, initializer_range=0.02, directionality="bidi",
        pooler_fc_size=768, pooler_num_attention_heads=12, pooler_num_fc_layers=3,
        pooler_size_per_head=128, pooler_type="first_token_transform", ln_type="postln")))
    shutil.copyfile(vocab_path, os.path.join(directory, "vocab.txt"))
    return prefix, str(directory / "albert_config.json")


def brightmart_reference(prefix, features, hidden_act="relu"):
    """brightmart's equations in a TF1 graph that restores the checkpoint by name:
    sequence_output, pooled_output, mlm_logits (at masked_lm_positions), sop_logits."""
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    L, heads = SIZES["num_hidden_layers"], SIZES["num_attention_heads"]
    graph = tf.Graph()
    with graph.as_default():
        v1 = tf.compat.v1
        ids = v1.placeholder(tf.int32, [None, None])
        segments = v1.placeholder(tf.int32, [None, None])
        mask = v1.placeholder(tf.int32, [None, None])
        positions = v1.placeholder(tf.int32, [None, None])
        variables = {}

        def var(name):
            if name not in variables:
                variables[name] = v1.get_variable(name, shape=shapes[name], dtype=tf.float32)
            return variables[name]

        def dense(x, scope):
            return tf.matmul(x, var(f"{scope}/kernel")) + var(f"{scope}/bias")

        def layer_norm(x, scope):  # tf.contrib.layers.layer_norm over the last axis
            mean, variance = tf.nn.moments(x, [-1], keepdims=True)
            return ((x - mean) * tf.math.rsqrt(variance + 1e-12) * var(f"{scope}/gamma")
                    + var(f"{scope}/beta"))

        def activation(x):  # modeling.get_activation: relu, or BERT's tanh-form gelu
            if hidden_act == "relu":
                return tf.nn.relu(x)
            return 0.5 * x * (1.0 + tf.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))

        batch, length = tf.shape(ids)[0], tf.shape(ids)[1]
        H = shapes["bert/embeddings/word_embeddings_2"][1]
        # embedding_lookup_factorized, then embedding_postprocessor
        x = tf.matmul(tf.gather(var("bert/embeddings/word_embeddings"), ids),
                      var("bert/embeddings/word_embeddings_2"))
        x += tf.gather(var("bert/embeddings/token_type_embeddings"), segments)
        x += var("bert/embeddings/position_embeddings")[None, :length]
        x = layer_norm(x, "bert/embeddings/LayerNorm")
        adder = (1.0 - tf.cast(mask[:, None, None, :], tf.float32)) * -10000.0
        size = H // heads
        block = "bert/encoder/layer_shared"

        def split(t):
            return tf.transpose(tf.reshape(t, [batch, length, heads, size]), [0, 2, 1, 3])

        for _ in range(L):  # one set of variables for every layer
            q = split(dense(x, f"{block}/attention/self/query"))
            k = split(dense(x, f"{block}/attention/self/key"))
            v = split(dense(x, f"{block}/attention/self/value"))
            probs = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / np.sqrt(size) + adder)
            context = tf.reshape(tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3]),
                                 [batch, length, H])
            attention = layer_norm(dense(context, f"{block}/attention/output/dense") + x,
                                   f"{block}/attention/output/LayerNorm")
            inner = activation(dense(attention, f"{block}/intermediate/dense"))
            x = layer_norm(dense(inner, f"{block}/output/dense") + attention,
                           f"{block}/output/LayerNorm")
        pooled = tf.tanh(dense(x[:, 0], "bert/pooler/dense"))
        gathered = tf.gather(x, positions, batch_dims=1)
        transformed = layer_norm(activation(dense(gathered, "cls/predictions/transform/dense")),
                                 "cls/predictions/transform/LayerNorm")
        projected = tf.matmul(transformed, var("bert/embeddings/word_embeddings_2"),
                              transpose_b=True)
        mlm = (tf.matmul(projected, var("bert/embeddings/word_embeddings"), transpose_b=True)
               + var("cls/predictions/output_bias"))
        sop = (tf.matmul(pooled, var("cls/seq_relationship/output_weights"), transpose_b=True)
               + var("cls/seq_relationship/output_bias"))
        saver = v1.train.Saver(variables)
        with v1.Session(graph=graph) as session:
            saver.restore(session, prefix)
            outputs = session.run(
                {"sequence_output": x, "pooled_output": pooled, "mlm_logits": mlm,
                 "sop_logits": sop},
                {ids: features["input_ids"], segments: features["segment_ids"],
                 mask: features["input_mask"], positions: features["masked_lm_positions"]})
    return outputs

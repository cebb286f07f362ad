"""ALBERT's cross-layer shared encoder: blocks applied with the reference's groups and
inner groups, the schedule of which block runs at which layer, and rematerialization.

The layers, one file each, read in this order: attention.py (`multi_head_attention`,
the spec, and SelfAttention, the fast path tested against it), feed_forward.py,
sublayer.py (what the two sub-layers share), block.py (TransformerBlock chains them),
shared_gradients.py (a shared kernel cast once, its per-layer gradients summed), and
this file.

The paper's Table 4 ablations (share only attention, or only the FFN) are expressed by
reusing sub-layer objects, so count_params() and the checkpoint hold each shared
weight once. The fast path differs from the spec only in how it computes:
- 2-D matmuls on [tokens, H], and with the fused kernels each shared kernel cast to
  the compute dtype once per call for all the layers that use it (SharedEncoder);
- the element-wise work between the GEMMs by fused_ops, in the form the model's
  `fusion` names (config.FUSIONS): plain TensorFlow ops or fused XLA kernels;
- optionally (output_positions) the last block computes only the rows a model's heads
  read: keys and values still span every token, but queries, the residual and the FFN
  only those rows ([CLS] and the masked positions in pretraining, 21 of 128).
"""

import keras
import tensorflow as tf

from albert_keras.config import (check_fusion, check_remat, check_structure, group_of_layer,
                                 shares_attention, shares_feed_forward)
from albert_keras.layers.attention import SelfAttention
from albert_keras.layers.block import TransformerBlock
from albert_keras.layers.feed_forward import FeedForward
from albert_keras.layers.shared_gradients import cast_in_chain_for_uses, cast_once_for_uses
from albert_keras.layers.sublayer import output_shape


@keras.saving.register_keras_serializable(package="albert_keras")
class SharedEncoder(keras.layers.Layer):
    """num_layers post-LN blocks with ALBERT's cross-layer sharing.

    Layer i (of L) belongs to group floor(i * G / L) (config.group_of_layer); each
    group holds inner_group_num blocks run one after another. sharing decides which
    sub-layers a group owns:
      "all"        attention and FFN owned by the group (reference ALBERT)
      "attention"  attention owned by the group, FFN owned by each layer
      "ffn"        FFN owned by the group, attention owned by each layer
      "none"       both owned by each layer (BERT-style)
    attention_layers[j] / feed_forward_layers[j] list the owned sub-layers; owner index
    j is group * inner_group_num + k for group-owned, layer * inner_group_num + k for
    layer-owned ones (see attention_index / feed_forward_index).

    remat (config.REMAT_MODES): "block" keeps only each block's input for the backward
    pass of a training call and recomputes the rest there (tf.recompute_grad), and sums
    a shared kernel's per-layer gradients as they come (cast_in_chain_for_uses).
    """

    def __init__(self, num_layers, hidden_size, num_attention_heads, intermediate_size,
                 num_groups=1, inner_group_num=1, sharing="all", activation="gelu_tanh",
                 hidden_dropout=0.0, attention_dropout=0.0, layer_norm_eps=1e-12,
                 initializer_range=0.02, fusion="plain", remat="none", **kwargs):
        super().__init__(**kwargs)
        check_structure(hidden_size, num_attention_heads, num_layers, num_groups, sharing,
                        where="SharedEncoder")
        self.remat = check_remat(remat, "SharedEncoder remat")
        # A recomputed block must draw the dropout masks of its first pass: the seeds
        # are drawn outside it, from this generator (not a weight; see sublayer.apply_dropout).
        self._remat_seeds = (keras.random.SeedGenerator(name="remat_dropout_seeds")
                             if remat != "none" and (hidden_dropout or attention_dropout)
                             else None)
        self.num_layers = num_layers
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.num_groups = num_groups
        self.inner_group_num = inner_group_num
        self.sharing = sharing
        self.activation = activation
        self.hidden_dropout_rate = hidden_dropout
        self.attention_dropout_rate = attention_dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.fusion = check_fusion(fusion, "SharedEncoder fusion")
        policy = self.dtype_policy

        def owners(shared):
            return (num_groups if shared else num_layers) * inner_group_num

        self.attention_layers = [
            SelfAttention(hidden_size, num_attention_heads, attention_dropout=attention_dropout,
                          hidden_dropout=hidden_dropout, layer_norm_eps=layer_norm_eps,
                          initializer_range=initializer_range, fusion=fusion, dtype=policy,
                          name=f"attention_{j}")
            for j in range(owners(shares_attention(sharing)))]
        self.feed_forward_layers = [
            FeedForward(hidden_size, intermediate_size, activation=activation,
                        hidden_dropout=hidden_dropout, layer_norm_eps=layer_norm_eps,
                        initializer_range=initializer_range, fusion=fusion, dtype=policy,
                        name=f"feed_forward_{j}")
            for j in range(owners(shares_feed_forward(sharing)))]
        # One block object per distinct (attention, FFN) pair, in first-use order.
        self.blocks = []
        self._schedule = []  # block index of every step (layer, inner)
        self._pairs = []  # (attention owner, FFN owner) of every step
        pair_to_block = {}
        for layer_index in range(num_layers):
            for inner in range(inner_group_num):
                pair = (self.attention_index(layer_index, inner),
                        self.feed_forward_index(layer_index, inner))
                if pair not in pair_to_block:
                    pair_to_block[pair] = len(self.blocks)
                    self.blocks.append(TransformerBlock(
                        hidden_size, num_attention_heads, intermediate_size,
                        activation=activation, hidden_dropout=hidden_dropout,
                        attention_dropout=attention_dropout, layer_norm_eps=layer_norm_eps,
                        initializer_range=initializer_range, fusion=fusion,
                        attention=self.attention_layers[pair[0]],
                        feed_forward=self.feed_forward_layers[pair[1]], dtype=policy,
                        name=f"block_{len(self.blocks)}"))
                self._schedule.append(pair_to_block[pair])
                self._pairs.append(pair)

    def _owner(self, shared, layer_index, inner):
        group = group_of_layer(layer_index, self.num_layers, self.num_groups)
        return (group if shared else layer_index) * self.inner_group_num + inner

    def group_sublayers(self, group, inner=0):
        """(attention, feed-forward) of group `group`'s inner block `inner`: the unit the
        reference checkpoints, transformers and keras-hub store (sharing "all")."""
        if self.sharing != "all":
            raise ValueError(f"group_sublayers needs sharing 'all', not {self.sharing!r}")
        owner = group * self.inner_group_num + inner
        return self.attention_layers[owner], self.feed_forward_layers[owner]

    def attention_index(self, layer_index, inner=0):
        return self._owner(shares_attention(self.sharing), layer_index, inner)

    def feed_forward_index(self, layer_index, inner=0):
        return self._owner(shares_feed_forward(self.sharing), layer_index, inner)

    def build(self, x_shape, input_mask_shape=None):
        for layer in self.attention_layers + self.feed_forward_layers + self.blocks:
            layer.build(x_shape)
        self.built = True

    def call(self, x, input_mask, training=None, return_all_layers=False,
             output_positions=None):
        """x: [batch, seq, H]; input_mask: [batch, seq] of 1 (token) / 0 (padding).

        Returns the last layer's output, or with return_all_layers a list of L + 1
        tensors: the input followed by every layer's output.

        output_positions: optional int [batch, P]. The output is then the last layer's
        output at those positions only, [batch, P, H], and the last block computes just
        those rows (about 70% of its work is never read by the pretraining heads).
        """
        if return_all_layers and output_positions is not None:
            raise ValueError("SharedEncoder: return_all_layers and output_positions "
                             "cannot be used together")
        chained = bool(training) and self.remat == "block"
        attention_kernels = self._kernels_per_use(
            self.attention_layers, [a for a, _ in self._pairs], chained)
        feed_forward_kernels = self._kernels_per_use(
            self.feed_forward_layers, [f for _, f in self._pairs], chained)
        hidden_states = [x]
        step = 0
        for _ in range(self.num_layers):
            for _ in range(self.inner_group_num):
                attention, feed_forward = self._pairs[step]
                cast_kernels = (next(attention_kernels[attention]),
                                next(feed_forward_kernels[feed_forward]))
                last = step == len(self._schedule) - 1
                block = self.blocks[self._schedule[step]]
                positions = output_positions if last else None
                if training and self.remat == "block":
                    # The last block's backward pass comes first, while its activations
                    # would be alive anyway: recomputing it would only cost time.
                    x = self._block_for_remat(block, x, input_mask, cast_kernels, positions,
                                              recompute=not last)
                else:
                    x = block(x, input_mask, training=training, cast_kernels=cast_kernels,
                              query_positions=positions)
                step += 1
            hidden_states.append(x)
        return hidden_states if return_all_layers else x

    def _block_for_remat(self, block, x, input_mask, cast_kernels, query_positions,
                         recompute):
        """block(x) in training under remat "block". With recompute, only x (and the
        kernels) is kept for the backward pass, which runs the block again to get its
        intermediates. Dropout masks come from a seed drawn here, outside the block."""
        seed = self._remat_seeds.next() if self._remat_seeds is not None else None
        flat_kernels = tf.nest.flatten(cast_kernels)

        def forward(x, *weights):
            return block(x, input_mask, training=True, query_positions=query_positions,
                         cast_kernels=tf.nest.pack_sequence_as(cast_kernels, list(weights)),
                         dropout_seed=seed)

        if recompute:
            forward = tf.recompute_grad(forward)
        return forward(x, *flat_kernels)

    def _kernels_per_use(self, owners, owner_of_step, chained):
        """For each owner sub-layer, an iterator over its uses of {name: kernel}, every
        shared kernel cast to the compute dtype once (cast_once_for_uses; chained:
        cast_in_chain_for_uses)."""
        per_owner = []
        for index, layer in enumerate(owners):
            uses = owner_of_step.count(index)
            if chained:  # memory first: a running sum of the gradients
                copies = {name: cast_in_chain_for_uses(kernel, self.compute_dtype, uses,
                                                       self.fusion)
                          for name, kernel in layer.projection_kernels().items()}
            else:
                copies = {name: cast_once_for_uses(kernel, self.compute_dtype, uses, self.fusion)
                          for name, kernel in layer.projection_kernels().items()}
            per_owner.append(iter([{name: copies[name][use] for name in layer.PROJECTIONS}
                                   for use in range(uses)]))
        return per_owner

    def compute_output_spec(self, x, input_mask, training=None, return_all_layers=False,
                            output_positions=None):
        if return_all_layers:
            return [keras.KerasTensor(x.shape, dtype=self.compute_dtype)
                    for _ in range(self.num_layers + 1)]
        return keras.KerasTensor(output_shape(x.shape, output_positions),
                                 dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_layers=self.num_layers, hidden_size=self.hidden_size,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size, num_groups=self.num_groups,
            inner_group_num=self.inner_group_num, sharing=self.sharing,
            activation=self.activation, hidden_dropout=self.hidden_dropout_rate,
            attention_dropout=self.attention_dropout_rate, layer_norm_eps=self.layer_norm_eps,
            initializer_range=self.initializer_range, fusion=self.fusion,
            remat=self.remat)
        return config

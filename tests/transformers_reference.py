"""Our pretrainer's outputs against a transformers AlbertForPreTraining on the same
features: the one comparison the conversion tests share."""

import numpy as np
import torch


def reference_outputs(reference, features):
    """transformers' sequence, pooled, MLM (gathered at masked_lm_positions, as ours)
    and SOP outputs, as numpy."""
    with torch.no_grad():
        expected = reference(
            input_ids=torch.tensor(features["input_ids"], dtype=torch.long),
            token_type_ids=torch.tensor(features["segment_ids"], dtype=torch.long),
            attention_mask=torch.tensor(features["input_mask"], dtype=torch.long),
            output_hidden_states=True)
        sequence = expected.hidden_states[-1]
        pooled = reference.albert.pooler_activation(reference.albert.pooler(sequence[:, 0]))
    mlm = np.take_along_axis(expected.prediction_logits.numpy(),
                             features["masked_lm_positions"][..., None], axis=1)
    return {"sequence_output": sequence.numpy(), "pooled_output": pooled.numpy(),
            "mlm_logits": mlm, "sop_logits": expected.sop_logits.numpy()}


def our_outputs(pretrainer, features):
    ours = pretrainer.predict_on_batch(features)
    backbone = pretrainer.backbone.predict_on_batch(
        {k: features[k] for k in ("input_ids", "segment_ids", "input_mask")})
    return {"sequence_output": backbone["sequence_output"],
            "pooled_output": backbone["pooled_output"],
            "mlm_logits": ours["mlm_logits"], "sop_logits": ours["sop_logits"]}


def output_differences(pretrainer, reference, features):
    """Max absolute difference per output name; also returns our outputs."""
    ours = our_outputs(pretrainer, features)
    expected = reference_outputs(reference, features)
    return {name: float(np.max(np.abs(np.asarray(ours[name]) - expected[name])))
            for name in expected}, ours

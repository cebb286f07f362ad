"""A model's fusion (config.FUSIONS) is fixed when it is built; this makes a copy
that computes another way, with the same weights (the exporter's --fusion)."""

import dataclasses

from albert_keras.config import check_fusion
from albert_keras.models.backbone import AlbertBackbone


def head_dtype_policy(model, backbone):
    """The dtype policy a task model's head was built with: that of its first layer
    with weights of its own (not the backbone's), whatever the task."""
    backbone_weights = {id(weight) for weight in backbone.weights}
    for layer in model.layers:
        if layer.weights and not any(id(w) in backbone_weights for w in layer.weights):
            return layer.dtype_policy
    raise ValueError(f"{type(model).__name__} has no layer with weights of its own")


def with_fusion(model, fusion: str):
    """`model` (the backbone or any task model) built anew with
    config.fusion = fusion and given its weights; `model` itself when it already
    computes that way."""
    check_fusion(fusion, "fusion")
    if model.config.fusion == fusion:
        return model
    config = dataclasses.replace(model.config, fusion=fusion)
    backbone = model if isinstance(model, AlbertBackbone) else model.backbone
    # The dtype policies the model was built with, whatever the global one is now.
    new_backbone = AlbertBackbone(config, output_hidden_states=backbone.output_hidden_states,
                                  name=backbone.name, dtype=backbone.encoder.dtype_policy)
    new_backbone.trainable = backbone.trainable
    if model is backbone:
        copy = new_backbone
    else:
        settings = model.get_config()
        settings.update(backbone=new_backbone, dtype=head_dtype_policy(model, backbone))
        copy = type(model).from_config(settings)
    copy.set_weights(model.get_weights())
    return copy

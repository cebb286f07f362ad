"""A model's kernel choice (config.KERNELS) is fixed when it is built; this makes a copy
that computes another way, with the same weights (the exporter's --kernels)."""

import dataclasses

from albert_keras.config import check_kernels
from albert_keras.models.backbone import AlbertBackbone


# The head whose dtype policy a task model was built with, by model: pretrainer,
# classifier and tagger, question answerer, reference SQuAD 2.0 answerer.
_HEADS = ("mlm_head", "classifier", "qa_outputs", "head")


def with_kernels(model, kernels: str):
    """`model` (the backbone or any task model) built anew with
    config.kernels = kernels and given its weights; `model` itself when it already
    computes that way."""
    check_kernels(kernels, "kernels")
    if model.config.kernels == kernels:
        return model
    config = dataclasses.replace(model.config, kernels=kernels)
    backbone = model if isinstance(model, AlbertBackbone) else model.backbone
    # The dtype policies the model was built with, whatever the global one is now.
    new_backbone = AlbertBackbone(config, output_hidden_states=backbone.output_hidden_states,
                                  name=backbone.name, dtype=backbone.encoder.dtype_policy)
    new_backbone.trainable = backbone.trainable
    if model is backbone:
        copy = new_backbone
    else:
        settings = model.get_config()
        head = next(getattr(model, name) for name in _HEADS if hasattr(model, name))
        settings.update(backbone=new_backbone, dtype=head.dtype_policy)
        copy = type(model).from_config(settings)
    copy.set_weights(model.get_weights())
    return copy

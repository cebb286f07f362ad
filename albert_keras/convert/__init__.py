"""Weights in: transformers directories, reference TF1 checkpoints, keras-hub backbones.

    from albert_keras import convert
    pretrainer = convert.from_transformers("path/to/save_pretrained_dir")
    pretrainer = convert.from_tf1_checkpoint("model.ckpt-125000", "albert_config.json")
    answerer = convert.squad2_answerer_from_tf1_checkpoint("model.ckpt-8000", "albert_config.json")
    backbone = convert.from_keras_hub(keras_hub_albert_backbone)

A file that does not fit raises ConversionError (a ValueError) naming the variable.
The command line is `python -m albert_keras.convert --help`.
"""

from albert_keras.convert.keras_hub import from_keras_hub
from albert_keras.convert.tf1_checkpoint import (from_tf1_checkpoint,
                                                 squad2_answerer_from_tf1_checkpoint)
from albert_keras.convert.transformers import from_transformers
from albert_keras.convert.weights import ConversionError

__all__ = ["ConversionError", "from_keras_hub", "from_tf1_checkpoint", "from_transformers",
           "squad2_answerer_from_tf1_checkpoint"]

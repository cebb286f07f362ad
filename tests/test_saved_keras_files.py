""".keras files written by an earlier version of the code (tests/saved_keras/, made by
tests/saved_keras_models.py) load with the current code, compute the outputs they
computed when written, and keep the settings they carry."""

import os

import keras
import numpy as np
import pytest

import albert_keras  # noqa: F401  (registers the model classes)
from albert_keras.tasks.question_answering.settings import AnsweringSettings
from albert_keras.tasks.tagging.settings import TaggingSettings
from saved_keras_models import (ANSWER_SETTINGS, DIRECTORY, KINDS, LABEL_NAMES, TAG_NAMES,
                                outputs)


@pytest.mark.parametrize("kind", KINDS)
def test_a_saved_file_loads_with_its_outputs_and_settings(kind):
    model = keras.saving.load_model(os.path.join(DIRECTORY, f"{kind}.keras"), compile=False)
    expected = dict(np.load(os.path.join(DIRECTORY, f"{kind}.outputs.npz")))
    found = outputs(model)
    assert sorted(found) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(found[name], value, atol=1e-5, rtol=0, err_msg=name)
    if kind == "classifier":
        assert model.label_names == LABEL_NAMES and model.num_labels == 3
    if kind == "tagger":
        assert model.tag_names == TAG_NAMES
        assert model.settings == TaggingSettings(window_length=24, window_stride=8)
    if kind in ("question_answerer", "squad2_answerer"):
        assert model.settings == AnsweringSettings.from_config(ANSWER_SETTINGS)
        assert model.settings.answers.null_threshold == 0.25

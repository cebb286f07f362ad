"""The three public Chinese ALBERT families (stand-ins in their published layouts,
tests/chinese_checkpoints.py): each converts with the README's command to a model that
carries its WordPiece vocabulary, computes what its reference computes, fine-tunes on
Chinese text and exports a `classify` signature that answers raw Chinese in a process
that imports only tensorflow and tensorflow_text."""

import json
import os

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import chinese_checkpoints as standins  # noqa: E402
from albert_keras.convert.__main__ import main as convert  # noqa: E402
from albert_keras.models.model_vocabulary import carried_vocabulary  # noqa: E402
from albert_keras.vocabulary import read_vocabulary  # noqa: E402
from albert_keras.wordpiece import WordPieceTokenizer  # noqa: E402
from data_fixtures import sib200_sentences, wordpiece_vocab_file  # noqa: E402
from fresh_process import call_reloaded  # noqa: E402
from serving import export as export_lib  # noqa: E402
from test_convert_tf1 import compare, features_for, transformers_model  # noqa: E402
from test_convert_tf1 import reference_arrays  # noqa: E402
from training import finetune  # noqa: E402

# The module-scoped fixtures are built once, on one worker.
pytestmark = pytest.mark.xdist_group("chinese_checkpoints")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ATOL = 1e-4
FAMILIES = ("google_zh", "transformers_zh", "brightmart")


@pytest.fixture(scope="module")
def vocabulary():
    return read_vocabulary(wordpiece_vocab_file())


@pytest.fixture(scope="module")
def converted(tmp_path_factory, vocabulary):
    """family -> (the .keras file convert wrote, what it was converted from)."""
    vocab = wordpiece_vocab_file()
    models = {}
    for family in FAMILIES:
        directory = tmp_path_factory.mktemp(family)
        if family == "transformers_zh":
            source = standins.transformers_zh(directory, vocab, vocabulary.size)
            argv = ["--from", "transformers", source]
        else:
            build = standins.google_zh if family == "google_zh" else standins.brightmart
            source = build(directory, vocab, vocabulary.size)
            argv = ["--from", "tf1", source[0], "--config", source[1]]
        output = str(directory / "converted.keras")
        assert convert(argv + ["--output", output]) == 0
        models[family] = (output, source)
    return models


@pytest.mark.parametrize("family", FAMILIES)
def test_converted_model_carries_its_vocabulary(converted, vocabulary, family):
    model = keras.saving.load_model(converted[family][0], compile=False)
    carried = carried_vocabulary(model)
    assert carried.vocabulary.kind == "wordpiece" and carried.lower_case
    assert carried.vocabulary.file_bytes == vocabulary.file_bytes
    assert carried.vocabulary.special.cls == 101


def test_google_zh_equals_transformers(converted, vocabulary):
    model = keras.saving.load_model(converted["google_zh"][0], compile=False)
    c = dict(standins.SIZES, vocab_size=vocabulary.size, num_hidden_groups=1,
             inner_group_num=1)
    compare(model, transformers_model(c, reference_arrays(c, seed=11)), features_for(model))


def test_transformers_zh_equals_transformers(converted):
    from transformers_reference import our_outputs

    model = keras.saving.load_model(converted["transformers_zh"][0], compile=False)
    reference = transformers.AlbertForMaskedLM.from_pretrained(
        converted["transformers_zh"][1], attn_implementation="eager").eval()
    features = features_for(model)
    ours = our_outputs(model, features)
    with torch.no_grad():
        out = reference(input_ids=torch.tensor(features["input_ids"], dtype=torch.long),
                        token_type_ids=torch.tensor(features["segment_ids"], dtype=torch.long),
                        attention_mask=torch.tensor(features["input_mask"], dtype=torch.long),
                        output_hidden_states=True)
    mlm = np.take_along_axis(out.logits.numpy(), features["masked_lm_positions"][..., None], 1)
    assert np.abs(ours["sequence_output"] - out.hidden_states[-1].numpy()).max() <= ATOL
    assert np.abs(ours["mlm_logits"] - mlm).max() <= ATOL


def test_brightmart_equals_its_tf1_equations(converted):
    model = keras.saving.load_model(converted["brightmart"][0], compile=False)
    assert model.config.embedding_projection == "words_first"
    assert model.config.num_hidden_groups == 1 and model.config.hidden_act == "relu"
    features = features_for(model)
    from transformers_reference import our_outputs

    ours = our_outputs(model, features)
    expected = standins.brightmart_reference(converted["brightmart"][1][0], features)
    for name, value in expected.items():
        difference = np.abs(np.asarray(ours[name]) - value).max()
        assert difference <= ATOL, f"{name} differs by {difference}"


def test_each_family_fine_tunes_and_serves_raw_chinese(converted, vocabulary, tmp_path):
    """The README's commands: finetune (no vocabulary flag), serving.export (none
    either), then `classify` on raw Chinese, NUL included, in a fresh process."""
    config = os.path.join(ROOT, "training", "configs", "finetune_sib200_zh.json")
    texts = sib200_sentences("zho_Hans", "dev")[:6] + ["\x00北京的天气很好\x00", "",
                                                       "emma在London踢足球。"]
    exports = {}
    for family in FAMILIES:
        run = tmp_path / family
        assert finetune.main([
            "--config", config, "--init_model", converted[family][0],
            "--output_dir", str(run), "--total_steps", "3", "--steps_per_epoch", "3",
            "--eval_steps", "1", "--seq_length", "64", "--global_batch_size", "4",
            "--warmup_steps", "1"]) == 0
        assert json.loads((run / "eval_results.json").read_text())["num_examples"] == 99
        assert (run / "vocab.txt").read_bytes() == vocabulary.file_bytes
        base = tmp_path / "saved_models" / family
        assert export_lib.main(["--model", str(run), "--export_base", str(base),
                                "--max_seq_length", "64"]) == 0
        exports[family] = (str(base / "1"), keras.saving.load_model(
            str(run / "final_model.keras"), compile=False))
    got = call_reloaded(
        None, "{k: v['probabilities'].numpy().tolist() for k, v in out.items()}",
        str(tmp_path), setup=(
            "out = {}\n"
            f"for family, path in {({k: v[0] for k, v in exports.items()})!r}.items():\n"
            "    m = tf.saved_model.load(path)\n"
            f"    out[family] = m.signatures['classify'](text=tf.constant({texts!r}))"))
    tokenizer = WordPieceTokenizer(vocabulary)
    special = vocabulary.special
    ids = np.zeros([len(texts), 64], "int32")
    mask = np.zeros_like(ids)
    for row, text in enumerate(texts):
        pieces = [special.cls, *tokenizer.tokenize(text)[:62], special.sep]
        ids[row, :len(pieces)], mask[row, :len(pieces)] = pieces, 1
    for family, (_, model) in exports.items():
        expected = keras.ops.convert_to_numpy(keras.activations.softmax(
            model({"input_ids": ids, "segment_ids": np.zeros_like(ids), "input_mask": mask},
                  training=False)))
        np.testing.assert_allclose(np.array(got[family]), expected, atol=1e-5,
                                   err_msg=family)


def test_brightmart_embedding_size_comes_from_its_word_table(vocabulary, tmp_path):
    """Some brightmart modeling.py versions built E = H whatever the config's
    embedding_size said: the checkpoint's word table decides; gelu as its configs
    write it is the tanh form."""
    prefix, config = standins.brightmart(tmp_path, wordpiece_vocab_file(), vocabulary.size,
                                         hidden_act="gelu")
    values = json.loads(open(config).read())
    values["embedding_size"] = 128
    open(config, "w").write(json.dumps(values))
    output = str(tmp_path / "converted.keras")
    assert convert(["--from", "tf1", prefix, "--config", config, "--output", output]) == 0
    model = keras.saving.load_model(output, compile=False)
    assert model.config.embedding_size == standins.SIZES["embedding_size"]
    assert model.config.hidden_act == "gelu_tanh"
    from transformers_reference import our_outputs

    features = features_for(model)
    ours = our_outputs(model, features)
    expected = standins.brightmart_reference(prefix, features, hidden_act="gelu")
    for name, value in expected.items():
        assert np.abs(np.asarray(ours[name]) - value).max() <= ATOL, name

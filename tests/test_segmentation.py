"""Chinese word segmentation and part of speech as character-level tagging
(training/prepare_segmentation.py): the data by hand, the CoNLL 2018 word and word + UPOS
F1 by hand, and a tagger fine-tuned on the bundled UD Chinese GSDSimp sentences whose
`tag` signature returns the words of raw Chinese text with their part of speech in a
process that imports only tensorflow and tensorflow_text, as the evaluation path does."""

import json
import os

import pytest

from albert_keras.tasks.tagging.metrics import tagging_metrics
from albert_keras.tasks.tagging.spans import entity_spans
from data_fixtures import wordpiece_vocab_file
from fresh_process import call_reloaded
from training import prepare_segmentation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GSDSIMP = os.path.join(ROOT, "training", "datasets", "ud_chinese_gsdsimp",
                       "zh_gsdsimp-ud-dev.conllu")


def test_character_tags_by_hand():
    units, tags, crossing = prepare_segmentation.character_tags(
        "北京是2020年的首都。", [("北京", "PROPN"), ("是", "AUX"), ("2020年", "NOUN"),
                           ("的", "PART"), ("首都", "NOUN"), ("。", "PUNCT")])
    assert units == ["北", "京", "是", "2020", "年", "的", "首", "都", "。"]
    assert tags == ["B-PROPN", "I-PROPN", "B-AUX", "B-NOUN", "I-NOUN", "B-PART", "B-NOUN",
                    "I-NOUN", "B-PUNCT"]
    assert crossing == 0
    assert entity_spans(tags) == [("PROPN", 0, 1), ("AUX", 2, 2), ("NOUN", 3, 4),
                                  ("PART", 5, 5), ("NOUN", 6, 7), ("PUNCT", 8, 8)]
    # Digits of two words with no space between: one unit, counted.
    assert prepare_segmentation.character_tags("12年34", [("12", "NUM"), ("年", "NOUN"),
                                                          ("34", "NUM")])[2] == 0
    assert prepare_segmentation.character_tags("ab", [("a", "X"), ("b", "X")])[2] == 1


def test_word_and_upos_f1_by_hand():
    # gold words 北京|是|首都, predicted 北京|是首|都 with 北京 mistyped.
    gold = [["B-PROPN", "I-PROPN", "B-AUX", "B-NOUN", "I-NOUN"]]
    predicted = [["B-NOUN", "I-NOUN", "B-AUX", "I-AUX", "B-NOUN"]]
    results = tagging_metrics(gold, predicted, entity_tags=True)
    # Words: 北京 right, 是 and 首都 wrong: 1 of 3 gold, 1 of 3 predicted.
    assert results["unlabeled_f1"] == pytest.approx(1 / 3)
    # Words with their UPOS: none right.
    assert results["f1"] == 0.0


def test_segmenter_fine_tunes_and_tags_raw_chinese(tmp_path, capsys):
    from albert_keras.tasks.tagging import data as tagging
    from albert_keras.tasks.tagging.word_split import split_words
    from albert_keras.tokenizer import tokenizer_for
    from albert_keras.vocabulary import read_vocabulary
    from serving import export as export_lib
    from training import finetune

    data = tmp_path / "data"
    assert prepare_segmentation.main(["--input", GSDSIMP, "--output_dir", str(data)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["train_sentences"], summary["dev_sentences"]) == (400, 100)
    run = tmp_path / "run"
    assert finetune.main([
        "--config", os.path.join(ROOT, "training", "configs", "segmentation_zh.json"),
        "--spm_model", wordpiece_vocab_file(), "--init_model", "", "--output_dir", str(run),
        "--train_file", str(data / "train.jsonl"), "--eval_file", str(data / "dev.jsonl"),
        "--total_steps", "20", "--steps_per_epoch", "20", "--warmup_steps", "2",
        "--seq_length", "64", "--learning_rate", "0.005"]) == 0
    results = json.loads((run / "eval_results.json").read_text())
    assert results["unlabeled_f1"] > 0.3 and 0 < results["f1"] < results["unlabeled_f1"]
    base = tmp_path / "saved_models"
    assert export_lib.main(["--model", str(run), "--export_base", str(base)]) == 0
    texts = ["北京是中国的首都。", "2020年，emma在上海学习机器学习。", "", "\x00你好\x00"]
    got = call_reloaded(
        str(base / "1"), "got", str(tmp_path),
        setup=(f"out = m.signatures['tag'](text=tf.constant({texts!r}))\n"
               "got = {k: [[x.decode('utf-8') if isinstance(x, bytes) else x for x in row]\n"
               "            for row in v.numpy().tolist()] if len(v.shape) == 2\n"
               "       else v.numpy().tolist() for k, v in out.items() if k.startswith('entity')}"))
    import keras

    model = keras.saving.load_model(str(run / "final_model.keras"), compile=False)
    tokenizer = tokenizer_for(read_vocabulary(wordpiece_vocab_file()))
    for row, text in enumerate(texts):
        units = split_words(text)
        count = got["entity_count"][row]
        words = got["entity_text"][row][:count]
        if not units:
            assert count == 0
            continue
        predicted = tagging.predict_tags(
            lambda features: model(features, training=False), tokenizer,
            [tagging.TaggedSentence(tuple(u for u, _, _ in units), ("O",) * len(units),
                                    (0,) * len(units))],
            model.settings.window_length, model.settings.window_stride, model.tag_names)[0]
        spans = entity_spans(predicted)
        assert got["entity_type"][row][:count] == [k for k, _, _ in spans]
        assert words == [text[units[a][1]:units[b][2]] for _, a, b in spans]
        assert "".join(words) == "".join(u for u, _, _ in units[spans[0][1]:])

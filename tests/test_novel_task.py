"""The bundled fine-tuning task: chapters split correctly, dev chapters held out."""

import csv

from training import novel_task


def test_novels_start_where_the_corpus_readme_says():
    novels = novel_task.chapters_by_novel()
    assert novels["pride_and_prejudice"][0][0].startswith(
        "It is a truth universally acknowledged")
    assert novels["emma"][0][0].startswith("Emma Woodhouse")
    assert [len(novels[name]) for name, _ in novel_task.NOVELS] == [
        count for _, count in novel_task.NOVELS]


def test_task_files_hold_disjoint_sentences_of_both_labels(tmp_path):
    counts = novel_task.write_task(str(tmp_path))
    rows = {}
    for split in ("train", "dev"):
        with open(tmp_path / f"{split}.tsv", encoding="utf-8", newline="") as f:
            rows[split] = list(csv.DictReader(f, delimiter="\t"))
        assert len(rows[split]) == counts[split]
        assert {r["label"] for r in rows[split]} == set(novel_task.LABELS)
        assert all(len(r["text_a"].split()) >= novel_task.MIN_WORDS for r in rows[split])
    assert not {r["text_a"] for r in rows["dev"]} & {r["text_a"] for r in rows["train"]}

"""Tagging metrics over whole evaluation sets: word accuracy, and conlleval's entity
precision, recall and F1 for BIO / IOB1 / BIOES tag sets."""

from __future__ import annotations

from albert_keras.tasks.tagging.spans import entity_spans


def tagging_metrics(gold, predicted, entity_tags: bool) -> dict:
    """Word-level metrics of tag sequences (lists of lists of tag strings, one list per
    sentence): "accuracy" over all words; with entity_tags (BIO, IOB1, BIOES tag sets)
    also entity-level "precision", "recall", "f1" overall and "f1_TYPE",
    "precision_TYPE", "recall_TYPE" per entity type, with conlleval's chunking
    (spans.py): an entity counts as correct when its type, first and
    last word all match. "unlabeled_precision", "unlabeled_recall", "unlabeled_f1" score
    the spans whatever their type: for character-level B-/I-UPOS tags
    (training/prepare_segmentation.py) "f1" is the CoNLL 2018 word + UPOS F1 and
    "unlabeled_f1" its word segmentation F1. A ratio with a zero denominator is 0, as in
    conlleval."""
    if len(gold) != len(predicted) or any(len(g) != len(p) for g, p in zip(gold, predicted)):
        raise ValueError("gold and predicted tags must have the same sentences and lengths")
    words = sum(len(g) for g in gold)
    correct_words = sum(a == b for g, p in zip(gold, predicted) for a, b in zip(g, p))
    results = {"accuracy": correct_words / words if words else 0.0, "words": words}
    if not entity_tags:
        return results
    gold_spans = {(i,) + span for i, tags in enumerate(gold) for span in entity_spans(tags)}
    predicted_spans = {(i,) + span for i, tags in enumerate(predicted)
                       for span in entity_spans(tags)}

    def scores(gold_set, predicted_set):
        correct = len(gold_set & predicted_set)
        precision = correct / len(predicted_set) if predicted_set else 0.0
        recall = correct / len(gold_set) if gold_set else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1

    results["precision"], results["recall"], results["f1"] = scores(gold_spans, predicted_spans)
    results["entities"] = len(gold_spans)
    (results["unlabeled_precision"], results["unlabeled_recall"],
     results["unlabeled_f1"]) = scores({(i, first, last) for i, _, first, last in gold_spans},
                                       {(i, first, last) for i, _, first, last in predicted_spans})
    for kind in sorted({span[1] for span in gold_spans | predicted_spans}):
        precision, recall, f1 = scores({s for s in gold_spans if s[1] == kind},
                                       {s for s in predicted_spans if s[1] == kind})
        results.update({f"precision_{kind}": precision, f"recall_{kind}": recall,
                        f"f1_{kind}": f1})
    return results

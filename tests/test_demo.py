"""The demo's own logic: the held-out split by document."""

from training import demo


def test_every_twentieth_document_is_held_out(tmp_path):
    source = tmp_path / "corpus.txt"
    source.write_text("\n\n".join(f"doc {i} first.\ndoc {i} second." for i in range(45)) + "\n")
    train, held_out = tmp_path / "train.txt", tmp_path / "eval.txt"
    assert demo.split_corpus(str(source), str(train), str(held_out)) == (43, 2)
    held = held_out.read_text().split("\n\n")
    assert [d.splitlines()[0] for d in held] == ["doc 19 first.", "doc 39 first."]
    kept = train.read_text()
    assert "doc 19 " not in kept and "doc 0 first.\ndoc 0 second." in kept

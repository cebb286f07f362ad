"""The Beam pipeline (DirectRunner, 2 worker processes) against the local tool."""

import filecmp
import os

import pytest

from data_fixtures import generated_documents, tiny_spm_model, write_corpus
from training import create_pretraining_data as cpd

pytest.importorskip("apache_beam")

REPO = os.path.join(os.path.dirname(__file__), "..")


def _argv(inputs, output_dir, *extra):
    return ["--input", inputs, "--spm_model", tiny_spm_model(), "--output_dir", output_dir,
            "--max_seq_length", "64", "--dupe_factor", "2", "--num_output_files", "3",
            "--seed", "11", "--num_workers", "2", *extra]


def _run(inputs, output_dir, *extra):
    return cpd.run(cpd.parse_args(_argv(inputs, str(output_dir), *extra)))


def _same_report(local, beam):
    for name, value in local.items():
        if name not in ("files_written", "worker_peak_rss_mib", "launcher_peak_rss_mib"):
            assert beam[name] == value, name
    assert [os.path.basename(p) for p in beam["files_written"]] == [
        os.path.basename(p) for p in local["files_written"]]
    assert beam["worker_peak_rss_mib"] > 0 and beam["launcher_peak_rss_mib"] > 0


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    # The DirectRunner's worker processes import the pipeline's module from the cwd.
    monkeypatch.chdir(REPO)


def test_direct_runner_writes_the_local_tools_bytes(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    # One file five times larger than the others: the deal into output files depends
    # on file order only, not on which worker finishes first.
    for i, documents in enumerate([40, 25, 200, 15, 30]):
        write_corpus(str(corpus / f"part{i}.txt"), generated_documents(documents, seed=i))
    pattern = str(corpus / "*.txt")
    local = _run(pattern, tmp_path / "local", "--static_masking")
    beam = _run(pattern, tmp_path / "beam", "--static_masking", "--runner", "direct")
    _same_report(local, beam)
    assert local["documents"] == 310 and local["instances"] > 500
    for a, b in zip(local["files_written"], beam["files_written"]):
        assert filecmp.cmp(a, b, shallow=False), (a, b)
    # Nothing but the shards is left in the output folder (no staging folder).
    assert sorted(os.listdir(tmp_path / "beam")) == sorted(
        os.path.basename(p) for p in local["files_written"])

    # The portable runner, as a Flink or Spark cluster runs it, through Beam's embedded
    # job service: the same bytes and report again.
    portable = _run(pattern, tmp_path / "portable", "--static_masking", "--runner",
                    "portable", "--job_endpoint=embed", "--environment_type=LOOPBACK")
    _same_report(local, portable)
    for a, b in zip(local["files_written"], portable["files_written"]):
        assert filecmp.cmp(a, b, shallow=False), (a, b)

    # The records feed the pretraining input pipeline as they are.
    from albert_keras.data.pipeline import pretraining_dataset

    dataset = pretraining_dataset(beam["files_written"], 8, 64, max_predictions=20,
                                  training=False)
    features = next(iter(dataset))
    features = features[0] if isinstance(features, tuple) else features
    assert features["input_ids"].shape == (8, 64)


def test_bad_input_fails_the_pipeline_or_is_counted(tmp_path, capsys):
    long_line = " ".join(["unbelievable reconstruction"] * 40)
    write_corpus(str(tmp_path / "a.txt"), generated_documents(20, seed=4))
    (tmp_path / "b.txt").write_bytes(
        b"one sentence document.\n\nbad \xff line.\nthe city of the world.\n\n"
        + long_line.encode() + b"\n\nword\n")
    pattern = f"{tmp_path / 'a.txt'},{tmp_path / 'b.txt'}"

    # The pipeline's ValueError becomes one line naming the file and line, exit code 2.
    argv = _argv(pattern, str(tmp_path / "failed"), "--runner", "direct")
    assert cpd.main(argv) == 2
    assert "b.txt:3: not valid UTF-8 (invalid start byte" in capsys.readouterr().err
    assert os.listdir(tmp_path / "failed") == []  # no shard, no staging folder

    skip = ("--on_invalid_utf8", "skip")
    local = _run(pattern, tmp_path / "local", *skip)
    beam = _run(pattern, tmp_path / "beam", *skip, "--runner", "direct")
    _same_report(local, beam)
    assert beam["invalid_utf8_lines_skipped"] == 1
    assert beam["first_invalid_line"].endswith("b.txt:3")
    assert beam["first_long_line"].endswith("b.txt:6")
    for a, b in zip(local["files_written"], beam["files_written"]):
        assert filecmp.cmp(a, b, shallow=False)


def test_flags(tmp_path, capsys):
    write_corpus(str(tmp_path / "a.txt"), generated_documents(5, seed=1))
    # A Beam flag without a Beam runner is an error, not silently ignored.
    with pytest.raises(SystemExit):
        cpd.parse_args(_argv(str(tmp_path / "a.txt"), str(tmp_path / "o"), "--project=p"))
    assert "need a --runner other than local" in capsys.readouterr().err
    args = cpd.parse_args(_argv(str(tmp_path / "a.txt"), str(tmp_path / "o"),
                                "--runner", "direct", "--direct_num_workers=3"))
    from training.pretraining_data_beam import pipeline_options

    options = pipeline_options(args).get_all_options()
    assert options["runner"] == "DirectRunner"
    assert options["direct_num_workers"] == 3  # the user's Beam flag wins
    assert options["direct_running_mode"] == "multi_processing"
    dataflow = pipeline_options(cpd.parse_args(_argv(
        str(tmp_path / "a.txt"), "gs://bucket/out", "--runner", "dataflow",
        "--num_workers", "50", "--project=p"))).get_all_options()
    assert dataflow["runner"] == "DataflowRunner" and dataflow["num_workers"] == 50
    assert dataflow["number_of_worker_harness_threads"] == 1 and dataflow["project"] == "p"

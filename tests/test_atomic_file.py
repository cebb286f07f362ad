import dataclasses
import json
import os
import stat

import pytest

from albert_keras import atomic_file


class Boom(Exception):
    pass


def test_write_helpers_write_and_replace(tmp_path):
    path = tmp_path / "out.json"
    atomic_file.write_json(path, {"b": 1, "a": [1, 2]}, indent=2, sort_keys=True)
    assert path.read_text(encoding="utf-8") == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    atomic_file.write_text(str(path), "é\n")  # replaces the file; str or PathLike
    assert path.read_bytes() == "é\n".encode("utf-8")
    atomic_file.write_bytes(path, b"\x00\xff")
    assert path.read_bytes() == b"\x00\xff"
    assert os.listdir(tmp_path) == ["out.json"]


def test_atomic_path_suffix_prefix_and_permissions(tmp_path):
    path = tmp_path / "model.keras"
    with atomic_file.atomic_path(path, suffix=".keras") as tmp:
        name = os.path.basename(tmp)
        assert os.path.dirname(tmp) == str(tmp_path)
        assert name.startswith(".tmp-model.keras-") and name.endswith(".keras")
        assert os.path.getsize(tmp) == 0  # created, so the name is reserved
        assert not path.exists()
        with open(tmp, "w") as f:
            f.write("saved")
    assert path.read_text() == "saved" and os.listdir(tmp_path) == ["model.keras"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask  # as a plain open() gives
    with atomic_file.atomic_path(tmp_path / "x", prefix="partial-") as tmp:
        assert os.path.basename(tmp).startswith("partial-")


def test_concurrent_writers_get_their_own_temporary_files(tmp_path):
    path = tmp_path / "f.txt"
    with atomic_file.atomic_path(path) as first, atomic_file.atomic_path(path) as second:
        assert first != second
        open(first, "w").write("first")
        open(second, "w").write("second")
    assert path.read_text() == "first"  # the last rename wins: the outer block's
    assert os.listdir(tmp_path) == ["f.txt"]


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path, error):
    path = tmp_path / "experiment.json"
    path.write_text("old")
    with pytest.raises(error):
        with atomic_file.atomic_path(path) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise error()
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["experiment.json"]


def test_failed_first_write_creates_nothing(tmp_path):
    with pytest.raises(TypeError):  # a set is not JSON: fails before anything is written
        atomic_file.write_json(tmp_path / "new.json", {"x": {1}})
    with pytest.raises(Boom):
        with atomic_file.atomic_path(tmp_path / "new.bin"):
            raise Boom()
    assert os.listdir(tmp_path) == []


def test_atomic_directory(tmp_path):
    base = tmp_path / "export"
    base.mkdir()
    with atomic_file.atomic_directory(base / "3") as tmp:
        assert os.path.basename(tmp).startswith(".tmp-3-")
        assert os.listdir(tmp) == [] and not (base / "3").exists()
        os.makedirs(os.path.join(tmp, "variables"))
        open(os.path.join(tmp, "saved_model.pb"), "wb").write(b"pb")
    assert sorted(os.listdir(base)) == ["3"]
    assert sorted(os.listdir(base / "3")) == ["saved_model.pb", "variables"]

    with pytest.raises(KeyboardInterrupt):
        with atomic_file.atomic_directory(base / "4", prefix=".tmp-4-") as tmp:
            assert os.path.basename(tmp).startswith(".tmp-4-")
            open(os.path.join(tmp, "saved_model.pb"), "wb").write(b"partial")
            raise KeyboardInterrupt()
    assert sorted(os.listdir(base)) == ["3"]


def test_atomic_directory_never_replaces_a_full_one(tmp_path):
    (tmp_path / "3").mkdir()
    (tmp_path / "3" / "keep").write_text("old")
    with pytest.raises(OSError):
        with atomic_file.atomic_directory(tmp_path / "3") as tmp:
            open(os.path.join(tmp, "new"), "w").write("new")
    assert os.listdir(tmp_path) == ["3"]
    assert os.listdir(tmp_path / "3") == ["keep"]


def test_experiment_writer_cleans_up(tmp_path, monkeypatch):
    """write_experiment used to leave its temporary file behind when it failed."""
    from training import experiment as experiment_lib

    path = tmp_path / "run" / "experiment.json"
    experiment = experiment_lib.PretrainExperiment()
    experiment_lib.write_experiment(experiment, str(path))
    written = path.read_text(encoding="utf-8")
    assert json.loads(written) == dataclasses.asdict(experiment)

    def failing_replace(src, dst):
        raise OSError("no space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)  # fails with the temp file written
    with pytest.raises(OSError, match="no space"):
        experiment_lib.write_experiment(experiment, str(path))
    assert path.read_text(encoding="utf-8") == written
    assert os.listdir(path.parent) == ["experiment.json"]

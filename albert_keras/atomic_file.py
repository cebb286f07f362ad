"""Atomic writes: write under a temporary name next to the target, rename when complete.

A reader (another process, TF Serving polling a directory, a rerun after a crash) then
sees either the old content or the complete new one, never a half-written file. The
temporary name starts with ".tmp-" and sits in the target's own directory, so the rename
stays on one file system (atomic on POSIX) and a killed process leaves at most a
hidden ".tmp-*" entry behind. Each temporary name holds random characters, so
concurrent writers of the same target never share one; the last rename wins.

    with atomic_path("model.keras", suffix=".keras") as tmp:
        model.save(tmp)                      # anything that writes to a path
    with atomic_directory("export/3") as tmp_dir:
        tf.saved_model.save(module, tmp_dir)  # appears as export/3 when complete
    write_json("config.json", values, indent=2, sort_keys=True)

On success the temporary entry is renamed onto the target (a file replaces an existing
file); on any exception, KeyboardInterrupt included, it is removed and the exception
propagates, so a failed write leaves the old target (if any) untouched and nothing
else behind. Temporary entries get the permissions of a plain open() or os.mkdir()
(0o666 or 0o777 less the umask), not tempfile's private 0o600 / 0o700.

Atomic against other processes and crashes of this one; not durable across power loss
(there is no fsync). Local paths only: the rename is os.replace. The target's directory
must exist. Imports nothing beyond the standard library.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from typing import Any, Iterator

TEMPORARY_PREFIX = ".tmp-"
_ATTEMPTS = 100


def _create_file(name: str):
    os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


def _create_directory(name: str):
    os.mkdir(name, 0o777)


def _remove(name: str):
    if os.path.isdir(name) and not os.path.islink(name):
        shutil.rmtree(name, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)


@contextlib.contextmanager
def _renamed_when_complete(path, prefix: str | None, suffix: str, create) -> Iterator[str]:
    """Creates DIR/PREFIX+random+SUFFIX with create(name) (a fresh name on a clash),
    yields it, renames it onto path on success and removes it on an exception."""
    directory, base = os.path.split(os.path.abspath(os.fspath(path)))
    if prefix is None:
        prefix = f"{TEMPORARY_PREFIX}{base}-"
    for _ in range(_ATTEMPTS):
        tmp = os.path.join(directory, f"{prefix}{secrets.token_hex(4)}{suffix}")
        try:
            create(tmp)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"no free temporary name in {directory} after {_ATTEMPTS} tries")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def atomic_path(path: str | os.PathLike, *, suffix: str = "",
                prefix: str | None = None) -> contextlib.AbstractContextManager[str]:
    """A context manager: yields a temporary file path next to `path`, renames it onto
    `path` on success.

    The temporary file exists, empty, when the block starts: write it through the path
    (open(tmp, "w"), model.save(tmp), shutil.copyfile(src, tmp), a TFRecordWriter...),
    overwriting it. `suffix` ends its name, for writers that look at the extension
    (Keras saves only to "*.keras": suffix=".keras"). `prefix` defaults to
    ".tmp-BASENAME-". An existing file at `path` is replaced. On an exception the
    temporary file is removed and the exception re-raised; `path` is left as it was.
    """
    return _renamed_when_complete(path, prefix, suffix, _create_file)


def atomic_directory(path: str | os.PathLike, *,
                     prefix: str | None = None) -> contextlib.AbstractContextManager[str]:
    """A context manager: yields a fresh, empty temporary directory next to `path`,
    renames it to `path` on success.

    `prefix` defaults to ".tmp-BASENAME-" (for a TF Serving version directory BASE/4,
    ".tmp-4-", a name the server ignores since it is not an integer). `path` must not
    exist, or be an empty directory (which the rename replaces); a non-empty one makes
    the rename fail. On an exception, the rename's included, the temporary directory
    and everything in it are removed and the exception re-raised.
    """
    return _renamed_when_complete(path, prefix, "", _create_directory)


def write_bytes(path: str | os.PathLike, data: bytes):
    """Writes `data` to `path` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8"):
    """Writes `text` to `path` atomically, encoded as is (no newline translation)."""
    write_bytes(path, text.encode(encoding))


def write_json(path: str | os.PathLike, obj: Any, **json_kwargs):
    """Writes json.dumps(obj, **json_kwargs) and a final newline to `path` atomically,
    in UTF-8. The object is serialised before anything is written, so one that JSON
    cannot represent raises with nothing created."""
    write_text(path, json.dumps(obj, **json_kwargs) + "\n")

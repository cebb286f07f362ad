"""Shared by the converters: assign named source arrays to Keras variables, checking
shapes and presence, with errors that name the variable at fault."""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable

import numpy as np


class ConversionError(ValueError):
    """A weight file does not fit the model: a variable is missing or has the wrong shape."""


@dataclasses.dataclass(frozen=True)
class Mapping:
    """source (a name in the file) fills variable (a Keras variable of our model).

    transpose: the source stores the matrix as [out, in] (torch Linear, the reference's
    seq_relationship/output_weights) and Keras as [in, out].
    """

    source: str
    variable: object
    transpose: bool = False


def assign(variable, value, source: str, transpose: bool = False) -> None:
    """variable.assign(value) after checking the shape; errors name source and target."""
    value = np.asarray(value)
    target_shape = tuple(int(d) for d in variable.shape)
    expected = target_shape[::-1] if transpose else target_shape
    if value.shape != expected:
        raise ConversionError(
            f"variable {source!r} has shape {value.shape}, expected {expected} "
            f"(for {variable.path})")
    if transpose:
        value = value.T
    variable.assign(value.astype(variable.dtype))


def load_parts(parts: dict[str, list[Mapping]], optional: Iterable[str],
               read: Callable[[str], np.ndarray], available: set[str],
               origin: str) -> tuple[list[str], set[str]]:
    """Assigns every part's mappings from read(source_name).

    parts: part name (e.g. "backbone", "mlm_head") -> its mappings. A required part
    with any source missing raises ConversionError naming the missing variables. An
    optional part wholly absent is skipped and returned in `absent` (the caller warns);
    one partly present is an error. Returns (absent part names, used source names).
    """
    optional = set(optional)
    expected = {m.source for mappings in parts.values() for m in mappings}
    absent, used = [], set()
    for part, mappings in parts.items():
        missing = [m.source for m in mappings if m.source not in available]
        if part in optional and len(missing) == len(mappings):
            absent.append(part)
            continue
        if missing:
            shown = ", ".join(repr(name) for name in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            unexpected = sorted(available - expected)[:3]
            hint = (f"; the file holds instead e.g. {', '.join(map(repr, unexpected))}"
                    " - is it an ALBERT model of this config?" if unexpected else "")
            raise ConversionError(
                f"{origin}: missing variable {shown}{more} (needed for {part}){hint}")
        for m in mappings:
            try:
                assign(m.variable, read(m.source), m.source, transpose=m.transpose)
            except ConversionError as error:
                raise ConversionError(f"{origin}: {error}") from None
            used.add(m.source)
    return absent, used


def dense(prefix: str, layer, kernel: str = "kernel", bias: str = "bias",
          transpose: bool = False, separator: str = "/") -> list[Mapping]:
    """The two mappings of a keras Dense layer from prefix + separator + kernel/bias."""
    return [Mapping(f"{prefix}{separator}{kernel}", layer.kernel, transpose),
            Mapping(f"{prefix}{separator}{bias}", layer.bias)]


def layer_norm(prefix: str, layer, gamma: str = "gamma", beta: str = "beta",
               separator: str = "/") -> list[Mapping]:
    """The two mappings of a keras LayerNormalization from prefix + separator + gamma/beta."""
    return [Mapping(f"{prefix}{separator}{gamma}", layer.gamma),
            Mapping(f"{prefix}{separator}{beta}", layer.beta)]

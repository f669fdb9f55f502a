"""Tokenize whole corpora: the Python face of ``ferrotok tokenize``.

:func:`tokenize_files` runs the same resumable job as the command (same options, same output
bytes). :func:`encode_arrow` encodes a pyarrow string array into a ``list<uint32>`` array without
creating a Python object per token; it is the building block of the Ray Data, Dask and Spark
recipes (see :mod:`ferrotok.ray` and the README).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from . import _core
from ._core import Encoding, Tokenizer

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["tokenize_files", "encode_arrow", "TokenizeSummary", "Format", "OnInvalid"]

Format = Literal["bin", "megatron", "npy", "parquet"]
OnInvalid = Literal["fail", "skip", "replace"]
_FORMATS = ("bin", "megatron", "npy", "parquet")
_DTYPES = ("uint16", "uint32", "int32")
_ON_INVALID = ("fail", "skip", "replace")
_INPUT_FORMATS = ("auto", "text", "jsonl", "parquet")


class TokenizeSummary(TypedDict):
    """What :func:`tokenize_files` reports (``ferrotok tokenize --json`` prints the same keys)."""

    documents: int
    tokens: int
    bytes: int
    records: int
    skipped: int
    replaced: int
    truncated: int
    tokens_per_document: float
    seconds: float
    bytes_this_run: int
    resumed: bool
    already_complete: bool
    outputs: list[str]
    manifest: str


def _encoding(tokenizer: Encoding | str) -> Encoding:
    if isinstance(tokenizer, Encoding):
        return tokenizer
    if isinstance(tokenizer, str):
        from . import get_encoding

        return get_encoding(tokenizer)
    raise TypeError(f"tokenizer must be an Encoding or a built-in encoding's name, not {type(tokenizer).__name__}")


def _choice(name: str, value: str | None, allowed: Sequence[str]) -> None:
    if value is not None and value not in allowed:
        from .exceptions import OptionsError

        raise OptionsError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")


def tokenize_files(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    tokenizer: Encoding | Tokenizer | str,
    output: str | os.PathLike[str],
    *,
    format: Format = "bin",
    dtype: Literal["uint16", "uint32", "int32"] | None = None,
    header: Literal["llmc"] | None = None,
    input_format: Literal["auto", "text", "jsonl", "parquet"] = "auto",
    by_line: bool = False,
    field: str = "text",
    column: str = "text",
    id_field: str | None = None,
    append_eot: bool = False,
    prepend_bos: bool = False,
    eot: str | int | None = None,
    bos: str | int | None = None,
    max_tokens_per_doc: int | None = None,
    on_invalid: OnInvalid = "fail",
    shard: tuple[int, int] | None = None,
    chunk_mb: float = 8.0,
    num_threads: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> TokenizeSummary:
    """Tokenizes files into training-ready output, exactly as ``ferrotok tokenize`` does.

    ``tokenizer``: an :class:`Encoding`, a built-in encoding's name, or a :class:`Tokenizer`
    (a ``tokenizer.json``; text is encoded as ``encode(text, add_special_tokens=False)``).
    ``inputs``: files, directories, globs (``.txt``, ``.jsonl``, ``.parquet``, optionally ``.gz`` or
    ``.zst``). ``output``: a path prefix; the format adds its extensions and ``.manifest.json``.
    ``shard=(i, n)`` produces shard ``i`` of ``n``. An interrupted call resumes when called again
    with the same arguments; a changed input, tokenizer or option raises
    :class:`~ferrotok.exceptions.ResumeError` unless ``overwrite=True``. Releases the GIL.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    _choice("format", format, _FORMATS)
    _choice("dtype", dtype, _DTYPES)
    _choice("header", header, ("llmc",))
    _choice("input_format", input_format, _INPUT_FORMATS)
    _choice("on_invalid", on_invalid, _ON_INVALID)
    if shard is not None:
        index, count = shard
        if not (isinstance(index, int) and isinstance(count, int) and 0 <= index < count):
            from .exceptions import OptionsError

            raise OptionsError(f"shard must be (index, count) with 0 <= index < count, not {shard!r}")
    if not chunk_mb > 0:
        from .exceptions import OptionsError

        raise OptionsError(f"chunk_mb must be positive, not {chunk_mb!r}")
    options: dict[str, Any] = {
        "format": format,
        "dtype": dtype,
        "header": header,
        "input_format": input_format,
        "by_line": by_line,
        "field": field,
        "column": column,
        "id_field": id_field,
        "append_eot": append_eot,
        "prepend_bos": prepend_bos,
        "eot": None if eot is None else str(eot),
        "bos": None if bos is None else str(bos),
        "max_tokens_per_doc": max_tokens_per_doc,
        "on_invalid": on_invalid,
        "shard": None if shard is None else {"index": shard[0], "count": shard[1]},
        "chunk_bytes": max(1, int(chunk_mb * 1e6)),
    }
    summary = _core._tokenize_files(
        [os.fspath(p) for p in inputs],
        tokenizer if isinstance(tokenizer, Tokenizer) else _encoding(tokenizer),
        os.fspath(output),
        json.dumps(options),
        num_threads=num_threads,
        overwrite=overwrite,
        progress=progress,
    )
    return summary  # type: ignore[return-value]


def encode_arrow(
    array: pa.Array | pa.ChunkedArray, tokenizer: Encoding | str, *, num_threads: int | None = None
) -> pa.Array | pa.ChunkedArray:
    """Encodes every string of a pyarrow string array (``string``, ``large_string`` or
    ``string_view``, chunked or not) as ordinary text and returns a ``list<uint32>`` array of the
    same length (``large_list<uint32>`` if the ids overflow 32-bit offsets); nulls stay null.

    No Python object is made per string or per token: the array's buffers go to Rust as they are
    and the ids come back as one buffer. Releases the GIL and uses ``num_threads`` threads.
    """
    import numpy as np
    import pyarrow as pa

    enc = _encoding(tokenizer)
    if isinstance(array, pa.ChunkedArray):
        chunks = [encode_arrow(c, enc, num_threads=num_threads) for c in array.chunks]
        return pa.chunked_array(chunks, type=None if chunks else pa.list_(pa.uint32()))
    if not isinstance(array, pa.Array):
        raise TypeError(f"array must be a pyarrow Array or ChunkedArray, not {type(array).__name__}")
    ids, starts, nulls = _encode_flat(array, enc, num_threads=num_threads)
    values = pa.array(ids, type=pa.uint32())
    mask = pa.array(nulls) if nulls is not None else None
    if starts[-1] <= np.iinfo(np.int32).max:
        return pa.ListArray.from_arrays(pa.array(starts.astype(np.int32)), values, mask=mask)
    return pa.LargeListArray.from_arrays(pa.array(starts), values, mask=mask)


def _encode_flat(
    array: pa.Array | pa.ChunkedArray,
    enc: Encoding,
    *,
    bos: int | None = None,
    eot: int | None = None,
    num_threads: int | None = None,
) -> tuple[Any, Any, Any]:
    """``(ids, starts, nulls)`` for a string array: flat uint32 ids, n + 1 int64 offsets, and a
    boolean null mask (or None). ``bos``/``eot`` go around every document when given."""
    import numpy as np
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_string(array.type) or pa.types.is_string_view(array.type):
        array = array.cast(pa.large_string())
    elif not pa.types.is_large_string(array.type):
        raise TypeError(f"array must hold strings, not {array.type}")
    n = len(array)
    _, offsets_buf, data_buf = array.buffers()
    if n:
        # Buffers from other libraries may be misaligned for int64; np.require copies only then.
        raw = np.frombuffer(offsets_buf, dtype=np.uint8)[8 * array.offset : 8 * (array.offset + n + 1)]
        offsets = (raw if raw.ctypes.data % 8 == 0 else raw.copy()).view(np.int64)
    else:
        offsets = np.zeros(1, np.int64)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    nulls = array.is_null().to_numpy(zero_copy_only=False) if array.null_count else None
    ids, starts = _core._encode_string_buffers(enc, offsets, data, nulls, num_threads=num_threads)
    seps = [s for s in (bos, eot) if s is not None]
    if seps:
        lens = np.diff(starts)
        new_starts = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lens + len(seps), out=new_starts[1:])
        out = np.empty(int(new_starts[-1]), dtype=np.uint32)
        shift = np.repeat(new_starts[:-1] + (bos is not None) - starts[:-1], lens)
        out[np.arange(len(ids)) + shift] = ids
        if bos is not None:
            out[new_starts[:-1]] = bos
        if eot is not None:
            out[new_starts[1:] - 1] = eot
        ids, starts = out, new_starts
    return ids, starts, nulls

"""Ray Data integration: tokenize a dataset on a cluster and write training-ready shards.

Install with ``pip install ferrotok[ray]``. Example::

    import ray, ferrotok.ray
    ds = ray.data.read_parquet("s3://bucket/corpus/")
    ds = ferrotok.ray.tokenize(ds, "o200k_base", column="text", append_eot=True)
    ds.write_datasink(ferrotok.ray.TokenDatasink("/data/tokens", format="megatron"))

:func:`tokenize` is a ``map_batches`` stage run by an actor class: each worker receives the
tokenizer once (pickled by value: its ranks travel with it, nothing is downloaded) and encodes
Arrow batches without making a Python object per token. :class:`TokenDatasink` writes one file
(or file pair) per write task, named ``shard-NNNNN``, in any format of ``ferrotok tokenize``.
With ``DataContext.get_current().execution_options.preserve_order = True`` the shards, taken
in name order, hold the documents in dataset order.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _core
from ._core import Encoding
from .data import _encode_flat, _encoding

if TYPE_CHECKING:
    import pyarrow as pa
    import ray.data

try:
    from ray.data import Datasink as _Datasink
except ImportError as e:  # pragma: no cover - exercised only without ray installed
    raise ImportError("ferrotok.ray needs Ray Data: pip install 'ferrotok[ray]'") from e

__all__ = ["tokenize", "TokenDatasink", "encode_column"]


def encode_column(
    column: pa.Array | pa.ChunkedArray,
    encoding: Encoding,
    *,
    bos: int | None = None,
    eot: int | None = None,
    num_threads: int | None = None,
) -> pa.Array:
    """``list<uint32>`` ids of each string, with ``bos`` before and ``eot`` after each document
    when given (nulls become empty documents)."""
    import pyarrow as pa

    ids, starts, _ = _encode_flat(column, encoding, bos=bos, eot=eot, num_threads=num_threads)
    return pa.ListArray.from_arrays(pa.array(starts.astype(np.int32)), pa.array(ids, type=pa.uint32()))


class _Tokenize:
    """The actor class of :func:`tokenize`: one tokenizer per worker, loaded in ``__init__``."""

    def __init__(
        self,
        encoding: Encoding,
        column: str,
        output_column: str,
        bos: int | None,
        eot: int | None,
        num_threads: int | None,
    ) -> None:
        self.encoding = encoding
        self.column = column
        self.output_column = output_column
        self.bos = bos
        self.eot = eot
        self.num_threads = num_threads

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.column not in batch.column_names:
            from .exceptions import InputError

            raise InputError(f"the dataset has no column {self.column!r} (columns: {', '.join(batch.column_names)})")
        ids = encode_column(
            batch.column(self.column), self.encoding, bos=self.bos, eot=self.eot, num_threads=self.num_threads
        )
        return batch.append_column(self.output_column, ids)


def tokenize(
    dataset: ray.data.Dataset,
    tokenizer: Encoding | str,
    column: str = "text",
    *,
    output_column: str = "ids",
    append_eot: bool = False,
    prepend_bos: bool = False,
    eot: int | None = None,
    bos: int | None = None,
    actors: int | tuple[int, int] = 1,
    num_cpus: float = 1,
    num_threads: int | None = 1,
    batch_size: int | None = 1024,
) -> ray.data.Dataset:
    """Adds a ``list<uint32>`` column ``output_column`` with the ids of ``column``.

    ``actors``: the number of tokenizer actors (or a ``(min, max)`` autoscaling range), each
    reserving ``num_cpus``; ``num_threads``: threads inside each actor (1 suits one actor per
    core). Leave a CPU for reading: on a 2-CPU machine, one actor.
    """
    from ray.data import ActorPoolStrategy

    enc = _encoding(tokenizer)
    eot_id = (eot if eot is not None else enc.eot_token) if append_eot else None
    bos_id = bos if prepend_bos else None
    if prepend_bos and bos is None:
        for name in ("<|begin_of_text|>", "<|startoftext|>"):
            if name in enc.special_tokens_set:
                bos_id = enc.encode_single_token(name)
                break
        else:
            from .exceptions import OptionsError

            raise OptionsError(f"{enc.name} has no beginning-of-text token; pass bos=ID")
    return dataset.map_batches(
        _Tokenize,
        fn_constructor_args=(enc, column, output_column, bos_id, eot_id, num_threads),
        batch_format="pyarrow",
        batch_size=batch_size,
        compute=ActorPoolStrategy(size=actors) if isinstance(actors, int) else ActorPoolStrategy(min_size=actors[0], max_size=actors[1]),
        num_cpus=num_cpus,
    )


class TokenDatasink(_Datasink[list[str]]):
    """Writes the ``column`` of ids as ``PATH/shard-NNNNN`` files in a ``ferrotok tokenize`` format
    (``bin``, ``megatron``, ``npy``, ``parquet``), one per write task, each written atomically."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        format: str = "bin",
        column: str = "ids",
        id_column: str | None = None,
        dtype: str | None = None,
        header: str | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.format = format
        self.column = column
        self.id_column = id_column
        self.dtype = dtype
        self.header = header
        self.written: list[str] = []

    def on_write_start(self, schema: Any = None) -> None:
        os.makedirs(self.path, exist_ok=True)

    def write(self, blocks: Iterable[Any], ctx: Any) -> list[str]:
        import pyarrow as pa

        tables = [b for b in blocks if b.num_rows]
        if not tables:
            return []
        table = pa.concat_tables(tables)
        lists = table.column(self.column).combine_chunks()
        offsets = lists.offsets.to_numpy().astype(np.int64)
        starts = offsets - offsets[0]
        ids = lists.flatten().to_numpy(zero_copy_only=False).astype(np.uint32, copy=False)
        doc_ids = None
        if self.id_column is not None:
            doc_ids = [None if v is None else str(v) for v in table.column(self.id_column).to_pylist()]
        out = os.path.join(self.path, f"shard-{ctx.task_idx:05d}")
        return _core._write_tokens(out, self.format, ids, starts, doc_ids, dtype=self.dtype, header=self.header)

    def on_write_complete(self, write_result: Any) -> None:
        results = getattr(write_result, "write_returns", write_result)
        self.written = sorted(p for r in results for p in (r or []))

    def get_name(self) -> str:
        return "FerrotokTokens"

"""Scale-out for real: a local Ray cluster and a local Dask cluster tokenize the vendored corpus
and their output equals the single-process command's."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from ferrotok.data import encode_arrow, tokenize_files
from conftest import corpus, reference

ENC = "cl100k_base"


@pytest.fixture(scope="module")
def jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("in") / "corpus.jsonl"
    path.write_bytes(b"".join(json.dumps({"id": d["id"], "text": d["text"]}).encode() + b"\n" for d in corpus()))
    return path


def single_run(jsonl: Path, out: Path, fmt: str = "npy") -> Path:
    tokenize_files(jsonl, ENC, out, format=fmt, append_eot=True)
    return out


def read_npy(prefix: Path | str) -> list[list[int]]:
    ids = np.load(f"{prefix}.npy")
    offsets = np.load(f"{prefix}.offsets.npy")
    return [ids[a:b].tolist() for a, b in zip(offsets[:-1], offsets[1:])]


def test_ray_data_pipeline_equals_the_single_process_job(tmp_path: Path, jsonl: Path) -> None:
    import ray
    import ray.data

    import ferrotok.ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        ray.data.DataContext.get_current().execution_options.preserve_order = True
        ds = ray.data.read_json(str(jsonl), override_num_blocks=3)
        ds = ferrotok.ray.tokenize(ds, ferrotok.get_encoding(ENC), column="text", append_eot=True, batch_size=50)
        sink = ferrotok.ray.TokenDatasink(tmp_path / "ray", format="npy")
        ds.write_datasink(sink)
        shards = sorted(p.removesuffix(".offsets.npy") for p in sink.written if p.endswith(".offsets.npy"))
        assert shards, sink.written
        got = [doc for s in shards for doc in read_npy(s)]
    finally:
        ray.shutdown()
    assert got == read_npy(single_run(jsonl, tmp_path / "single"))


def _shard(args: tuple[str, str, int, int]) -> str:
    src, out, i, n = args
    tokenize_files(src, ENC, out, format="npy", append_eot=True, shard=(i, n), num_threads=1)
    return out


def test_dask_cluster_shards_and_dataframe_recipes(tmp_path: Path, jsonl: Path) -> None:
    import dask.dataframe as dd
    import pandas as pd
    from dask.distributed import Client, LocalCluster

    single = read_npy(single_run(jsonl, tmp_path / "single"))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        # Recipe 1: one `--shard i/n` job per worker; the shards concatenate to the whole.
        n = 4
        futures = client.map(_shard, [(str(jsonl), str(tmp_path / f"shard{i}"), i, n) for i in range(n)])
        outs = client.gather(futures)
        assert [doc for o in outs for doc in read_npy(o)] == single

        # Recipe 2: a dataframe column of ids, via Arrow, no Python object per token.
        def encode_partition(df: pd.DataFrame) -> pd.Series:
            ids = encode_arrow(pa.array(df["text"], type=pa.large_string()), ENC)
            return pd.Series(pd.arrays.ArrowExtensionArray(ids), index=df.index, name="ids")

        ddf = dd.from_pandas(pd.DataFrame({"text": [d["text"] for d in corpus()]}), npartitions=4)
        meta = pd.Series(pd.array([], dtype=pd.ArrowDtype(pa.list_(pa.uint32()))), name="ids")
        ids: Any = ddf.map_partitions(encode_partition, meta=meta).compute()
    ref = reference(ENC)
    assert [list(v) for v in ids] == [ref.encode_ordinary(d["text"]) for d in corpus()]

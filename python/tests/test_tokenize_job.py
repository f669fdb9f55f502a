"""`ferrotok tokenize` and `ferrotok.data.tokenize_files`: every input and output format
round-trips real text with ids equal to tiktoken's; interrupted jobs resume to byte-identical
output; shards concatenate to the single-machine result; bad input and changed jobs fail clearly."""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import ferrotok
from ferrotok.data import tokenize_files
from conftest import TESTDATA, corpus, reference

COMMAND = [sys.executable, "-m", "ferrotok"]
ENC = "cl100k_base"


def texts() -> list[str]:
    return [d["text"] for d in corpus()]


def expected(name: str = ENC, *, eot: bool = True, bos: int | None = None, docs: list[str] | None = None) -> list[list[int]]:
    ref = reference(name)
    return [([bos] if bos is not None else []) + ref.encode_ordinary(t) + ([ref.eot_token] if eot else []) for t in (docs if docs is not None else texts())]


def run(*args: str | os.PathLike[str], env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    p = subprocess.run([*COMMAND, *map(str, args)], capture_output=True, timeout=300, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"ferrotok {args} failed ({p.returncode}): {p.stderr.decode()}")
    return p


# --- readers written from the formats' descriptions -------------------------------------------


def read_megatron(prefix: Path) -> list[list[int]]:
    """Megatron-LM's MMapIndexedDataset, read from its documented layout."""
    idx = (prefix.with_suffix(".idx")).read_bytes()
    assert idx[:9] == b"MMIDIDX\x00\x00"
    (version,) = struct.unpack_from("<Q", idx, 9)
    assert version == 1
    code = idx[17]
    dtype = {4: np.int32, 8: np.uint16}[code]
    n_seq, n_doc = struct.unpack_from("<QQ", idx, 18)
    at = 34
    lengths = np.frombuffer(idx, dtype=np.int32, count=n_seq, offset=at)
    at += 4 * n_seq
    pointers = np.frombuffer(idx, dtype=np.int64, count=n_seq, offset=at)
    at += 8 * n_seq
    doc_index = np.frombuffer(idx, dtype=np.int64, count=n_doc, offset=at)
    assert at + 8 * n_doc == len(idx)
    assert doc_index.tolist() == list(range(n_seq + 1))
    data = np.memmap(prefix.with_suffix(".bin"), dtype=np.uint8, mode="r")
    width = np.dtype(dtype).itemsize
    assert pointers.tolist() == (np.concatenate([[0], np.cumsum(lengths)[:-1]]) * width).tolist()
    return [np.frombuffer(data, dtype=dtype, count=int(n), offset=int(p)).tolist() for n, p in zip(lengths, pointers)]


def read_npy(prefix: Path) -> list[list[int]]:
    ids = np.load(f"{prefix}.npy")
    offsets = np.load(f"{prefix}.offsets.npy")
    assert offsets.dtype == np.int64 and offsets[0] == 0 and offsets[-1] == len(ids)
    return [ids[a:b].tolist() for a, b in zip(offsets[:-1], offsets[1:])]


def read_parquet(prefix: Path) -> list[list[int]]:
    table = pq.read_table(f"{prefix}.parquet")
    assert table.schema.field("ids").type == pa.list_(pa.field("item", pa.uint32(), nullable=False))
    return table.column("ids").to_pylist()  # type: ignore[no-any-return]


def write_jsonl(path: Path, docs: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(json.dumps(d, ensure_ascii=False).encode() + b"\n" for d in docs))
    return path


@pytest.fixture(scope="module")
def jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("in") / "corpus.jsonl", corpus())


# --- formats -------------------------------------------------------------------------------------


def test_bin_is_the_flat_stream_of_every_document(tmp_path: Path, jsonl: Path) -> None:
    run("tokenize", jsonl, "-t", ENC, "-o", tmp_path / "out", "--append-eot")
    flat = [i for d in expected() for i in d]
    got = np.fromfile(tmp_path / "out.bin", dtype=np.uint32)  # cl100k needs 32 bits
    assert got.tolist() == flat


def test_bin_is_uint16_when_the_vocabulary_fits_and_has_the_llmc_header(tmp_path: Path, jsonl: Path) -> None:
    run("tokenize", jsonl, "-t", "gpt2", "-o", tmp_path / "out.bin", "--append-eot", "--header", "llmc")
    raw = (tmp_path / "out.bin").read_bytes()
    header = np.frombuffer(raw[:1024], dtype="<i4")
    flat = [i for d in expected("gpt2") for i in d]
    assert header[:3].tolist() == [20240520, 1, len(flat)] and not header[3:].any()
    assert np.frombuffer(raw[1024:], dtype="<u2").tolist() == flat


def test_megatron_matches_its_reader(tmp_path: Path, jsonl: Path) -> None:
    run("tokenize", jsonl, "-t", ENC, "-o", tmp_path / "out", "-f", "megatron", "--append-eot")
    assert read_megatron(tmp_path / "out") == expected()
    run("tokenize", jsonl, "-t", "gpt2", "-o", tmp_path / "small", "-f", "megatron")
    assert read_megatron(tmp_path / "small") == expected("gpt2", eot=False)


def test_npy_has_ids_and_document_offsets(tmp_path: Path, jsonl: Path) -> None:
    run("tokenize", jsonl, "-t", "o200k_base", "-o", tmp_path / "out", "-f", "npy", "--append-eot")
    assert read_npy(tmp_path / "out") == expected("o200k_base")


def test_parquet_keeps_document_ids(tmp_path: Path, jsonl: Path) -> None:
    run("tokenize", jsonl, "-t", ENC, "-o", tmp_path / "out", "-f", "parquet", "--id-field", "id", "--append-eot")
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column("id").to_pylist() == [d["id"] for d in corpus()]
    assert read_parquet(tmp_path / "out") == expected()


# --- inputs --------------------------------------------------------------------------------------


def test_text_files_gzip_zstd_and_parquet_inputs(tmp_path: Path) -> None:
    docs = texts()[:30]
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    for i, t in enumerate(docs[:10]):
        (d / f"a{i:02d}.txt").write_text(t, encoding="utf-8")
    for i, t in enumerate(docs[10:20]):
        (d / "sub" / f"b{i:02d}.txt.gz").write_bytes(gzip.compress(t.encode()))
    import zstandard

    zst = d / "sub" / "c.jsonl.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress("".join(json.dumps({"text": t}) + "\n" for t in docs[20:25]).encode()))
    pq.write_table(pa.table({"body": docs[25:30]}), d / "sub" / "d.parquet", row_group_size=2)
    (d / "notes.csv").write_text("ignored by the directory walk")
    run("tokenize", d, "-t", ENC, "-o", tmp_path / "out", "-f", "npy", "--column", "body")
    assert read_npy(tmp_path / "out") == expected(eot=False, docs=docs)


def test_by_line_and_globs_and_stdin(tmp_path: Path) -> None:
    lines = [t.replace("\n", " ").replace("\r", " ") for t in texts()[:20]]
    (tmp_path / "x1.txt").write_text("\n".join(lines[:10]) + "\n\n", encoding="utf-8")
    (tmp_path / "x2.txt").write_text("\r\n".join(lines[10:]), encoding="utf-8")
    run("tokenize", str(tmp_path / "x*.txt"), "--by-line", "-t", ENC, "-o", tmp_path / "out", "-f", "npy")
    assert read_npy(tmp_path / "out") == expected(eot=False, docs=lines)
    p = subprocess.run([*COMMAND, "tokenize", "-", "-t", ENC, "-o", str(tmp_path / "in"), "-f", "npy"], input=lines[0].encode(), capture_output=True, check=True)
    assert p.returncode == 0
    assert read_npy(tmp_path / "in") == expected(eot=False, docs=[lines[0]])


def test_invalid_records_fail_skip_or_replace_and_are_counted(tmp_path: Path) -> None:
    good = texts()[:3]
    src = tmp_path / "bad.jsonl"
    src.write_bytes(
        json.dumps({"text": good[0]}).encode() + b"\n"
        + b'{"text": "caf\xe9 latte"}\n'
        + b'{"title": "no text"}\n'
        + b"not json\n"
        + json.dumps({"text": good[1]}).encode() + b"\n"
        + b'{"text": 42}\n'
        + json.dumps({"text": good[2]}).encode() + b"\n"
    )
    p = run("tokenize", src, "-t", ENC, "-o", tmp_path / "f", check=False)
    assert p.returncode == 1
    assert f"{src}:line 2: invalid UTF-8" in p.stderr.decode()
    assert not (tmp_path / "f.bin").exists()

    s = json.loads(run("tokenize", src, "-t", ENC, "-o", tmp_path / "s", "-f", "npy", "--on-invalid", "skip", "--json").stdout)
    assert (s["documents"], s["skipped"], s["records"], s["replaced"]) == (3, 4, 7, 0)
    assert read_npy(tmp_path / "s") == expected(eot=False, docs=good)

    s = json.loads(run("tokenize", src, "-t", ENC, "-o", tmp_path / "r", "-f", "npy", "--on-invalid", "replace", "--json").stdout)
    assert (s["documents"], s["skipped"], s["replaced"]) == (4, 3, 1)
    assert read_npy(tmp_path / "r") == expected(eot=False, docs=[good[0], "caf\ufffd latte", good[1], good[2]])

    p = run("tokenize", src, "-t", ENC, "-o", tmp_path / "m", "--field", "title", check=False)
    assert "line 1: no text field \"title\"" in p.stderr.decode()


def test_separators_and_the_token_cap(tmp_path: Path, jsonl: Path) -> None:
    o200k = reference("o200k_base")
    s = tokenize_files(jsonl, "o200k_base", tmp_path / "cap", format="npy", append_eot=True, eot="<|endoftext|>", max_tokens_per_doc=50)
    exp = [o200k.encode_ordinary(t)[:49] + [o200k.eot_token] for t in texts()]
    assert read_npy(tmp_path / "cap") == exp
    assert s["truncated"] == sum(len(o200k.encode_ordinary(t)) > 49 for t in texts())
    tokenize_files(jsonl, "cl100k_base", tmp_path / "bos", format="npy", prepend_bos=True, bos="<|fim_prefix|>")
    fim = reference(ENC).encode_single_token("<|fim_prefix|>")
    assert read_npy(tmp_path / "bos") == expected(eot=False, bos=fim)
    with pytest.raises(ferrotok.OptionsError, match="no beginning-of-text token"):
        tokenize_files(jsonl, "cl100k_base", tmp_path / "x", prepend_bos=True)
    with pytest.raises(ferrotok.OptionsError, match="do not fit uint16"):
        tokenize_files(jsonl, "cl100k_base", tmp_path / "x", dtype="uint16")
    with pytest.raises(ferrotok.OptionsError, match="no uint32"):
        tokenize_files(jsonl, "cl100k_base", tmp_path / "x", format="megatron", dtype="uint32")


def test_json_summary_and_no_progress_bar_off_a_terminal(tmp_path: Path, jsonl: Path) -> None:
    p = run("tokenize", jsonl, "-t", ENC, "-o", tmp_path / "out", "--json")
    s = json.loads(p.stdout)
    exp = expected(eot=False)
    assert s["documents"] == len(exp) and s["tokens"] == sum(map(len, exp))
    assert s["bytes"] == sum(len(t.encode()) for t in texts())
    assert s["tokens_per_document"] == pytest.approx(s["tokens"] / s["documents"])
    assert {"seconds", "skipped", "outputs", "manifest", "resumed"} <= set(s)
    assert p.stderr == b""
    again = json.loads(run("tokenize", jsonl, "-t", ENC, "-o", tmp_path / "out", "--json").stdout)
    assert again["already_complete"] and again["tokens"] == s["tokens"]


def test_progress_bar_on_a_terminal(tmp_path: Path, jsonl: Path) -> None:
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # child: stderr is the pty
        os.execv(sys.executable, [sys.executable, "-m", "ferrotok", "tokenize", str(jsonl), "-t", ENC, "-o", str(tmp_path / "tty"), "--chunk-mb", "0.05"])
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    text = out.decode(errors="replace")
    assert f"{len(texts())} docs" in text and "tokens" in text and "ETA" in text


# --- nothing lost --------------------------------------------------------------------------------


def _bytes_of(prefix: Path, fmt: str) -> dict[str, bytes]:
    suffixes = {"bin": [".bin"], "megatron": [".bin", ".idx"], "npy": [".npy", ".offsets.npy"], "parquet": [".parquet"]}[fmt]
    out = {s: Path(f"{prefix}{s}").read_bytes() for s in suffixes}
    manifest = json.loads(Path(f"{prefix}.manifest.json").read_text())
    manifest.pop("outputs")  # names differ between the runs compared
    out[".manifest.json"] = json.dumps(manifest).encode()
    return out


@pytest.mark.parametrize("fmt", ["bin", "megatron", "npy", "parquet"])
def test_crashes_at_every_fault_point_resume_to_identical_output(tmp_path: Path, jsonl: Path, fmt: str) -> None:
    """Abort (as abruptly as a power cut) at the k-th write, sync or rename, for every k until a
    run gets through; then run again: the output is byte-identical to an uninterrupted run."""
    args = ["tokenize", jsonl, "-t", ENC, "-f", fmt, "--append-eot", "--chunk-mb", "0.04"]
    run(*args, "-o", tmp_path / "clean")
    clean = _bytes_of(tmp_path / "clean", fmt)
    k, crashes = 1, 0
    while True:
        out = tmp_path / f"k{k}"
        p = run(*args, "-o", out, env={**os.environ, "FERROTOK_FAULT_AT": str(k)}, check=False)
        if p.returncode == 0:
            break
        assert p.returncode < 0 and -p.returncode == signal.SIGABRT, p.stderr
        crashes += 1
        had_checkpoint = (tmp_path / f"k{k}.ferrotok-work" / "checkpoint.json").exists()
        resumed = json.loads(run(*args, "-o", out, "--json").stdout)
        assert resumed["resumed"] == had_checkpoint
        assert resumed["documents"] == len(texts())
        assert _bytes_of(out, fmt) == clean, f"fault point {k}"
        assert not (tmp_path / f"k{k}.ferrotok-work").exists()
        k += 1
    assert crashes > 20  # the sweep really went through many chunks


def test_repeated_sigkill_at_random_moments_loses_nothing(tmp_path: Path, jsonl: Path) -> None:
    # The kill moments are fractions of a clean run's duration, and the input grows until a clean
    # run takes at least a second and a half, so that on a fast machine too the job is killed
    # several times before it can finish (a fixed input and fixed delays let a fast machine finish
    # after a single kill).
    big = tmp_path / "big.jsonl"
    args = [*COMMAND, "tokenize", str(big), "-t", ENC, "-f", "megatron", "--append-eot", "--chunk-mb", "0.5", "-j", "1"]
    copies = 30  # 18 MB
    for _ in range(6):
        big.write_bytes(jsonl.read_bytes() * copies)
        shutil.rmtree(tmp_path / "clean.ferrotok-work", ignore_errors=True)
        start = time.perf_counter()
        subprocess.run([*args, "-o", str(tmp_path / "clean"), "--overwrite"], check=True, capture_output=True)
        clean_seconds = time.perf_counter() - start
        if clean_seconds >= 1.5:
            break
        copies *= 2
    rng = random.Random(1234)
    kills = 0
    for attempt in range(200):
        proc = subprocess.Popen([*args, "-o", str(tmp_path / "out")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(clean_seconds * rng.uniform(0.05, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if attempt % 3 else signal.SIGTERM)
            kills += 1
        proc.wait()
        if proc.returncode == 0:
            break
    else:
        raise AssertionError("the job never finished")
    assert kills >= 3, (kills, clean_seconds)
    assert _bytes_of(tmp_path / "out", "megatron") == _bytes_of(tmp_path / "clean", "megatron")


def test_refuses_to_resume_a_different_job(tmp_path: Path, jsonl: Path) -> None:
    args = ["tokenize", jsonl, "-t", ENC, "-o", tmp_path / "out", "--chunk-mb", "0.04"]
    p = run(*args, env={**os.environ, "FERROTOK_FAULT_AT": "20"}, check=False)
    assert p.returncode != 0 and (tmp_path / "out.ferrotok-work" / "checkpoint.json").exists()
    p = run(*args, "--append-eot", check=False)
    assert p.returncode == 1 and "different the options (append-eot)" in p.stderr.decode()
    p = run("tokenize", jsonl, "-t", "o200k_base", "-o", tmp_path / "out", "--chunk-mb", "0.04", check=False)
    assert "different the tokenizer (was cl100k_base, now o200k_base)" in p.stderr.decode()
    with open(jsonl, "ab") as f:  # a copy changed after the crash
        pass
    changed = tmp_path / "corpus.jsonl"
    shutil.copy(jsonl, changed)
    p = run("tokenize", changed, "-t", ENC, "-o", tmp_path / "out", "--chunk-mb", "0.04", check=False)
    assert "different the inputs" in p.stderr.decode()
    with pytest.raises(ferrotok.ResumeError, match="different the inputs"):
        tokenize_files(changed, ENC, tmp_path / "out", chunk_mb=0.04)
    # The original job still finishes.
    s = json.loads(run(*args, "--json").stdout)
    assert s["resumed"] and s["documents"] == len(texts())
    # A finished output is not silently replaced by another job.
    p = run(*args, "--append-eot", check=False)
    assert "records a finished job with different the options" in p.stderr.decode()
    s = json.loads(run(*args, "--append-eot", "--overwrite", "--json").stdout)
    assert not s["already_complete"] and s["tokens"] == sum(map(len, expected()))


# --- shards --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 7])
def test_shards_concatenate_to_the_single_run(tmp_path: Path, jsonl: Path, n: int) -> None:
    # Mixed inputs: a splittable JSONL file, a gzip file and whole text files.
    (tmp_path / "in").mkdir()
    shutil.copy(jsonl, tmp_path / "in" / "a.jsonl")
    (tmp_path / "in" / "b.jsonl.gz").write_bytes(gzip.compress(jsonl.read_bytes()[:50000].rsplit(b"\n", 1)[0] + b"\n"))
    for i, t in enumerate(texts()[:5]):
        (tmp_path / "in" / f"c{i}.txt").write_text(t, encoding="utf-8")
    single = tmp_path / "single"
    run("tokenize", tmp_path / "in", "-t", ENC, "-o", single, "-f", "npy", "--append-eot")
    parts: list[list[int]] = []
    for i in range(n):
        run("tokenize", tmp_path / "in", "-t", ENC, "-o", tmp_path / f"s{i}", "-f", "npy", "--append-eot", "--shard", f"{i}/{n}")
        parts += read_npy(tmp_path / f"s{i}")
    assert parts == read_npy(single)
    # Shards of a single file are real splits, not one shard holding everything.
    sizes = [len(np.load(tmp_path / f"s{i}.offsets.npy")) - 1 for i in range(n)]
    assert sum(1 for s in sizes if s > 0) >= 2


def test_bin_shards_concatenate_byte_for_byte(tmp_path: Path, jsonl: Path) -> None:
    run("tokenize", jsonl, "-t", "gpt2", "-o", tmp_path / "all", "--append-eot")
    cat = b"".join(
        (run("tokenize", jsonl, "-t", "gpt2", "-o", tmp_path / f"s{i}", "--append-eot", "--shard", f"{i}/4") and (tmp_path / f"s{i}.bin").read_bytes())
        for i in range(4)
    )
    assert cat == (tmp_path / "all.bin").read_bytes()


# --- encode_arrow --------------------------------------------------------------------------------


def test_encode_arrow_matches_tiktoken_with_nulls_slices_and_chunks() -> None:
    from ferrotok.data import encode_arrow

    ref = reference(ENC)
    docs: list[str | None] = [*texts()[:60], None, "", "😁 ok"]
    exp = [None if t is None else ref.encode_ordinary(t) for t in docs]
    for arr in (pa.array(docs), pa.array(docs, type=pa.large_string()), pa.array(docs, type=pa.string_view())):
        out = encode_arrow(arr, ENC)
        assert out.type == pa.list_(pa.uint32()) and out.to_pylist() == exp
        assert encode_arrow(arr.slice(7, 20), ENC).to_pylist() == exp[7:27]
    chunked = pa.chunked_array([pa.array(docs[:30]), pa.array(docs[30:])])
    assert encode_arrow(chunked, ferrotok.get_encoding(ENC), num_threads=2).to_pylist() == exp
    with pytest.raises(TypeError, match="strings"):
        encode_arrow(pa.array([1, 2]), ENC)


def test_full_shared_corpus_round_trips_every_format(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """All of ../shared/corpus (prose, code, 500+ languages, CJK, adversarial) through each
    output format, and through gzip, zstd and Parquet inputs, against tiktoken."""
    if not request.config.getoption("--full-corpus"):
        pytest.skip("pass --full-corpus to run on all of ../shared/corpus")
    from conftest import SHARED, read_jsonl

    files = sorted((SHARED / "corpus").glob("*.jsonl"))
    assert files, "../shared/corpus is not there"
    docs = [d["text"] for f in files for d in read_jsonl(f)]
    exp = expected("o200k_base", docs=docs)
    for fmt, reader in (("megatron", read_megatron), ("npy", read_npy), ("parquet", read_parquet)):
        run("tokenize", *files, "-t", "o200k_base", "-o", tmp_path / fmt, "-f", fmt, "--append-eot")
        assert reader(tmp_path / fmt) == exp, fmt
    run("tokenize", *files, "-t", "o200k_base", "-o", tmp_path / "flat", "--append-eot")
    assert np.fromfile(tmp_path / "flat.bin", dtype=np.uint32).tolist() == [i for d in exp for i in d]
    import zstandard

    mixed = tmp_path / "in"
    mixed.mkdir()
    for i, f in enumerate(files):
        raw = f.read_bytes()
        if i % 3 == 0:
            (mixed / f"{i}-{f.name}.gz").write_bytes(gzip.compress(raw))
        elif i % 3 == 1:
            (mixed / f"{i}-{f.name}.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
        else:
            pq.write_table(pa.table({"text": [d["text"] for d in read_jsonl(f)]}), mixed / f"{i}-{f.stem}.parquet", row_group_size=100)
    run("tokenize", mixed, "-t", "o200k_base", "-o", tmp_path / "mixed", "-f", "npy", "--append-eot")
    assert read_npy(tmp_path / "mixed") == exp

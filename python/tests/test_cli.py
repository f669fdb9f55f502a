"""The `ferrotok` command as pip installs it (a Python entry point into the Rust CLI).
Output formats are snapshot-tested in crates/ferrotok-cli/tests; here: that the installed
command works, agrees with the library, and behaves in pipelines."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ferrotok
from conftest import TESTDATA

COMMAND = [sys.executable, "-m", "ferrotok"]


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*COMMAND, *args], input=stdin, capture_output=True, timeout=120)


def test_console_script_is_installed() -> None:
    exe = shutil.which("ferrotok", path=str(Path(sys.executable).parent))
    assert exe is not None, "pip install did not put the ferrotok command beside python"
    out = subprocess.run([exe, "--version"], capture_output=True, check=True)
    assert out.stdout.decode().strip() == f"ferrotok {ferrotok.__version__}"


def test_count_agrees_with_the_library(tmp_path: Path) -> None:
    enc = ferrotok.get_encoding("cl100k_base")
    files = []
    for i, text in enumerate(["hello world", "ünïcödé 中文 " * 50, ""]):
        p = tmp_path / f"f{i}.txt"
        p.write_text(text, encoding="utf-8")
        files.append((p, enc.count(text)))
    out = run("count", "-e", "cl100k_base", "--json", *[str(p) for p, _ in files])
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert [f["tokens"] for f in report["files"]] == [n for _, n in files]
    assert report["total_tokens"] == sum(n for _, n in files)


def test_encode_decode_round_trip_through_pipes() -> None:
    text = (TESTDATA / "cli" / "hello.txt").read_bytes()
    ids = run("encode", "-e", "o200k_base", stdin=text)
    assert ids.returncode == 0
    assert [int(x) for x in ids.stdout.split()] == ferrotok.get_encoding("o200k_base").encode(text.decode())
    back = run("decode", "-e", "o200k_base", stdin=ids.stdout)
    assert back.stdout == text


def test_broken_pipe_is_quiet() -> None:
    big = "word " * 400_000
    proc = subprocess.run(
        f"{' '.join(COMMAND)} encode --format tokens - | head -n 1",
        shell=True,
        input=big.encode(),
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0
    assert proc.stdout.decode().startswith("1801\t\"word\"")
    assert proc.stderr == b""


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["count", "does-not-exist.txt"], "cannot read does-not-exist.txt"),
        (["encode", "-e", "nope"], "unknown encoding"),
        (["decode"], "is not a token id"),
    ],
)
def test_errors_exit_non_zero_on_stderr(args: list[str], needle: str) -> None:
    out = run(*args, stdin=b"x y")
    assert out.returncode == 1
    assert out.stdout == b""
    assert needle in out.stderr.decode()


def test_count_of_one_large_file_is_split_between_threads_exactly(tmp_path: Path) -> None:
    """One input is cut between threads (`encode_ordinary_parallel`); the count must not move."""
    from conftest import corpus

    text = "\n".join(d["text"] for d in corpus()) * 2  # about 1.2 MB: several 256 KiB segments
    path = tmp_path / "big.txt"
    path.write_text(text, encoding="utf-8")
    for name in ["cl100k_base", "o200k_base", "gpt2"]:
        expected = len(ferrotok.get_encoding(name).encode_ordinary(text))
        for threads in ["1", "2", "4"]:
            out = run("count", "-e", name, "-j", threads, "--json", str(path))
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout)["total_tokens"] == expected, (name, threads)

"""Encodings are immutable, shareable across threads, picklable, and fork-safe."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from typing import Callable

import pytest

import ferrotok
from conftest import corpus


def test_builtin_pickles_by_name() -> None:
    enc = ferrotok.get_encoding("cl100k_base")
    data = pickle.dumps(enc)
    assert len(data) < 200
    assert pickle.loads(data) is enc


def test_custom_encoding_pickles_by_value_into_a_fresh_process() -> None:
    base = ferrotok.get_encoding("r50k_base")
    custom = ferrotok.Encoding(
        "mine",
        pat_str=r"\S+|\s+",
        mergeable_ranks={k: v for k, v in base._mergeable_ranks.items() if v < 30000},
        special_tokens={"<|x|>": 30000},
    )
    text = "The quick brown fox <|x|> jumps"
    expected = custom.encode(text, allowed_special="all")
    code = (
        "import pickle, sys; enc = pickle.loads(sys.stdin.buffer.read()); "
        f"print(enc.name, enc.encode({text!r}, allowed_special='all'))"
    )
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(custom), capture_output=True, check=True)
    assert out.stdout.decode().strip() == f"mine {expected}"


def run_threads(work: Callable[[int], None], n: int) -> list[BaseException]:
    """Runs work(0) .. work(n - 1) on n threads at once; returns what they raised."""
    errors: list[BaseException] = []

    def guarded(k: int) -> None:
        try:
            work(k)
        except BaseException as e:  # pragma: no cover - reported by the caller
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_many_threads_share_one_encoding() -> None:
    enc = ferrotok.get_encoding("o200k_base")
    texts = [d["text"] for d in corpus()[:60]]
    expected = [enc.encode_ordinary(t) for t in texts]

    def work(k: int) -> None:
        for i in range(len(texts)):
            j = (i + k) % len(texts)
            assert enc.encode_ordinary(texts[j]) == expected[j]
        assert enc.encode_ordinary_batch(texts, num_threads=2) == expected

    assert run_threads(work, 8) == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_batch_calls_work_after_fork() -> None:
    code = """
import os, sys, ferrotok
enc = ferrotok.get_encoding("cl100k_base")
texts = ["hello world"] * 64
before = enc.encode_batch(texts, num_threads=2)
pid = os.fork()
if pid == 0:
    ok = enc.encode_batch(texts, num_threads=2) == before
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
    # A hang here is the bug this guards against; the timeout turns it into a failure.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()


def test_concurrent_batches_on_the_kept_pool_agree() -> None:
    # Batches from several Python threads at once share the kept worker pool; each must
    # still get its own results, in order, while the others' results stream in.
    enc = ferrotok.get_encoding("cl100k_base")
    texts = [f"document {i}: " + "lorem ipsum dolor sit amet " * (i % 50) for i in range(300)]
    want = [enc.encode(t) for t in texts]

    def work(k: int) -> None:
        for _ in range(5):
            mine = texts[k:] + texts[:k]
            assert enc.encode_batch(mine, num_threads=2) == want[k:] + want[:k]

    assert run_threads(work, 6) == []


def test_the_first_failing_text_of_a_batch_is_reported() -> None:
    # Results are taken in order while workers run ahead: the error raised is the one of the
    # first failing text, whichever worker finished first.
    enc = ferrotok.get_encoding("cl100k_base")
    texts = ["plain text " * 2000] * 40
    texts[9] = "x <|endofprompt|>"
    texts[30] = "y <|endoftext|>"
    for threads in [1, 2, 4]:
        with pytest.raises(ValueError, match="endofprompt"):
            enc.encode_batch(texts, num_threads=threads)


def test_num_threads_env_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERROTOK_NUM_THREADS", "3")
    enc = ferrotok.get_encoding("gpt2")
    assert enc.encode_batch(["a b", "c"]) == [enc.encode("a b"), enc.encode("c")]

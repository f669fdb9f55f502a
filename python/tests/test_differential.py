"""Ids identical to tiktoken's, document by document, for every built-in encoding."""

from __future__ import annotations

from typing import Any

import pytest

import ferrotok
from conftest import NAMES, SHARED, corpus, read_jsonl, reference


def mismatches(name: str, docs: list[dict[str, Any]]) -> list[str]:
    enc = ferrotok.get_encoding(name)
    ref = reference(name)
    bad = []
    for doc in docs:
        text = doc["text"]
        expected = ref.encode_ordinary(text)
        if enc.encode_ordinary(text) != expected:
            bad.append(doc["id"])
            continue
        if enc.encode(text, allowed_special="all") != ref.encode(text, allowed_special="all"):
            bad.append(doc["id"] + " (allowed_special=all)")
        if enc.count(text, disallowed_special=()) != len(expected):
            bad.append(doc["id"] + " (count)")
    return bad


@pytest.mark.parametrize("name", NAMES)
def test_every_document_matches_tiktoken(name: str) -> None:
    docs = corpus()
    assert mismatches(name, docs) == []


@pytest.mark.parametrize("name", NAMES)
def test_batch_matches_one_by_one(name: str) -> None:
    enc = ferrotok.get_encoding(name)
    texts = [d["text"] for d in corpus()]
    assert enc.encode_ordinary_batch(texts, num_threads=2) == [enc.encode_ordinary(t) for t in texts]
    assert enc.count_batch(texts, num_threads=2, disallowed_special=()) == [len(enc.encode_ordinary(t)) for t in texts]


def test_gpt2_ranks_equal_the_data_gym_files() -> None:
    """gpt2 ships as r50k_base's ranks; prove they equal GPT-2's original encoder.json + vocab.bpe."""
    openai = SHARED / "vocab" / "openai"
    if not (openai / "gpt2_encoder.json").exists():
        pytest.skip("needs ../shared/vocab/openai (not shipped with the tests)")
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    ranks = data_gym_to_mergeable_bpe_ranks(str(openai / "gpt2_vocab.bpe"), str(openai / "gpt2_encoder.json"))
    assert ferrotok.get_encoding("gpt2")._mergeable_ranks == ranks


@pytest.mark.parametrize("name", NAMES)
def test_full_shared_corpus(name: str, request: pytest.FixtureRequest) -> None:
    if not request.config.getoption("--full-corpus"):
        pytest.skip("pass --full-corpus to run on all of ../shared/corpus")
    files = sorted((SHARED / "corpus").glob("*.jsonl"))
    assert files, "../shared/corpus is not there"
    docs = [d for f in files for d in read_jsonl(f)]
    bad = mismatches(name, docs)
    print(f"{name}: {len(docs)} documents, {len(bad)} mismatching")
    assert bad == []


@pytest.mark.parametrize("slots", ["0", "2", "16", ""])
def test_piece_cache_size_never_changes_ids(slots: str) -> None:
    """The per-thread piece cache off (0 slots), thrashing (2 or 16 slots: the long table's
    budget is then 512 or 4096 bytes) or at its default ("") gives the same ids, every text
    encoded twice (the second time from the cache)."""
    import hashlib
    import json
    import os
    import random
    import subprocess
    import sys

    code = (
        "import ferrotok, json, sys, hashlib\n"
        "docs = json.load(sys.stdin)\n"
        "for name in ['cl100k_base', 'o200k_base']:\n"
        "    enc = ferrotok.get_encoding(name)\n"
        "    ids = [enc.encode_ordinary(t) for t in docs] + [enc.encode_ordinary(t) for t in docs]\n"
        "    print(hashlib.sha256(json.dumps(ids).encode()).hexdigest())\n"
    )
    rng = random.Random(7)
    # Pieces for the long table (over 256 bytes): runs, a word without a split point, blobs.
    long_pieces = [" " * 300, "=" * 5000, "ab" * 400, "\u4e2d" * 700, " " * 301 + "x", "-" * 2999]
    long_pieces.append("".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=3000)))
    long_pieces.append(" ".join("".join(rng.choices("0123456789abcdef", k=600)) for _ in range(4)))
    texts = [d["text"] for d in corpus()] + long_pieces + long_pieces[::-1]
    env = {**os.environ, "FERROTOK_CACHE_SLOTS": slots}
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(texts).encode(), env=env, capture_output=True, check=True)
    expected = []
    for name in ["cl100k_base", "o200k_base"]:
        ref = reference(name)
        ids = [ref.encode_ordinary(t) for t in texts] * 2
        expected.append(hashlib.sha256(json.dumps(ids).encode()).hexdigest())
    assert out.stdout.decode().split() == expected

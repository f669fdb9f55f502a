"""Megabyte inputs without a split point: exact, no crash, no stack overflow.
(Their speed — flat time per MB — is shown by the benchmark harness, not asserted here.)"""

from __future__ import annotations

import random

import pytest

import ferrotok
from conftest import reference

rng = random.Random(20261124)
CASES = {
    "one letter": "a" * 1_000_000,
    "random letters": "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=300_000)),
    "punctuation": "^" * 1_000_000,
    "spaces then a word": " " * 500_000 + "word",
    "newlines and spaces": "\n \r\n\t " * 100_000,
    "one CJK character": "中" * 200_000,
    "combining marks": "e" + "\u0301" * 200_000,
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base", "gpt2"])
def test_megabyte_inputs_match_tiktoken(name: str, case: str) -> None:
    text = CASES[case]
    ids = ferrotok.get_encoding(name).encode_ordinary(text)
    assert ids == reference(name).encode_ordinary(text)
    assert ferrotok.get_encoding(name).decode(ids) == text

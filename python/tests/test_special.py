"""Special tokens: tiktoken's exact semantics for allowed_special and disallowed_special."""

from __future__ import annotations

from typing import Any

import pytest

import ferrotok
from conftest import reference

TEXTS = [
    "<|endoftext|>",
    "a<|endoftext|>b<|fim_prefix|>c<|endofprompt|>",
    "<|endoftext|<|endoftext|>|>",
    "<|<|endoftext|>endoftext|>",
    "no specials at all",
    "<|fim_middle|><|fim_suffix|> x <|endoftext|>",
]

CASES: list[dict[str, Any]] = [
    {"allowed_special": "all"},
    {"allowed_special": "all", "disallowed_special": ()},
    {"disallowed_special": ()},
    {"allowed_special": {"<|endoftext|>"}, "disallowed_special": ()},
    {"allowed_special": {"<|endoftext|>"}, "disallowed_special": {"<|fim_prefix|>"}},
    {"allowed_special": {"<|endoftext|>", "<|fim_prefix|>", "<|endofprompt|>"}},
    {"disallowed_special": {"<|fim_middle|>"}},
    {"disallowed_special": frozenset()},
    {"allowed_special": set(), "disallowed_special": "all"},
    {"disallowed_special": ["not special", "x <"]},
    {},
]


def outcome(enc: Any, text: str, kwargs: dict[str, Any]) -> Any:
    try:
        return enc.encode(text, **kwargs)
    except ValueError:
        return "ValueError"


def case_id(kwargs: dict[str, Any]) -> str:
    # Sets sorted: the id must not depend on hash order (pytest-xdist workers compare them).
    return repr({k: sorted(v) if isinstance(v, (set, frozenset)) else v for k, v in kwargs.items()})


@pytest.mark.parametrize("kwargs", CASES, ids=case_id)
def test_same_outcome_as_tiktoken(kwargs: dict[str, Any]) -> None:
    enc, ref = ferrotok.get_encoding("cl100k_base"), reference("cl100k_base")
    for text in TEXTS:
        assert outcome(enc, text, kwargs) == outcome(ref, text, kwargs), text


def test_encode_ordinary_ignores_special_tokens() -> None:
    enc, ref = ferrotok.get_encoding("o200k_harmony"), reference("o200k_harmony")
    text = "<|start|>user<|message|>hi<|end|><|endoftext|>"
    assert enc.encode_ordinary(text) == ref.encode_ordinary(text)
    assert enc.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")
    assert enc.encode(text, allowed_special="all")[:1] == [200006]


def test_shared_special_id_decodes_to_the_first_token() -> None:
    enc, ref = ferrotok.get_encoding("o200k_harmony"), reference("o200k_harmony")
    assert enc.decode([200018]) == ref.decode([200018]) == "<|endofprompt|>"

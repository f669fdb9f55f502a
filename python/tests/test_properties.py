"""Properties over arbitrary text (hypothesis): round trips, count, batch, and tiktoken."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ferrotok
from conftest import NAMES, reference

# Text biased towards what breaks tokenizers: mixed scripts, marks, spaces, digits, apostrophes.
tricky = st.text(
    alphabet=st.sampled_from(list("aAzZ09 '\t\r\n!/.-_sStTlLdDvVeEmMrR") + ["ſ", "é", "\u0301", "\u00a0", "\u3000", "中", "ǅ", "ʰ", "١", "😀", "\u200d", "Ω"]),
    max_size=60,
)
any_text = st.text(max_size=80)
settings.register_profile("ferrotok", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ferrotok")


@given(st.one_of(tricky, any_text), st.sampled_from(NAMES))
def test_equals_tiktoken(text: str, name: str) -> None:
    assert ferrotok.get_encoding(name).encode_ordinary(text) == reference(name).encode_ordinary(text)


@given(st.one_of(tricky, any_text), st.sampled_from(["cl100k_base", "o200k_base", "gpt2"]))
def test_round_trip_and_count(text: str, name: str) -> None:
    enc = ferrotok.get_encoding(name)
    ids = enc.encode_ordinary(text)
    if any("\ud800" <= c <= "\udfff" for c in text):
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    assert enc.decode_bytes(ids) == text.encode()
    assert enc.decode(ids) == text
    assert enc.count(text, disallowed_special=()) == len(ids)


@given(st.lists(st.one_of(tricky, any_text), max_size=8))
def test_batch_equals_one_by_one(texts: list[str]) -> None:
    enc = ferrotok.get_encoding("o200k_base")
    assert enc.encode_ordinary_batch(texts, num_threads=2) == [enc.encode_ordinary(t) for t in texts]

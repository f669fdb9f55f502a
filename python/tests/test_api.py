"""The tiktoken-compatible surface: same names, attributes and results as tiktoken."""

from __future__ import annotations

import numpy as np
import pytest

import ferrotok
from conftest import NAMES, corpus, reference

SAMPLE = "Hello, y'all! How are you 😁 ?\n\tDONT'T 123456 <|endoftext|> é\u0301"


@pytest.mark.parametrize("name", NAMES)
def test_attributes_equal_tiktoken(name: str) -> None:
    enc, ref = ferrotok.get_encoding(name), reference(name)
    assert enc.name == ref.name == name
    assert enc.n_vocab == ref.n_vocab
    assert enc.max_token_value == ref.max_token_value
    assert enc.eot_token == ref.eot_token
    assert enc.special_tokens_set == ref.special_tokens_set
    assert enc._pat_str == ref._pat_str
    assert enc._special_tokens == ref._special_tokens
    assert repr(enc) == repr(ref)


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_harmony", "p50k_base"])
def test_token_level_methods_equal_tiktoken(name: str) -> None:
    enc, ref = ferrotok.get_encoding(name), reference(name)
    ids = ref.encode(SAMPLE, allowed_special="all")
    assert enc.decode_tokens_bytes(ids) == ref.decode_tokens_bytes(ids)
    assert enc.decode_bytes(ids) == ref.decode_bytes(ids)
    assert enc.decode(ids) == ref.decode(ids) == SAMPLE
    assert enc.decode_with_offsets(ids) == ref.decode_with_offsets(ids)
    for i in ids:
        assert enc.decode_single_token_bytes(i) == ref.decode_single_token_bytes(i)
        assert enc.is_special_token(i) == ref.is_special_token(i)
        assert enc.encode_single_token(enc.decode_single_token_bytes(i)) == ref.encode_single_token(ref.decode_single_token_bytes(i))
    assert enc.encode_single_token("<|endoftext|>") == ref.encode_single_token("<|endoftext|>")
    assert enc.token_byte_values() == ref.token_byte_values()
    assert enc._mergeable_ranks == ref._mergeable_ranks


def test_decode_with_offsets_inside_multibyte_characters() -> None:
    enc, ref = ferrotok.get_encoding("cl100k_base"), reference("cl100k_base")
    for text in ["我非常渴望与人工智能一起工作", "👍🏽 emoji ☃️ snowman", "e\u0301\u0301\u0301"]:
        ids = ref.encode(text)
        assert enc.decode_with_offsets(ids) == ref.decode_with_offsets(ids)


def test_decode_error_handlers_follow_bytes_decode() -> None:
    enc, ref = ferrotok.get_encoding("cl100k_base"), reference("cl100k_base")
    ids = ref.encode("😁")[:1]  # the first bytes of a 4-byte character only
    for errors in ["replace", "ignore", "backslashreplace", "surrogateescape"]:
        assert enc.decode(ids, errors=errors) == ref.decode(ids, errors=errors)
    with pytest.raises(UnicodeDecodeError):
        enc.decode(ids, errors="strict")


def test_numpy_output() -> None:
    enc = ferrotok.get_encoding("o200k_base")
    arr = enc.encode_to_numpy(SAMPLE, allowed_special="all")
    assert arr.dtype == np.uint32
    assert arr.tolist() == enc.encode(SAMPLE, allowed_special="all")
    assert arr.tolist() == reference("o200k_base").encode_to_numpy(SAMPLE, allowed_special="all").tolist()


def test_batch_apis_equal_tiktoken() -> None:
    enc, ref = ferrotok.get_encoding("cl100k_base"), reference("cl100k_base")
    texts = [d["text"] for d in corpus()[:40]] + [SAMPLE]
    assert enc.encode_batch(texts, allowed_special="all") == ref.encode_batch(texts, allowed_special="all")
    batch = ref.encode_ordinary_batch(texts)
    assert enc.encode_ordinary_batch(texts) == batch
    assert enc.decode_batch(batch) == ref.decode_batch(batch)
    assert enc.decode_bytes_batch(batch) == ref.decode_bytes_batch(batch)
    assert enc.encode_batch([]) == []
    for threads in [1, 2, 7]:
        assert enc.encode_ordinary_batch(texts, num_threads=threads) == batch


def test_flat_numpy_batch_equals_tiktoken() -> None:
    enc, ref = ferrotok.get_encoding("cl100k_base"), reference("cl100k_base")
    texts = [d["text"] for d in corpus()[:40]] + [SAMPLE, "", "a\ud800b"]
    want = ref.encode_batch(texts, allowed_special="all")
    for threads in [1, 2, 7]:
        ids, offsets = enc.encode_batch_to_numpy(texts, num_threads=threads, allowed_special="all")
        assert ids.dtype == np.uint32 and offsets.dtype == np.int64
        assert offsets.tolist() == np.cumsum([0] + [len(w) for w in want]).tolist()
        assert [ids[a:b].tolist() for a, b in zip(offsets[:-1], offsets[1:])] == want
    ids, offsets = enc.encode_batch_to_numpy(texts[:3], disallowed_special=())
    assert ids.tolist() == [i for w in ref.encode_ordinary_batch(texts[:3]) for i in w]
    ids, offsets = enc.encode_batch_to_numpy([])
    assert ids.tolist() == [] and offsets.tolist() == [0]


def test_lone_surrogates_are_replaced_like_tiktoken() -> None:
    enc, ref = ferrotok.get_encoding("cl100k_base"), reference("cl100k_base")
    for text in ["a\ud800b", "\udfff", "pair \ud83d\ude00 joined", "x\ud800\ud800"]:
        assert enc.encode(text) == ref.encode(text)
        assert enc.encode_ordinary(text) == ref.encode_ordinary(text)
        assert enc.count(text) == len(ref.encode(text))
    assert enc.encode_batch(["a\ud800b"]) == [ref.encode("a\ud800b")]


def test_registry() -> None:
    assert ferrotok.list_encoding_names() == NAMES
    assert ferrotok.get_encoding("cl100k_base") is ferrotok.get_encoding("cl100k_base")
    assert ferrotok.encoding_for_model("gpt-4o").name == "o200k_base"


def test_model_table_equals_tiktoken() -> None:
    import tiktoken.model as tm

    for model, expected in tm.MODEL_TO_ENCODING.items():
        assert ferrotok.encoding_name_for_model(model) == expected
    for prefix, expected in tm.MODEL_PREFIX_TO_ENCODING.items():
        assert ferrotok.encoding_name_for_model(prefix + "x-2099") == tm.encoding_name_for_model(prefix + "x-2099") == expected
    assert ferrotok.model.MODEL_TO_ENCODING == tm.MODEL_TO_ENCODING
    assert ferrotok.model.MODEL_PREFIX_TO_ENCODING == tm.MODEL_PREFIX_TO_ENCODING


def test_custom_encoding_like_tiktoken_readme() -> None:
    """The idiom from tiktoken's README: extend an encoding with new special tokens."""
    base = ferrotok.get_encoding("cl100k_base")
    enc = ferrotok.Encoding(
        name="cl100k_im",
        pat_str=base._pat_str,
        mergeable_ranks=base._mergeable_ranks,
        special_tokens={**base._special_tokens, "<|im_start|>": 100264, "<|im_end|>": 100265},
    )
    ids = enc.encode("<|im_start|>hi<|im_end|>", allowed_special="all")
    assert ids == [100264, 6151, 100265]
    assert enc.name == "cl100k_im"
    assert enc.n_vocab == 100277


# User-supplied split patterns: no hand-written splitter knows them, so they run on the lazy
# DFA (the first five: respellings of built-in patterns and released tokenizers' own) or on
# fancy-regex (the last, whose look-behind the DFA's rewrite refuses).
CUSTOM_PATTERNS = [
    r"\w+|[^\w\s]+|\s+",
    "(?:" + ferrotok.get_encoding("cl100k_base")._pat_str + ")",
    "(?:" + ferrotok.get_encoding("o200k_base")._pat_str + ")",
    "(?:" + ferrotok.get_encoding("gpt2")._pat_str + ")",
    # Falcon's pattern (as llama.cpp lists it).
    r"[\p{P}\$\+<=>\^~\|`]+|'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+|[0-9][0-9][0-9]",
    r"(?<=\s)\p{L}+|\p{L}+|\p{N}+|\s+|[^\s\p{L}\p{N}]+",
]


@pytest.mark.parametrize("pat", CUSTOM_PATTERNS)
def test_custom_patterns_match_tiktoken(pat: str) -> None:
    import tiktoken

    base = ferrotok.get_encoding("cl100k_base")
    enc = ferrotok.Encoding("custom", pat_str=pat, mergeable_ranks=base._mergeable_ranks, special_tokens={})
    ref = tiktoken.Encoding("custom", pat_str=pat, mergeable_ranks=base._mergeable_ranks, special_tokens={})
    texts = [doc["text"] for doc in corpus()] + ["", "   ", "a  \n\n  b \t", "x   ", "don't  WE'LL 1234567 ſ 中文 😀 ١٢٣"]
    for text in texts:
        assert enc.encode_ordinary(text) == ref.encode_ordinary(text), text[:80]


def test_from_tiktoken_file(tmp_path: pytest.TempPathFactory) -> None:
    import base64

    base = ferrotok.get_encoding("r50k_base")
    path = tmp_path / "mine.tiktoken"  # type: ignore[operator]
    path.write_bytes(b"".join(base64.b64encode(t) + b" %d\n" % r for t, r in base._mergeable_ranks.items()))
    enc = ferrotok.Encoding.from_tiktoken_file(path, pat_str=base._pat_str, special_tokens={"<|endoftext|>": 50256})
    assert enc.name == "mine"
    assert enc.encode(SAMPLE, allowed_special="all") == base.encode(SAMPLE, allowed_special="all")
    import gzip

    gz = tmp_path / "mine.tiktoken.gz"  # type: ignore[operator]
    gz.write_bytes(gzip.compress(path.read_bytes()))
    enc2 = ferrotok.Encoding.from_tiktoken_file(str(gz), pat_str=base._pat_str, name="gz")
    assert enc2.encode_ordinary(SAMPLE) == base.encode_ordinary(SAMPLE)


def test_count_matches_encode() -> None:
    enc = ferrotok.get_encoding("o200k_base")
    for doc in corpus()[:50]:
        assert enc.count(doc["text"], disallowed_special=()) == len(enc.encode_ordinary(doc["text"]))
    assert enc.count("<|endoftext|>x", allowed_special="all") == 2

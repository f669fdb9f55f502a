"""Bad input raises a typed exception with a clear message; nothing crashes."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

import ferrotok
from ferrotok import exceptions as ex

PAT = ferrotok.get_encoding("gpt2")._pat_str


def byte_lines(skip: int | None = None) -> list[bytes]:
    return [base64.b64encode(bytes([b])) + b" %d" % b for b in range(256) if b != skip]


def load(tmp_path: Path, lines: list[bytes]) -> ferrotok.Encoding:
    path = tmp_path / "bad.tiktoken"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return ferrotok.Encoding.from_tiktoken_file(path, pat_str=PAT)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([b"!!!! 256"], "line 257: the token is not valid base64"),
        ([b"aGk="], "line 257: expected `<base64 token> <rank>`"),
        ([b"aGk= 256 7"], "line 257: expected `<base64 token> <rank>`"),
        ([b"aGk= minus"], "line 257: the rank is not an integer"),
        ([b"aGk= -3"], "line 257: the rank is not an integer"),
        ([b"YQ== 256"], "line 257: duplicate token (first seen on line 98)"),
        ([b"aGk= 3"], "line 257: duplicate rank (first seen on line 4)"),
        ([b"aGk= 258"], "line 257: ranks must be 0..n without gaps; rank 256 is missing"),
        ([b" 256"], "line 257: expected `<base64 token> <rank>`"),
    ],
)
def test_malformed_rank_files_name_file_and_line(tmp_path: Path, extra: list[bytes], message: str) -> None:
    with pytest.raises(ex.VocabError) as info:
        load(tmp_path, byte_lines() + extra)
    assert message in str(info.value)
    assert "bad.tiktoken" in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, ferrotok.FerrotokError)


def test_missing_single_byte_and_empty_file(tmp_path: Path) -> None:
    lines = byte_lines(skip=200) + [base64.b64encode(b"hi") + b" 200"]
    with pytest.raises(ex.VocabError, match="single-byte token 0xc8 is missing"):
        load(tmp_path, lines)
    with pytest.raises(ex.VocabError, match="holds no tokens"):
        load(tmp_path, [])


def test_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "x.tiktoken.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ex.VocabError, match="corrupt gzip"):
        ferrotok.Encoding.from_tiktoken_file(path, pat_str=PAT)


def test_unreadable_file_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="cannot read") as info:
        ferrotok.Encoding.from_tiktoken_file(tmp_path / "missing.tiktoken", pat_str=PAT)
    assert isinstance(info.value, ex.FileError)


def test_disallowed_special_token_names_token_and_position() -> None:
    enc = ferrotok.get_encoding("cl100k_base")
    with pytest.raises(ex.DisallowedSpecialTokenError) as info:
        enc.encode("héllo <|endofprompt|> <|endoftext|>")
    assert info.value.token == "<|endofprompt|>"
    assert info.value.position == 6
    assert "'<|endofprompt|>'" in str(info.value) or '"<|endofprompt|>"' in str(info.value)
    with pytest.raises(ValueError):
        enc.encode_batch(["fine", "<|endoftext|>"])
    with pytest.raises(ValueError):
        enc.count("<|endoftext|>")
    with pytest.raises(ValueError):
        enc.encode_to_numpy("<|endoftext|>")
    for threads in [1, 2]:
        # The first error in text order, whichever thread meets it first.
        with pytest.raises(ex.DisallowedSpecialTokenError) as info:
            enc.encode_batch_to_numpy(["fine", "<|endofprompt|>", "<|endoftext|>"], num_threads=threads)
        assert info.value.token == "<|endofprompt|>"


def test_unknown_names() -> None:
    with pytest.raises(KeyError) as info:
        ferrotok.get_encoding("cl100k")
    assert "cl100k_base" in str(info.value)  # lists the known names
    with pytest.raises(ValueError):  # tiktoken raises ValueError here
        ferrotok.get_encoding("nope")
    with pytest.raises(KeyError, match="Could not automatically map"):
        ferrotok.encoding_for_model("llama-9")


def test_invalid_token_ids() -> None:
    enc = ferrotok.get_encoding("cl100k_base")
    for bad in [[100256], [300000], [1, 2, 10**9]]:
        with pytest.raises(KeyError, match="invalid token id"):
            enc.decode(bad)
        with pytest.raises(ex.InvalidTokenError):
            enc.decode_bytes(bad)
    with pytest.raises(KeyError):
        enc.decode_single_token_bytes(100256)
    with pytest.raises(OverflowError):
        enc.decode([-1])
    with pytest.raises(KeyError, match="not a single token"):
        enc.encode_single_token("hello world")


def test_wrong_types() -> None:
    enc = ferrotok.get_encoding("cl100k_base")
    with pytest.raises(TypeError, match="text must be str, not bytes"):
        enc.encode(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not int"):
        enc.encode_ordinary(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="list of str, not a single str"):
        enc.encode_batch("abc")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"text\[1\] must be str"):
        enc.encode_ordinary_batch(["a", None])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="list of str, not a single str"):
        enc.encode_batch_to_numpy("abc")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"text\[1\] must be str"):
        enc.encode_batch_to_numpy(["a", b"b"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="expected \"all\""):
        enc.encode("x", allowed_special="everything")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        enc.decode("abc")  # type: ignore[arg-type]


def test_bad_custom_encodings() -> None:
    with pytest.raises(ex.PatternError, match="invalid split pattern"):
        ferrotok.Encoding("x", pat_str="(unclosed", mergeable_ranks={b"a": 0}, special_tokens={})
    with pytest.raises(ex.VocabError, match="explicit_n_vocab"):
        ferrotok.Encoding("x", pat_str=".", mergeable_ranks={b"a": 0}, special_tokens={}, explicit_n_vocab=5)
    with pytest.raises(ex.VocabError, match="already the ordinary token"):
        ferrotok.Encoding("x", pat_str=".", mergeable_ranks={b"a": 0}, special_tokens={"<s>": 0})
    with pytest.raises(ex.VocabError, match="rank 0 is given to two tokens"):
        ferrotok.Encoding("x", pat_str=".", mergeable_ranks={b"a": 0, b"b": 0}, special_tokens={})
    with pytest.raises(TypeError, match="keys must be bytes"):
        ferrotok.Encoding("x", pat_str=".", mergeable_ranks={"a": 0}, special_tokens={})  # type: ignore[dict-item]


def test_vocabulary_without_a_byte_raises_instead_of_panicking() -> None:
    enc = ferrotok.Encoding("x", pat_str=r"\S+|\s+", mergeable_ranks={b"a": 0, b"b": 1, b"ab": 2}, special_tokens={})
    with pytest.raises(ex.EncodeError, match="cannot encode byte 0x20 at byte offset 2"):
        enc.encode("ab a")
    assert enc.encode("abab") == [2, 2]


def test_catastrophic_user_pattern_fails_cleanly() -> None:
    base = ferrotok.get_encoding("gpt2")
    enc = ferrotok.Encoding("evil", pat_str=r"b|(a|a)*\1(?=b)", mergeable_ranks=base._mergeable_ranks, special_tokens={})
    with pytest.raises(ex.PatternError, match="backtracking limit searching from byte 1"):
        enc.encode("b " + "a" * 5000 + "c")

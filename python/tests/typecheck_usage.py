"""Type-checked by mypy in CI (not run by pytest): typical tiktoken-style usage."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

import ferrotok

enc: ferrotok.Encoding = ferrotok.get_encoding("o200k_base")
ids: list[int] = enc.encode("hello", allowed_special="all", disallowed_special=())
ids2: list[int] = enc.encode("hello", allowed_special={"<|endoftext|>"})
text: str = enc.decode(ids)
raw: bytes = enc.decode_bytes(ids)
arr: npt.NDArray[np.uint32] = enc.encode_to_numpy("hello")
batch: list[list[int]] = enc.encode_batch(["a", "b"], num_threads=2)
n: int = enc.count("hello") + sum(enc.count_batch(["a"]))
pair: tuple[str, list[int]] = enc.decode_with_offsets(ids)
name: str = ferrotok.encoding_name_for_model("gpt-4o")
names: list[str] = ferrotok.list_encoding_names()
try:
    enc.encode("<|endoftext|>")
except ferrotok.DisallowedSpecialTokenError as e:
    where: int = e.position


def corpus_job(paths: list[str]) -> int:
    from ferrotok.data import TokenizeSummary, tokenize_files

    summary: TokenizeSummary = tokenize_files(paths, enc, "out/train", format="megatron", append_eot=True, shard=(0, 2))
    try:
        tokenize_files(paths, "cl100k_base", "out/train", on_invalid="skip")
    except ferrotok.ResumeError as e:
        print(e)
    return summary["tokens"]


def hf_and_sentencepiece(path: str) -> list[int]:
    tok = ferrotok.Tokenizer.from_file(path)
    sp = ferrotok.Tokenizer.from_sentencepiece("tokenizer.model", add_bos=True)
    enc2: ferrotok.TokenizerEncoding = sp.encode("hello", add_special_tokens=False)
    first: str = sp.decode(enc2.ids)
    return tok.encode(first).ids + [sp.count("x")]

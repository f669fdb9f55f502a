"""One adapter per library: how to build it from the same local files, and how to call it.

Each `build_*` returns an `Adapter` or raises; a library that fails to install or load is
reported as unavailable, not hidden.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "crates" / "ferrotok" / "data"
SHARED = Path(os.environ.get("FERROTOK_SHARED", ROOT.parent / "shared"))

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_SPECIALS = {"<|begin_of_text|>": 128000, "<|end_of_text|>": 128001}

Encode = Callable[[str], Any]
Batch = Callable[[list[str], int], Any]


@dataclass
class Adapter:
    library: str
    version: str
    encode_list: Encode
    encode_numpy: Optional[Encode] = None
    encode_batch: Optional[Batch] = None
    # A whole batch as flat output (the library's own form), and how to cut that output into
    # one id array per document (for the agreement check, outside the timing).
    encode_flat: Optional[Batch] = None
    split_flat: Optional[Callable[[Any], list[Any]]] = None


def encoding_spec(name: str) -> dict[str, Any]:
    """Rank file, pattern and special tokens of a benchmark encoding."""
    if name == "llama3":
        return {
            "ranks": SHARED / "vocab" / "openai" / "llama3.tiktoken",
            "pat_str": LLAMA3_PATTERN,
            "special_tokens": LLAMA3_SPECIALS,
        }
    d = json.loads((DATA / "encodings.json").read_text(encoding="utf-8"))[name]
    return {"ranks": DATA / f"{d['ranks']}.tiktoken", "pat_str": d["pat_str"], "special_tokens": d["special_tokens"]}


def _version(module: str) -> str:
    from importlib.metadata import version

    try:
        return version(module)
    except Exception:
        return "?"


def build_ferrotok(name: str) -> Adapter:
    import ferrotok

    if name == "llama3":
        s = encoding_spec(name)
        enc = ferrotok.Encoding.from_tiktoken_file(s["ranks"], pat_str=s["pat_str"], special_tokens=s["special_tokens"], name="llama3")
    else:
        enc = ferrotok.get_encoding(name)
    return Adapter(
        "ferrotok",
        ferrotok.__version__,
        enc.encode_ordinary,
        lambda t: enc.encode_to_numpy(t, disallowed_special=()),
        lambda ts, n: enc.encode_ordinary_batch(ts, num_threads=n),
        lambda ts, n: enc.encode_batch_to_numpy(ts, num_threads=n, disallowed_special=()),
        _split_offsets,
    )


def _split_offsets(out: Any) -> list[Any]:
    """(flat ids, n + 1 offsets) → one array per document."""
    import numpy as np

    ids, offsets = (np.frombuffer(x, dt) if isinstance(x, bytes) else x for x, dt in zip(out, (np.uint32, np.uint64)))
    return [ids[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


def build_tiktoken(name: str) -> Adapter:
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    s = encoding_spec(name)
    enc = tiktoken.Encoding(name, pat_str=s["pat_str"], mergeable_ranks=load_tiktoken_bpe(str(s["ranks"])), special_tokens=s["special_tokens"])
    return Adapter(
        "tiktoken",
        _version("tiktoken"),
        enc.encode_ordinary,
        lambda t: enc.encode_to_numpy(t, disallowed_special=()),
        lambda ts, n: enc.encode_ordinary_batch(ts, num_threads=n),
    )


_GIGA_SCHEME = {"gpt2": "gpt2", "r50k_base": "r50k", "cl100k_base": "cl100k", "o200k_base": "o200k"}


def build_gigatoken(name: str) -> Adapter:
    import gigatoken

    s = encoding_spec(name)
    if name == "llama3":  # Llama 3's own tokenizer.json (gigatoken has no Llama 3 scheme for .tiktoken)
        tok = gigatoken.Tokenizer(str(SHARED / "vocab" / "hf" / "llama3.tokenizer.json"))
    else:
        tok = gigatoken.Tokenizer.from_tiktoken(str(s["ranks"]), pretokenizer=_GIGA_SCHEME[name])
    tk = tok.as_tiktoken()
    return Adapter(
        "gigatoken",
        _version("gigatoken"),
        tk.encode_ordinary,
        tok.encode,
        lambda ts, n: tok.encode_batch_list(ts),
        # An awkward array: one flat buffer of ids and the offsets of each document's.
        lambda ts, n: tok.encode_batch(ts, parallel=n > 1),
        lambda out: list(out),
    )


def build_fastokens(name: str) -> Adapter:
    import fastokens

    s = encoding_spec(name)
    if name == "llama3":  # its .tiktoken file does not load in fastokens; its tokenizer.json does
        tok = fastokens.Tokenizer.from_file(str(SHARED / "vocab" / "hf" / "llama3.tokenizer.json"))
    elif name in ("cl100k_base", "o200k_base"):
        tok = fastokens.Tokenizer.from_tiktoken(str(s["ranks"]), encoding=name)
    else:
        tok = fastokens.Tokenizer.from_tiktoken(str(s["ranks"]), pattern=s["pat_str"], special_tokens=s["special_tokens"])

    def batch(ts: list[str], n: int) -> Any:
        import numpy as np

        ids, offsets = tok.encode_batch_flat(ts)
        ids, offsets = np.frombuffer(ids, np.uint32), np.frombuffer(offsets, np.uint64)
        return [ids[offsets[i] : offsets[i + 1]].tolist() for i in range(len(ts))]

    return Adapter(
        "fastokens",
        _version("fastokens"),
        lambda t: tok.encode_ordinary(t).ids,
        None,
        batch,
        lambda ts, n: tok.encode_batch_flat(ts),  # (ids, offsets) as bytes
        _split_offsets,
    )


def build_bpe_openai(name: str) -> Adapter:
    import bpe_openai

    if name not in bpe_openai.list_encoding_names():
        raise RuntimeError(f"bpe-openai has no {name}")
    enc = bpe_openai.get_encoding(name)
    return Adapter("bpe-openai", _version("bpe-openai"), enc.encode_ordinary)


def build_kitoken(name: str) -> Adapter:
    import kitoken

    s = encoding_spec(name)
    if name == "llama3":
        k = kitoken.Kitoken.from_tokenizers_file(str(SHARED / "vocab" / "hf" / "llama3.tokenizer.json"))
    elif name in ("cl100k_base", "o200k_base"):
        k = kitoken.Kitoken.from_tiktoken_file(str(s["ranks"]))
    else:
        raise RuntimeError("kitoken recognises only the cl100k/o200k .tiktoken files")
    return Adapter("kitoken", _version("kitoken"), lambda t: k.encode(t, False))


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def build_tokenizers(name: str) -> Adapter:
    """Hugging Face `tokenizers`: Llama 3's own tokenizer.json, or the others converted from
    their ranks the way `transformers` converts tiktoken files (merges from split points)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    if name == "llama3":
        tok = Tokenizer.from_file(str(SHARED / "vocab" / "hf" / "llama3.tokenizer.json"))
        return Adapter("tokenizers", _version("tokenizers"), lambda t: tok.encode(t, add_special_tokens=False).ids,
                       None, lambda ts, n: [e.ids for e in tok.encode_batch(ts, add_special_tokens=False)])
    from tiktoken.load import load_tiktoken_bpe

    s = encoding_spec(name)
    ranks = load_tiktoken_bpe(str(s["ranks"]))
    b2u = _bytes_to_unicode()
    enc = lambda b: "".join(b2u[x] for x in b)  # noqa: E731
    vocab = {enc(t): r for t, r in ranks.items()}
    merges = []
    for token, rank in ranks.items():
        if len(token) < 2:
            continue
        for i in range(1, len(token)):
            left, right = token[:i], token[i:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], ranks[right], enc(left), enc(right)))
    merges.sort()
    model = models.BPE(vocab=vocab, merges=[(m[3], m[4]) for m in merges], ignore_merges=True)
    tok = Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(s["pat_str"]), behavior="isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    tok.decoder = decoders.ByteLevel()
    return Adapter("tokenizers", _version("tokenizers"), lambda t: tok.encode(t, add_special_tokens=False).ids,
                   None, lambda ts, n: [e.ids for e in tok.encode_batch(ts, add_special_tokens=False)])


BUILDERS: dict[str, Callable[[str], Adapter]] = {
    "ferrotok": build_ferrotok,
    "tiktoken": build_tiktoken,
    "gigatoken": build_gigatoken,
    "fastokens": build_fastokens,
    "bpe-openai": build_bpe_openai,
    "kitoken": build_kitoken,
    "tokenizers": build_tokenizers,
}

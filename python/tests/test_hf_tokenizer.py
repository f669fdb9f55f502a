"""`ferrotok.Tokenizer` against Hugging Face `tokenizers` on real text: the Llama 3 and Qwen3
files from ../shared when present, and a zoo of byte-level BPE `tokenizer.json` files built here
with `tokenizers` itself (its trainer, normalizers, pre-tokenizers, post-processors, decoders)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import tokenizers
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

import ferrotok
from conftest import SHARED, TESTDATA, corpus

LLAMA3_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN_SPLIT = LLAMA3_SPLIT.replace(r"\p{N}{1,3}", r"\p{N}")


def texts() -> list[str]:
    return [d["text"] for d in corpus()]


def assert_same(ref: tokenizers.Tokenizer, mine: ferrotok.Tokenizer, docs: list[str]) -> None:
    for add in (True, False):
        got = [e.ids for e in mine.encode_batch(docs, add_special_tokens=add)]
        exp = [e.ids for e in ref.encode_batch(docs, add_special_tokens=add)]
        bad = [i for i, (a, b) in enumerate(zip(exp, got)) if a != b]
        assert not bad, f"{len(bad)} documents differ (add_special_tokens={add}), first: {docs[bad[0]][:80]!r}"
    for d in docs[:40]:
        enc = ref.encode(d)
        assert mine.encode(d).tokens == enc.tokens
        for skip in (True, False):
            assert mine.decode(enc.ids, skip_special_tokens=skip) == ref.decode(enc.ids, skip_special_tokens=skip)


def train(pre: Any, *, normalizer: Any = None, post: Any = None, specials: list[str] | None = None, vocab_size: int = 2000, **bpe: Any) -> tokenizers.Tokenizer:
    tok = tokenizers.Tokenizer(models.BPE(**bpe))
    tok.pre_tokenizer = pre
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials or [],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts(), trainer=trainer)
    if post is not None:
        tok.post_processor = post
    return tok


def zoo() -> dict[str, tokenizers.Tokenizer]:
    split = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(tokenizers.Regex(LLAMA3_SPLIT), behavior="isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    qwen = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(tokenizers.Regex(QWEN_SPLIT), behavior="isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    out = {
        "llama3-style": train(split, specials=["<|begin_of_text|>", "<|end_of_text|>"], ignore_merges=True),
        "qwen-style-nfc": train(qwen, normalizer=normalizers.NFC(), specials=["<|endoftext|>", "<|im_start|>"]),
        "gpt2-style": train(pre_tokenizers.ByteLevel(add_prefix_space=False), specials=["<|endoftext|>"]),
        "roberta-prefix-space": train(pre_tokenizers.ByteLevel(add_prefix_space=True), normalizer=normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()]), specials=["<s>", "</s>"]),
        "nfd-literal-split": train(
            pre_tokenizers.Sequence([pre_tokenizers.Split(" ", behavior="isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
            normalizer=normalizers.NFD(),
        ),
        "nfkd-small": train(pre_tokenizers.ByteLevel(add_prefix_space=False), normalizer=normalizers.NFKD(), vocab_size=300),
    }
    t = out["llama3-style"]
    t.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", t.token_to_id("<|begin_of_text|>"))]),
        ]
    )
    return out


@pytest.fixture(scope="module")
def zoo_files() -> dict[str, tokenizers.Tokenizer]:
    return zoo()


@pytest.mark.parametrize("name", ["llama3-style", "qwen-style-nfc", "gpt2-style", "roberta-prefix-space", "nfd-literal-split", "nfkd-small"])
def test_zoo_matches_tokenizers_on_the_corpus(zoo_files: dict[str, tokenizers.Tokenizer], name: str) -> None:
    ref = zoo_files[name]
    mine = ferrotok.Tokenizer.from_str(ref.to_str())
    docs = texts() + ["", " ", "<|begin_of_text|>hi<|end_of_text|>", "a<|endoftext|>b<|im_start|>", "x" * 3000, "Ünïcödé ﬁ ①"]
    assert_same(ref, mine, docs)
    assert mine.get_vocab_size() == ref.get_vocab_size()
    assert mine.get_vocab() == ref.get_vocab()
    assert mine.get_vocab(with_added_tokens=False) == ref.get_vocab(with_added_tokens=False)


@pytest.mark.parametrize("slots", ["0", "2", ""])
def test_piece_cache_size_never_changes_ids(zoo_files: dict[str, tokenizers.Tokenizer], slots: str, tmp_path: Path) -> None:
    """The byte-level and WordPiece paths keep pieces in the tiktoken engine's per-thread
    tables (short, general, long): off (0 slots), thrashing (2) or at the default (""), every
    text encoded twice (the second time from the cache) gives `tokenizers`' ids."""
    import os
    import random
    import subprocess
    import sys

    rng = random.Random(11)
    # Pieces over 16 bytes (general table), over 256 (long table), runs and blobs.
    long_pieces = [" " * 300, "=" * 5000, "ab" * 400, "\u4e2d" * 700, "-" * 2999, "supercalifragilistic" * 3]
    long_pieces.append("".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=3000)))
    long_pieces.append(" ".join("".join(rng.choices("0123456789abcdef", k=40)) for _ in range(30)))
    docs = texts() + long_pieces + long_pieces[::-1]
    refs = {"llama3-style": zoo_files["llama3-style"], "gpt2-style": zoo_files["gpt2-style"], "bert": tokenizers.Tokenizer.from_file(str(BERT))}
    for name, ref in refs.items():
        ref.no_padding()
        ref.no_truncation()
        ref.save(str(tmp_path / f"{name}.json"))
    code = (
        "import ferrotok, json, sys\n"
        "docs, paths = json.load(sys.stdin)\n"
        "out = []\n"
        "for p in paths:\n"
        "    tok = ferrotok.Tokenizer.from_file(p)\n"
        "    out.append([tok.encode(d).ids for d in docs] + [tok.encode(d).ids for d in docs])\n"
        "json.dump(out, sys.stdout)\n"
    )
    paths = [str(tmp_path / f"{name}.json") for name in refs]
    env = {**os.environ, "FERROTOK_CACHE_SLOTS": slots}
    run = subprocess.run([sys.executable, "-c", code], input=json.dumps([docs, paths]).encode(), env=env, capture_output=True, check=True)
    got = json.loads(run.stdout)
    for (name, ref), ids in zip(refs.items(), got):
        expected = [e.ids for e in ref.encode_batch(docs)] * 2
        bad = [i for i, (a, b) in enumerate(zip(expected, ids)) if a != b]
        assert not bad, f"{name}: {len(bad)} of {len(ids)} differ, first: {(docs * 2)[bad[0]][:60]!r}"


@pytest.mark.parametrize("name", ["llama3", "qwen3"])
def test_real_files_match_tokenizers(name: str, request: pytest.FixtureRequest) -> None:
    path = SHARED / "vocab" / "hf" / f"{name}.tokenizer.json"
    if not path.exists():
        pytest.skip("needs ../shared/vocab/hf (not shipped with the tests)")
    ref = tokenizers.Tokenizer.from_file(str(path))
    mine = ferrotok.Tokenizer.from_file(path)
    docs = texts()
    if request.config.getoption("--full-corpus"):
        from conftest import read_jsonl

        docs = [d["text"] for f in sorted((SHARED / "corpus").glob("*.jsonl")) for d in read_jsonl(f)]
    assert_same(ref, mine, docs)
    assert mine.token_to_id("<|endoftext|>") == ref.token_to_id("<|endoftext|>")
    assert mine.id_to_token(1000) == ref.id_to_token(1000)


def test_pickle_threads_and_api(zoo_files: dict[str, tokenizers.Tokenizer]) -> None:
    mine = ferrotok.Tokenizer.from_str(zoo_files["gpt2-style"].to_str())
    again = pickle.loads(pickle.dumps(mine))
    assert again.encode("hello world").ids == mine.encode("hello world").ids
    assert json.loads(mine.to_str()) == json.loads(zoo_files["gpt2-style"].to_str())
    e = mine.encode("hello world")
    assert len(e) == len(e.ids) == mine.count("hello world") and e.attention_mask == [1] * len(e)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda t: mine.encode(t).ids, texts()))
    assert results == [mine.encode(t).ids for t in texts()]
    assert ferrotok.Tokenizer.from_buffer(mine.to_str().encode()).encode("x").ids == mine.encode("x").ids


def test_unsupported_components_fail_loudly(tmp_path: Path) -> None:
    tok = tokenizers.Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    data = json.loads(tok.to_str())
    data["pre_tokenizer"] = {"type": "NoSuchPreTokenizer"}
    with pytest.raises(ferrotok.UnsupportedError, match="pre-tokenizer NoSuchPreTokenizer"):
        ferrotok.Tokenizer.from_str(json.dumps(data))
    with pytest.raises(ferrotok.VocabError, match="not JSON"):
        ferrotok.Tokenizer.from_str("{")
    with pytest.raises(ferrotok.FileError):
        ferrotok.Tokenizer.from_file(tmp_path / "missing.json")
    bpe = train(pre_tokenizers.ByteLevel(add_prefix_space=False), vocab_size=300)
    data = json.loads(bpe.to_str())
    data["normalizer"] = {"type": "Replace", "pattern": {"Regex": "(unclosed"}, "content": "b"}
    with pytest.raises(ferrotok.PatternError):
        ferrotok.Tokenizer.from_str(json.dumps(data))
    data["normalizer"] = {"type": "Precompiled", "precompiled_charsmap": "not base64!"}
    with pytest.raises(ferrotok.VocabError, match=r"\$\.normalizer: precompiled_charsmap is not base64"):
        ferrotok.Tokenizer.from_str(json.dumps(data))
    data["normalizer"] = {"type": "Precompiled", "precompiled_charsmap": "AAAA"}
    with pytest.raises(ferrotok.VocabError, match="character map is too short"):
        ferrotok.Tokenizer.from_str(json.dumps(data))
    data["normalizer"] = None
    data["pre_tokenizer"] = {"type": "FixedLength", "length": 0}
    with pytest.raises(ferrotok.VocabError, match="length 0"):
        ferrotok.Tokenizer.from_str(json.dumps(data))
    data["pre_tokenizer"] = {"type": "Metaspace", "replacement": "ab"}
    with pytest.raises(ferrotok.VocabError, match="not one character"):
        ferrotok.Tokenizer.from_str(json.dumps(data))
    data["pre_tokenizer"] = {"type": "Split", "pattern": {"String": "a"}, "behavior": "Sideways"}
    with pytest.raises(ferrotok.VocabError, match="unknown behavior"):
        ferrotok.Tokenizer.from_str(json.dumps(data))
    data["pre_tokenizer"] = bpe_pre = json.loads(bpe.to_str())["pre_tokenizer"]
    assert bpe_pre is not None
    data["model"]["merges"][0] = "nope nothere"
    with pytest.raises(ferrotok.VocabError, match=r"merges\[0\].*not in the vocabulary"):
        ferrotok.Tokenizer.from_str(json.dumps(data))
    with pytest.raises(ferrotok.InvalidTokenError):
        bpe2 = ferrotok.Tokenizer.from_str(bpe.to_str())
        bpe2.decode([10**6])


def test_tokenize_job_with_a_tokenizer_json(tmp_path: Path, zoo_files: dict[str, tokenizers.Tokenizer]) -> None:
    import subprocess
    import sys

    import numpy as np

    from ferrotok.data import tokenize_files

    ref = zoo_files["qwen-style-nfc"]
    path = tmp_path / "tokenizer.json"
    ref.save(str(path))
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts()), encoding="utf-8")
    eot = ref.token_to_id("<|endoftext|>")
    exp = [i for t in texts() for i in ref.encode(t, add_special_tokens=False).ids + [eot]]
    subprocess.run([sys.executable, "-m", "ferrotok", "tokenize", str(src), "-t", str(path), "-o", str(tmp_path / "cli"), "--append-eot"], check=True, capture_output=True)
    assert np.fromfile(tmp_path / "cli.bin", dtype=np.uint16).tolist() == exp
    s = tokenize_files(src, ferrotok.Tokenizer.from_file(path), tmp_path / "py", format="npy", append_eot=True)
    assert np.load(tmp_path / "py.npy").tolist() == exp and s["documents"] == len(texts())


BERT = Path(__file__).resolve().parents[2] / "testdata" / "hf" / "bert-uncased-minilm.tokenizer.json"


def test_bert_seed_example() -> None:
    tok = ferrotok.Tokenizer.from_file(BERT)
    tok_ref = tokenizers.Tokenizer.from_file(str(BERT))
    tok_ref.no_padding()
    enc = tok.encode("Hello, y'all! How are you 😁 ?")
    real = [t for t, m in zip(enc.tokens, enc.attention_mask) if m]
    assert real == ["[CLS]", "hello", ",", "y", "'", "all", "!", "how", "are", "you", "[UNK]", "?", "[SEP]"]
    assert len(enc) == 128 and enc.attention_mask == [1] * 13 + [0] * 115  # the file pads to 128
    assert enc.ids[:13] == tok_ref.encode("Hello, y'all! How are you 😁 ?").ids
    assert tok.decode(enc.ids) == tok_ref.decode(enc.ids) == "hello, y ' all! how are you?"


def test_bert_file_matches_tokenizers_with_its_truncation_and_padding(request: pytest.FixtureRequest) -> None:
    ref = tokenizers.Tokenizer.from_file(str(BERT))
    mine = ferrotok.Tokenizer.from_file(BERT)
    docs = texts()
    if request.config.getoption("--full-corpus") and (SHARED / "corpus").exists():
        from conftest import read_jsonl

        docs = [d["text"] for f in sorted((SHARED / "corpus").glob("*.jsonl")) for d in read_jsonl(f)]
    assert_same(ref, mine, docs)
    for d in docs[:30]:
        assert mine.encode(d).attention_mask == ref.encode(d).attention_mask
    # Without the file's truncation and padding: whole documents.
    ref.no_truncation()
    ref.no_padding()
    assert [mine.count(d) for d in docs] == [len(ref.encode(d).ids) for d in docs]


def wordpiece_zoo() -> dict[str, tokenizers.Tokenizer]:
    base = tokenizers.Tokenizer.from_file(str(BERT))
    vocab = base.get_vocab(with_added_tokens=False)
    out = {}
    variants: dict[str, tuple[Any, Any, Any]] = {
        "cased-no-chinese": (normalizers.BertNormalizer(lowercase=False, handle_chinese_chars=False), pre_tokenizers.BertPreTokenizer(), decoders.WordPiece()),
        "accents-kept": (normalizers.BertNormalizer(lowercase=True, strip_accents=False), pre_tokenizers.BertPreTokenizer(), decoders.WordPiece(cleanup=False)),
        "sequence-whitespace": (normalizers.Sequence([normalizers.NFD(), normalizers.Lowercase(), normalizers.StripAccents()]), pre_tokenizers.BertPreTokenizer(), decoders.WordPiece()),
        "whitespace-split-no-decoder": (normalizers.BertNormalizer(clean_text=False), pre_tokenizers.WhitespaceSplit(), None),
    }
    for name, (norm, pre, dec) in variants.items():
        t = tokenizers.Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=20))
        t.normalizer = norm
        t.pre_tokenizer = pre
        if dec is not None:
            t.decoder = dec
        t.add_special_tokens(["[CLS]", "[SEP]", "[PAD]"])
        t.post_processor = processors.BertProcessing(("[SEP]", vocab["[SEP]"]), ("[CLS]", vocab["[CLS]"])) if name == "accents-kept" else processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
        )
        out[name] = t
    out["sequence-whitespace"].enable_padding(pad_id=vocab["[PAD]"], pad_to_multiple_of=8)
    out["cased-no-chinese"].enable_truncation(max_length=40)
    return out


@pytest.mark.parametrize("name", ["cased-no-chinese", "accents-kept", "sequence-whitespace", "whitespace-split-no-decoder"])
def test_wordpiece_zoo_matches_tokenizers(name: str) -> None:
    ref = wordpiece_zoo()[name]
    try:
        mine = ferrotok.Tokenizer.from_str(ref.to_str())
    except ferrotok.UnsupportedError as e:
        pytest.fail(f"{name}: {e}")
    assert_same(ref, mine, texts() + ["", "Ünïcödé ﬁ ① naïve café 中文字 DON'T do not", "a" * 30 + " b"])


def test_padding_and_truncation_setters_match_tokenizers() -> None:
    path = TESTDATA / "hf" / "bert-uncased-minilm.tokenizer.json"
    ref = tokenizers.Tokenizer.from_file(str(path))
    mine = ferrotok.Tokenizer.from_file(path)
    docs = texts()[:60] + ["", "short", "a b c d e f g h i j k l m n o p q r s t u v w x y z"]

    # Short pairs: with truncation `tokenizers` builds every overflowing piece, slow on long texts.
    pairs = [(a[:400], b[:300]) for a, b in zip(docs[:20], docs[20:40])] + [("", "x y z"), ("a b c d e f", "")]
    fields = ("ids", "attention_mask", "type_ids", "special_tokens_mask", "sequence_ids", "word_ids", "n_sequences")

    def check(r: Any, m: Any) -> None:
        for f in fields:
            assert getattr(m, f) == getattr(r, f), f

    def same() -> None:
        for r, m in zip(ref.encode_batch(docs), mine.encode_batch(docs)):
            check(r, m)
        for r, m in zip(ref.encode_batch(pairs), mine.encode_batch(pairs)):
            check(r, m)
        for d in docs[:10]:
            r, m = ref.encode(d), mine.encode(d)
            check(r, m)
            assert m.tokens == r.tokens
        for a, b in pairs[:10]:
            for special in (True, False):
                check(ref.encode(a, b, add_special_tokens=special), mine.encode(a, b, add_special_tokens=special))

    assert mine.truncation is not None and mine.truncation["max_length"] == ref.truncation["max_length"]
    assert mine.padding is not None and mine.padding["length"] == ref.padding["length"]
    same()
    for change in [
        lambda t: t.no_padding(),
        lambda t: t.enable_truncation(16),
        lambda t: t.enable_padding(pad_id=0, pad_token="[PAD]"),
        lambda t: t.enable_padding(pad_id=0, pad_token="[PAD]", pad_to_multiple_of=8),
        lambda t: t.enable_padding(pad_id=0, pad_token="[PAD]", length=40),
        lambda t: t.enable_truncation(16, direction="left"),
        lambda t: t.enable_truncation(3),
        lambda t: t.enable_truncation(1),
        lambda t: t.enable_padding(pad_id=7, pad_type_id=2, direction="left", pad_to_multiple_of=8),
        lambda t: t.enable_truncation(24, strategy="longest_first", direction="left"),
        lambda t: t.no_truncation(),
        lambda t: t.no_padding(),
    ]:
        change(ref)
        change(mine)
        same()
        for key in ("max_length", "stride", "direction", "strategy"):
            assert (mine.truncation or {}).get(key) == (ref.truncation or {}).get(key)
        for key in ("length", "pad_to_multiple_of", "pad_id", "pad_token", "pad_type_id", "direction"):
            assert (mine.padding or {}).get(key) == (ref.padding or {}).get(key)
    assert mine.truncation is None and mine.padding is None
    with pytest.raises(ValueError, match="stride"):
        mine.enable_truncation(8, stride=8)
    with pytest.raises(ValueError, match="direction"):
        mine.enable_padding(direction="up")
    with pytest.raises(ValueError, match="strategy"):
        mine.enable_truncation(8, strategy="shortest_first")


def test_pair_truncation_strategies_and_their_errors_match_tokenizers() -> None:
    ref = tokenizers.Tokenizer.from_file(str(TESTDATA / "hf" / "bert-uncased-minilm.tokenizer.json"))
    mine = ferrotok.Tokenizer.from_file(TESTDATA / "hf" / "bert-uncased-minilm.tokenizer.json")
    ref.no_padding()
    mine.no_padding()
    cases = [("one two three four five", "six seven eight"), ("a b", "c d e f g h i j k l"), ("x", ""), ("", "")]
    for strategy in ("longest_first", "only_first", "only_second"):
        for direction in ("right", "left"):
            for max_length in (0, 1, 2, 3, 4, 5, 6, 8, 11, 30):
                ref.enable_truncation(max_length, strategy=strategy, direction=direction)
                mine.enable_truncation(max_length, strategy=strategy, direction=direction)
                for a, b in cases:
                    for pair in (b, None):
                        try:
                            want = ref.encode(a, pair)
                        except Exception as e:
                            # tokenizers' messages: "Second sequence not provided", "Sequence to
                            # truncate too short to respect the provided max_length".
                            words = "not provided" if "not provided" in str(e) else "too short"
                            with pytest.raises(ferrotok.EncodeError, match=words):
                                mine.encode(a, pair)
                            continue
                        got = mine.encode(a, pair)
                        assert (got.ids, got.type_ids, got.sequence_ids) == (want.ids, want.type_ids, want.sequence_ids), (
                            strategy,
                            direction,
                            max_length,
                            a,
                            pair,
                        )


def test_changing_settings_does_not_disturb_calls_in_flight() -> None:
    import threading

    mine = ferrotok.Tokenizer.from_file(TESTDATA / "hf" / "bert-uncased-minilm.tokenizer.json")
    mine.no_padding()
    mine.no_truncation()
    docs = [d for d in texts() if len(mine.encode(d)) > 12] * 10
    mine.enable_truncation(8)
    calls: list[set[int]] = []

    def work() -> None:
        for _ in range(20):
            calls.append({len(e) for e in mine.encode_batch(docs)})

    t = threading.Thread(target=work)
    t.start()
    i = 0
    while t.is_alive():
        mine.enable_truncation(8 + i % 5)
        i += 1
    t.join()
    # Every long document reaches the cap, and each call used one cap throughout.
    assert len(calls) == 20 and all(len(c) == 1 and c <= {8, 9, 10, 11, 12} for c in calls), calls
    assert i > 0


@pytest.mark.parametrize("lowercase", [True, False])
def test_wordpiece_vocab_txt_matches_bert_wordpiece_tokenizer(lowercase: bool, tmp_path: Path) -> None:
    from tokenizers.implementations import BertWordPieceTokenizer

    vocab = TESTDATA / "hf" / "bert-uncased-minilm.vocab.txt"
    ref = BertWordPieceTokenizer(str(vocab), lowercase=lowercase)
    mine = ferrotok.Tokenizer.from_wordpiece_vocab(vocab, lowercase=lowercase)
    docs = texts()[:120] + ["Hello, y'all! How are you 😁 ?", "[CLS] [MASK] x [SEP]", "", "naïve café ＡＢＣ"]
    for d in docs:
        r, m = ref.encode(d), mine.encode(d)
        assert m.ids == r.ids and m.tokens == r.tokens, d[:80]
        assert mine.decode(m.ids) == ref.decode(r.ids)
        assert mine.encode(d, add_special_tokens=False).ids == ref.encode(d, add_special_tokens=False).ids
    assert mine.get_vocab() == ref.get_vocab()
    assert pickle.loads(pickle.dumps(mine)).encode("hello world").ids == mine.encode("hello world").ids
    bad = tmp_path / "vocab.txt"
    bad.write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(ferrotok.VocabError, match=r"\[SEP\]"):
        ferrotok.Tokenizer.from_wordpiece_vocab(bad)
    with pytest.raises(ferrotok.FileError):
        ferrotok.Tokenizer.from_wordpiece_vocab(tmp_path / "missing.txt")


def test_pickle_keeps_padding_and_truncation_changed_after_loading() -> None:
    mine = ferrotok.Tokenizer.from_file(TESTDATA / "hf" / "bert-uncased-minilm.tokenizer.json")
    mine.enable_truncation(10)
    mine.enable_padding(pad_id=0, pad_token="[PAD]", pad_to_multiple_of=4)
    again = pickle.loads(pickle.dumps(mine))
    assert again.truncation == mine.truncation and again.padding == mine.padding
    docs = texts()[:20]
    assert [e.ids for e in again.encode_batch(docs)] == [e.ids for e in mine.encode_batch(docs)]
    mine.no_padding()
    mine.no_truncation()
    again = pickle.loads(pickle.dumps(mine))
    assert again.truncation is None and again.padding is None


def test_add_tokens_and_add_special_tokens_match_tokenizers(zoo_files: dict[str, tokenizers.Tokenizer]) -> None:
    json_text = zoo_files["gpt2-style"].to_str()
    ref = tokenizers.Tokenizer.from_str(json_text)
    mine = ferrotok.Tokenizer.from_str(json_text)
    for t in (ref, mine):
        assert t.add_tokens(["hello", "<|mine|>", "", "zzqx"]) == 3
        assert t.add_special_tokens(["<|sp|>", "hello", "<|mine|>"]) == 3  # two re-added as special
        assert t.add_special_tokens(["<|sp|>"]) == 0
    docs = [d + " <|mine|>hello zzqx<|sp|>" for d in texts()[:40]] + ["<|sp|><|sp|>", "hellohello"]
    for d in docs:
        assert mine.encode(d).ids == ref.encode(d).ids
        ids = ref.encode(d).ids
        assert mine.decode(ids) == ref.decode(ids)
        assert mine.decode(ids, skip_special_tokens=False) == ref.decode(ids, skip_special_tokens=False)
    assert mine.get_vocab() == ref.get_vocab()
    assert mine.get_vocab_size() == ref.get_vocab_size()
    again = pickle.loads(pickle.dumps(mine))
    assert again.encode(docs[0]).ids == mine.encode(docs[0]).ids
    bert = ferrotok.Tokenizer.from_file(TESTDATA / "hf" / "bert-uncased-minilm.tokenizer.json")
    before = bert.encode("hello <ent> world").ids
    with pytest.raises(ferrotok.UnsupportedError, match="normalization"):
        bert.add_tokens(["foo"])
    assert bert.encode("hello <ent> world").ids == before  # a refused change leaves it as it was
    assert bert.add_special_tokens(["<ent>"]) == 1
    bert_ref = tokenizers.Tokenizer.from_file(str(TESTDATA / "hf" / "bert-uncased-minilm.tokenizer.json"))
    bert_ref.add_special_tokens(["<ent>"])
    assert bert.encode("hello <ent> world").ids == bert_ref.encode("hello <ent> world").ids


def test_encode_takes_tokenizers_arguments() -> None:
    ref = tokenizers.Tokenizer.from_file(str(TESTDATA / "hf" / "bert-uncased-minilm.tokenizer.json"))
    mine = ferrotok.Tokenizer.from_file(TESTDATA / "hf" / "bert-uncased-minilm.tokenizer.json")
    for r, m in [
        (ref.encode("a b", pair="c d"), mine.encode("a b", pair="c d")),
        (ref.encode(sequence="a b", pair="c", add_special_tokens=False), mine.encode(sequence="a b", pair="c", add_special_tokens=False)),
        (ref.encode("a b", "c", False, False), mine.encode("a b", "c", False, False)),
    ]:
        assert (m.ids, m.type_ids, m.sequence_ids) == (r.ids, r.type_ids, r.sequence_ids)
    assert [e.ids for e in mine.encode_batch([("a", "b"), ["c", "d"], "e"], False, False)] == [
        e.ids for e in ref.encode_batch([("a", "b"), ["c", "d"], "e"], False, False)
    ]
    with pytest.raises(TypeError, match="list of words"):
        mine.encode("a", is_pretokenized=True)
    with pytest.raises(TypeError, match=r"inputs\[0\]: a pair has two texts, not 3"):
        mine.encode_batch([("a", "b", "c")])
    with pytest.raises(TypeError, match="single str"):
        mine.encode_batch("abc")

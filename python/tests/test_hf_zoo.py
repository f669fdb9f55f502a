"""A zoo of `tokenizer.json` files built with the `tokenizers` library itself (its normalizers,
pre-tokenizers, models, trainers and decoders), each loaded by ferrotok and compared with
`tokenizers` on real text: ids, decoded text, and the decoding of arbitrary id sequences.

Two members are the layouts real models ship: Llama 2 / Mistral (BPE with byte fallback, a
Prepend/Replace normalizer and a Replace/ByteFallback/Fuse/Strip decoder), built from the
vendored Mistral SentencePiece model, and XLNet/T5-style Unigram (Precompiled normalizer,
Metaspace), built from the vendored XLNet model."""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as model_pb2
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

import ferrotok
from conftest import SHARED, TESTDATA, corpus, read_jsonl

SP = TESTDATA / "sentencepiece"


def texts() -> list[str]:
    return [d["text"] for d in corpus()]


@functools.lru_cache(maxsize=None)
def training_text() -> list[str]:
    # The first half of the corpus trains; every document is then encoded.
    docs = texts()
    return docs[: len(docs) // 2]


def train(tok: Tokenizer, trainer: object) -> Tokenizer:
    tok.train_from_iterator(training_text(), trainer=trainer)
    return tok


# --- members built from real SentencePiece models --------------------------------------------


@functools.lru_cache(maxsize=None)
def sp_vocab(name: str) -> tuple[list[tuple[str, float]], model_pb2.ModelProto]:
    proto = model_pb2.ModelProto()
    proto.ParseFromString((SP / name).read_bytes())
    return [(p.piece, p.score) for p in proto.pieces], proto


def sp_merges(vocab: dict[str, int]) -> list[tuple[str, str]]:
    """Merges for a SentencePiece BPE vocabulary, ordered as converters order them: by the
    merged piece's id, then by the parts' ids."""
    found = []
    for piece, pid in vocab.items():
        for i in range(1, len(piece)):
            a, b = piece[:i], piece[i:]
            if a in vocab and b in vocab:
                found.append((pid, vocab[a], vocab[b], a, b))
    found.sort()
    return [(a, b) for _, _, _, a, b in found]


def llama2_style(*, metaspace: bool) -> Tokenizer:
    pieces, _ = sp_vocab("mistral-7b-v0.1.model")
    vocab = {p: i for i, (p, _) in enumerate(pieces)}
    bpe = models.BPE(vocab, sp_merges(vocab), unk_token="<unk>", fuse_unk=True, byte_fallback=True)
    tok = Tokenizer(bpe)
    if metaspace:
        # The newer layout: no normalizer, Metaspace that prepends only at the start.
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
        tok.decoder = decoders.Sequence([decoders.Metaspace(prepend_scheme="first"), decoders.ByteFallback(), decoders.Fuse()])
    else:
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.decoder = decoders.Sequence(
            [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
        )
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tok


def xlnet_unigram() -> Tokenizer:
    pieces, proto = sp_vocab("xlnet_base_cased.model")
    tok = Tokenizer(models.Unigram(pieces, unk_id=0, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Replace("``", '"'),
            normalizers.Replace("''", '"'),
            normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.add_special_tokens(["<unk>", "<s>", "</s>", "<cls>", "<sep>"])
    tok.post_processor = processors.TemplateProcessing(
        single="$A <sep> <cls>", special_tokens=[("<sep>", 4), ("<cls>", 3)]
    )
    return tok


# --- trained members, one per family of components -------------------------------------------


def bpe_suffix_prefix() -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    return train(
        tok,
        trainers.BpeTrainer(
            vocab_size=1200, special_tokens=["[UNK]"], continuing_subword_prefix="##", end_of_word_suffix="</w>",
            limit_alphabet=300,
        ),
    )


def bpe_unknowns_not_fused() -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Punctuation("isolated"), pre_tokenizers.Digits(False)])
    tok.decoder = decoders.Fuse()
    return train(tok, trainers.BpeTrainer(vocab_size=800, special_tokens=["<unk>"], limit_alphabet=100))


def bpe_split_behaviours() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.Strip(), normalizers.ByteLevel()])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"Ġ+"), "merged_with_next"),
            pre_tokenizers.Split(Regex(r"\d"), "merged_with_previous"),
            pre_tokenizers.Split("Ċ", "contiguous"),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    return train(
        tok, trainers.BpeTrainer(vocab_size=1000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    )


def bpe_bytelevel_prefix_space() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)]
    )
    tok.decoder = decoders.ByteLevel()
    trained = train(
        tok,
        trainers.BpeTrainer(
            vocab_size=1000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<s>", "</s>"]
        ),
    )
    trained.post_processor = processors.RobertaProcessing(("</s>", 1), ("<s>", 0))
    return trained


def bpe_ignore_merges_byte_fallback() -> Tokenizer:
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    tok = Tokenizer(models.BPE(byte_fallback=True, ignore_merges=True, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always", split=True)
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(prepend_scheme="always")])
    return train(
        tok, trainers.BpeTrainer(vocab_size=1500, special_tokens=["<unk>", *byte_tokens], limit_alphabet=150)
    )


def wordpiece_general() -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=30))
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation("merged_with_previous"), pre_tokenizers.Digits(True)]
    )
    tok.decoder = decoders.WordPiece(cleanup=True)
    tok.add_special_tokens(["[CLS]", "[SEP]"])
    tok.post_processor = processors.BertProcessing(("[SEP]", 1), ("[CLS]", 2))
    return train(tok, trainers.WordPieceTrainer(vocab_size=1500, special_tokens=["[UNK]", "[SEP]", "[CLS]"]))


def wordlevel_char_delimiter() -> Tokenizer:
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Nmt(), normalizers.NFKC(), normalizers.Replace(Regex(r"\s+"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.CharDelimiterSplit(" "), pre_tokenizers.Split(Regex(r"[.,;:!?]"), "removed", invert=False)]
    )
    tok.decoder = decoders.CTC(pad_token="<pad>", word_delimiter_token="|", cleanup=True)
    return train(tok, trainers.WordLevelTrainer(vocab_size=3000, special_tokens=["<unk>", "<pad>"]))


def wordlevel_inverted_split() -> Tokenizer:
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r"[A-Za-z]+"), "removed", invert=True), pre_tokenizers.FixedLength(4)]
    )
    return train(tok, trainers.WordLevelTrainer(vocab_size=2000, special_tokens=["<unk>"]))


def unigram_trained() -> Tokenizer:
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Strip(left=True, right=False)])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(prepend_scheme="first")]
    )
    tok.decoder = decoders.Metaspace(prepend_scheme="first")
    return train(
        tok, trainers.UnigramTrainer(vocab_size=800, special_tokens=["<unk>"], unk_token="<unk>", max_piece_length=8)
    )


def bpe_whitespace() -> Tokenizer:
    # The layout of `tokenizers`' quick tour: BPE with the Whitespace pre-tokenizer.
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKD(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.BPEDecoder()
    return train(tok, trainers.BpeTrainer(vocab_size=1200, special_tokens=["[UNK]"], limit_alphabet=300))


def unigram_byte_fallback() -> Tokenizer:
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="never", split=False)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    trained = train(
        tok,
        trainers.UnigramTrainer(vocab_size=900, special_tokens=["<unk>", *byte_tokens], unk_token="<unk>"),
    )
    # The trainer has no byte-fallback option: switch it on in the saved model.

    data = json.loads(trained.to_str())
    data["model"]["byte_fallback"] = True
    return Tokenizer.from_str(json.dumps(data))


ZOO: dict[str, Callable[[], Tokenizer]] = {
    "llama2-prepend-replace": lambda: llama2_style(metaspace=False),
    "llama2-metaspace-first": lambda: llama2_style(metaspace=True),
    "xlnet-unigram-precompiled": xlnet_unigram,
    "bpe-prefix-suffix": bpe_suffix_prefix,
    "bpe-unfused-unknowns": bpe_unknowns_not_fused,
    "bpe-split-behaviours": bpe_split_behaviours,
    "bpe-bytelevel-prefix-space": bpe_bytelevel_prefix_space,
    "bpe-ignore-merges-byte-fallback": bpe_ignore_merges_byte_fallback,
    "wordpiece-general": wordpiece_general,
    "wordlevel-char-delimiter": wordlevel_char_delimiter,
    "wordlevel-inverted-fixed-length": wordlevel_inverted_split,
    "unigram-trained": unigram_trained,
    "unigram-byte-fallback": unigram_byte_fallback,
    "bpe-whitespace": bpe_whitespace,
}


@functools.lru_cache(maxsize=None)
def member(name: str) -> tuple[Tokenizer, ferrotok.Tokenizer]:
    # The reference is the file as `tokenizers` loads it: a freshly trained Unigram model can
    # segment a few exact ties differently from its own saved file (seen once in ten trainings).
    text = ZOO[name]().to_str()
    return Tokenizer.from_str(text), ferrotok.Tokenizer.from_str(text)


EDGES = [
    "",
    " ",
    "  leading and trailing  ",
    "x",
    "Hello, y'all! How are you 😁 ?",
    "tab\there\nnewline\r\nCRLF",
    "ｶﾞ ＡＢＣ ﬁ ½ Å Å",
    "<s>hello</s> <s>",
    "▁already▁metaspaced",
    "numbers 12345 and ١٢٣ and 3.14",
    "\x00\x01 control \u200b\ufeff zero-width",
    # Text a normalizer deletes entirely: no piece, so Metaspace and ByteLevel prepend nothing.
    "\x1f",
    "\x1f\u200b\x1f",
    "a" * 300,
]


def assert_same(ref: Tokenizer, mine: ferrotok.Tokenizer, docs: list[str]) -> None:
    for i, text in enumerate(docs):
        want = ref.encode(text).ids
        got = mine.encode(text).ids
        assert got == want, f"document {i} ({text[:60]!r}): first difference at {next((k for k, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))}"
        for skip in (True, False):
            assert mine.decode(got, skip_special_tokens=skip) == ref.decode(want, skip_special_tokens=skip), (
                f"decode of document {i} (skip_special_tokens={skip})"
            )


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_member_matches_tokenizers(name: str) -> None:
    ref, mine = member(name)
    assert mine.get_vocab_size() == ref.get_vocab_size()
    assert_same(ref, mine, EDGES + texts())


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_member_decodes_arbitrary_ids_as_tokenizers_does(name: str) -> None:
    ref, mine = member(name)
    rng = random.Random(name)
    n = ref.get_vocab_size()
    for _ in range(300):
        ids = [rng.randrange(n) for _ in range(rng.randrange(1, 12))]
        for skip in (True, False):
            assert mine.decode(ids, skip_special_tokens=skip) == ref.decode(ids, skip_special_tokens=skip), ids


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_member_encodes_pairs_as_tokenizers_does(name: str) -> None:
    ref, mine = member(name)
    docs = [t[:300] for t in texts()[:30]] + ["", "x"]
    pairs = list(zip(docs[::2], docs[1::2]))
    fields = ("ids", "type_ids", "special_tokens_mask", "sequence_ids", "word_ids", "attention_mask", "n_sequences")
    for special in (True, False):
        want = ref.encode_batch(pairs, add_special_tokens=special)
        got = mine.encode_batch(pairs, add_special_tokens=special)
        for (a, b), w, g in zip(pairs, want, got):
            for f in fields:
                assert getattr(g, f) == getattr(w, f), (f, a[:40], b[:40])


@functools.cache
def shared_corpus() -> tuple[str, ...]:
    return tuple(d["text"] for p in sorted((SHARED / "corpus").glob("*.jsonl")) for d in read_jsonl(p))


@pytest.mark.parametrize("name", list(ZOO))
def test_whole_shared_corpus(name: str, request: pytest.FixtureRequest) -> None:
    # One test per member, so that pytest-xdist spreads them over the workers.
    if not request.config.getoption("--full-corpus"):
        pytest.skip("needs --full-corpus")
    docs = list(shared_corpus())
    if not docs:
        pytest.skip("../shared/corpus is not present")
    ref, mine = member(name)
    # Batches use every core (`encode_batch_fast`: the same ids, without the offsets this
    # test does not compare).
    want = [e.ids for e in ref.encode_batch_fast(docs)]
    got = [e.ids for e in mine.encode_batch(docs)]
    bad = [i for i, (w, g) in enumerate(zip(want, got)) if w != g]
    assert not bad, f"{name}: {len(bad)} documents differ, the first {docs[bad[0]][:60]!r}"
    assert mine.decode_batch(got) == ref.decode_batch(want), name


def test_loader_refuses_what_it_cannot_do_exactly(tmp_path: Path) -> None:
    tok = Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>"))
    tok.pre_tokenizer = None
    tok.model = models.BPE({"a": 0}, [], dropout=0.5)
    with pytest.raises(ferrotok.UnsupportedError, match="dropout"):
        ferrotok.Tokenizer.from_str(tok.to_str())


def test_whitespace_pre_tokenizer_classes_every_code_point_as_tokenizers_does() -> None:
    # `\w` and `\s` come from Unicode tables that change between versions; every code point is
    # put between letters, spaces and punctuation, and the pieces compared (through the
    # offsets of a model that makes each piece one unknown token).
    tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    mine = ferrotok.Tokenizer.from_str(tok.to_str())
    points = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for start in range(0, len(points), 20000):
        text = "".join(f"a{c}b {c}! " for c in points[start : start + 20000])
        want = tok.encode(text).offsets
        got = mine.encode(text).offsets
        if got != want:
            k = next(k for k, (a, b) in enumerate(zip(got, want)) if a != b)
            raise AssertionError(f"pieces differ near {text[want[k][0] : want[k][1] + 4]!r}")


def test_unicode_scripts_pre_tokenizer_classes_every_code_point_as_tokenizers_does() -> None:
    # Every code point after Latin letters, after Greek ones, and all in a row (where only the
    # class changes cut), plus the corpus with a model: pieces (through the offsets of a model
    # that makes each piece one unknown token) and ids compared.
    tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.UnicodeScripts()
    mine = ferrotok.Tokenizer.from_str(tok.to_str())
    points = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    texts_ = ["".join(points)] + ["".join(p + c for c in points) for p in ("a", "α", " ", "ー")]
    for text in texts_ + [" lead", "  ", "", "ひらがなカタカナ漢字ー", "abc,def 123"] + EDGES:
        want, got = tok.encode(text).offsets, mine.encode(text).offsets
        if got != want:
            k = next((k for k, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            raise AssertionError(f"pieces differ at piece {k}: {want[k - 1 : k + 2]} != {got[k - 1 : k + 2]}")
    pieces, _ = sp_vocab("xlnet_base_cased.model")
    ref = Tokenizer(models.Unigram(pieces, unk_id=0))
    ref.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.UnicodeScripts(), pre_tokenizers.Metaspace()])
    mine = ferrotok.Tokenizer.from_str(ref.to_str())
    for text in texts():
        assert mine.encode(text).ids == ref.encode(text).ids


def test_a_model_without_an_unknown_token_raises_on_what_it_cannot_cover() -> None:
    tok = Tokenizer(models.WordLevel({"a": 0}))
    mine = ferrotok.Tokenizer.from_str(tok.to_str())
    assert mine.encode("a").ids == [0]
    with pytest.raises(ferrotok.EncodeError, match="WordLevel model cannot cover"):
        mine.encode("b")
    with pytest.raises(Exception):
        tok.encode("b")
    uni = Tokenizer(models.Unigram([("a", -1.0)], unk_id=None))
    mine = ferrotok.Tokenizer.from_str(uni.to_str())
    assert mine.encode("aa").ids == uni.encode("aa").ids
    with pytest.raises(ferrotok.EncodeError, match="Unigram model cannot cover"):
        mine.encode("ab")


def fast_path_files() -> list[Path]:
    files = [TESTDATA / "hf" / "bert-uncased-minilm.tokenizer.json"]
    files += [p for p in (SHARED / "vocab" / "hf" / "llama3.tokenizer.json", SHARED / "vocab" / "hf" / "qwen3.tokenizer.json") if p.exists()]
    return files


@pytest.mark.parametrize("path", fast_path_files(), ids=lambda p: p.name)
def test_fast_paths_equal_the_general_pipeline(path: Path) -> None:
    # The general pipeline is the reference for the specialised byte-level and WordPiece paths.
    json_text = path.read_text(encoding="utf-8")
    fast = ferrotok.Tokenizer.from_str(json_text)
    general = ferrotok.Tokenizer._from_str_general(json_text)
    docs = EDGES + texts()
    assert [e.ids for e in fast.encode_batch(docs)] == [e.ids for e in general.encode_batch(docs)]
    ids = fast.encode(texts()[0]).ids
    assert fast.decode(ids) == general.decode(ids)


@pytest.mark.parametrize("byte_level", [False, True])
def test_a_pair_listed_twice_in_merges_takes_its_last_rank(byte_level: bool) -> None:
    # A documented example: `tokenizers` builds its merge map from the list in order, so a
    # repeated pair keeps the rank of its last listing ("abc" → "ab" "c", not "a" "bc").
    tok = Tokenizer(models.BPE({"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4}, [("b", "c"), ("a", "b")]))
    if byte_level:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    data = json.loads(tok.to_str())
    data["model"]["merges"] = [["b", "c"], ["a", "b"], ["b", "c"]]
    text = json.dumps(data)
    assert Tokenizer.from_str(text).encode("abc").tokens == ["ab", "c"]
    assert ferrotok.Tokenizer.from_str(text).encode("abc").ids == [3, 2]


LEADS = [" x", "´x", "\u0301x", "\x01x", "a b", "\u3000x", "ｶﾞx", "  ", "x", "ﬁx", "\u200bx", "中x", "\ufffdx", "ax a"]


def lead_normalizers() -> list[normalizers.Normalizer]:
    _, proto = sp_vocab("xlnet_base_cased.model")
    return [
        normalizers.Strip(),
        normalizers.Sequence([normalizers.NFKC(), normalizers.Strip()]),
        normalizers.Sequence([normalizers.Nmt(), normalizers.Strip()]),
        normalizers.StripAccents(),
        normalizers.Replace("a", ""),
        normalizers.Sequence([normalizers.Prepend("x"), normalizers.Strip()]),
        normalizers.BertNormalizer(),
        normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap),
        normalizers.Sequence([normalizers.NFKD(), normalizers.StripAccents(), normalizers.Strip()]),
        normalizers.Sequence([normalizers.ByteLevel(), normalizers.Lowercase()]),
    ]


@pytest.mark.parametrize("index", range(10))
def test_metaspace_first_sees_where_normalizers_moved_the_start(index: int) -> None:
    # Metaspace's "first" scheme prepends only to a piece that starts at offset 0 of the
    # input; a normalizer that deletes the first character moves that start.
    pieces, _ = sp_vocab("xlnet_base_cased.model")
    ref = Tokenizer(models.Unigram(pieces, unk_id=0))
    ref.normalizer = lead_normalizers()[index]
    ref.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(prepend_scheme="first")]
    )
    ref.add_special_tokens(["<s>"])
    mine = ferrotok.Tokenizer.from_str(ref.to_str())
    for text in LEADS + [f"<s>{t}" for t in LEADS] + [f"{t}<s>{t}" for t in LEADS]:
        assert mine.encode(text).ids == ref.encode(text).ids, text


@pytest.mark.parametrize("general", [False, True])
def test_text_normalized_to_nothing_gives_no_piece(general: bool) -> None:
    # A segment the normalizer empties gives no token: ByteLevel's prefix space is not added
    # to empty text (`tokenizers`' `prepend` does nothing there).
    ref = bpe_bytelevel_prefix_space()
    ref.normalizer = normalizers.Replace("x", "")
    ref.add_special_tokens(["<s>"])
    text = ref.to_str()
    mine = ferrotok.Tokenizer._from_str_general(text) if general else ferrotok.Tokenizer.from_str(text)
    for t in ["x", "xx<s>x", "<s>x<s>", "ax", ""]:
        assert mine.encode(t).ids == ref.encode(t).ids, t


def test_ignore_merges_applies_to_the_whole_piece() -> None:
    # "▁ab" is a token that the merges never reach; with ignore_merges only a whole piece may
    # take it, so "x▁ab" (one piece: no pre-tokenizer) merges to "x" "▁a" "b".
    vocab = {"▁": 0, "a": 1, "b": 2, "▁a": 3, "▁ab": 4, "x": 5}
    ref = Tokenizer(models.BPE(vocab, [("▁", "a")], ignore_merges=True))
    mine = ferrotok.Tokenizer.from_str(ref.to_str())
    for text in ["x▁ab", "▁ab", "▁abx▁ab"]:
        assert mine.encode(text).ids == ref.encode(text).ids, text
    assert ref.encode("x▁ab").tokens == ["x", "▁a", "b"]


def test_added_token_ids_are_assigned_as_tokenizers_assigns_them() -> None:
    # A documented example: `tokenizers` ignores the ids written in `added_tokens`; a token of
    # the model keeps the model's id, the others follow the vocabulary in order (3, 4).
    tok = Tokenizer(models.WordLevel({"a": 0, "b": 1, "<unk>": 2}, unk_token="<unk>"))
    data = json.loads(tok.to_str())
    entry = {"single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    data["added_tokens"] = [
        {"id": 10, "content": "<x>", **entry},
        {"id": 5, "content": "<y>", **entry},
        {"id": 7, "content": "a", **entry},
    ]
    text = json.dumps(data)
    ref, mine = Tokenizer.from_str(text), ferrotok.Tokenizer.from_str(text)
    assert ref.encode("<x><y>a").ids == [3, 4, 0]
    assert mine.encode("<x><y>a").ids == [3, 4, 0]
    assert [mine.token_to_id(t) for t in ("<x>", "<y>", "a")] == [3, 4, 0]
    assert mine.decode([3, 0, 4], skip_special_tokens=False) == ref.decode([3, 0, 4], skip_special_tokens=False)

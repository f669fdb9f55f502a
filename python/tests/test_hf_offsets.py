"""`TokenizerEncoding.offsets` against `tokenizers`: every zoo member and real file, every
normalizer (each moves the alignment its own way), the post-processors that trim offsets,
pairs, truncation and padding."""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors

import ferrotok
from conftest import TESTDATA
from test_hf_zoo import EDGES, LEADS, ZOO, fast_path_files, lead_normalizers, member, sp_vocab, texts

# Text where normalizers add, delete, reorder and expand characters.
TRICKY = [
    "é  ",
    "  é",
    "ﬁ ﬂ ﬃ",
    "İstanbul ΣΑΣ",
    "e\u0301\u0323 q\u0307\u0323",
    "ｶﾞｷﾞ ㌀ ¼",
    "a\u200bb\ufeffc\x01d",
    "中文字 かな 한국어",
    "tab\tnew\nline\r\n",
    "\u3000full\u3000width\u3000",
    "😁👍🏽 🇫🇷",
    "ǅ ß ẞ",
]


def docs() -> list[str]:
    return EDGES + TRICKY + LEADS + texts()


def assert_same_offsets(ref: Tokenizer, mine: ferrotok.Tokenizer, inputs: list[str]) -> None:
    for i, text in enumerate(inputs):
        want = ref.encode(text)
        got = mine.encode(text)
        assert got.ids == want.ids, f"input {i} ({text[:60]!r}): ids"
        assert got.offsets == want.offsets, f"input {i} ({text[:60]!r}): {list(zip(want.tokens, want.offsets, got.offsets))}"


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_member_offsets_match_tokenizers(name: str) -> None:
    ref, mine = member(name)
    assert_same_offsets(ref, mine, docs())


@pytest.mark.parametrize("path", fast_path_files(), ids=lambda p: p.name)
def test_real_file_offsets_match_tokenizers_on_both_paths(path: Path) -> None:
    ref = Tokenizer.from_file(str(path))
    assert_same_offsets(ref, ferrotok.Tokenizer.from_file(path), docs())
    assert_same_offsets(ref, ferrotok.Tokenizer._from_str_general(ref.to_str()), docs())


def test_bert_seed_example_offsets() -> None:
    # A documented example: the README's BERT sentence, offsets in characters of the input.
    tok = ferrotok.Tokenizer.from_file(TESTDATA / "hf" / "bert-uncased-minilm.tokenizer.json")
    tok.no_padding()
    enc = tok.encode("Hello, y'all! How are you 😁 ?")
    assert enc.tokens == ["[CLS]", "hello", ",", "y", "'", "all", "!", "how", "are", "you", "[UNK]", "?", "[SEP]"]
    assert enc.offsets == [
        (0, 0), (0, 5), (5, 6), (7, 8), (8, 9), (9, 12), (12, 13), (14, 17), (18, 21), (22, 25), (26, 27), (28, 29), (0, 0)
    ]  # fmt: skip


def more_normalizers() -> list[normalizers.Normalizer]:
    return [
        *lead_normalizers(),
        normalizers.NFC(),
        normalizers.NFD(),
        normalizers.Lowercase(),
        normalizers.Strip(left=True, right=False),
        # `tokenizers` records a right strip's deletion by byte count: off on non-ASCII text.
        normalizers.Strip(left=False, right=True),
        normalizers.Replace("é", "E\u0301e"),
        normalizers.Replace(Regex(r"\s+"), " "),
        normalizers.Nmt(),
        normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False),
        normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]),
    ]


@pytest.mark.parametrize("index", range(len(more_normalizers())))
@pytest.mark.parametrize("model", ["unigram", "bytelevel"])
def test_each_normalizer_moves_offsets_as_in_tokenizers(index: int, model: str) -> None:
    if model == "unigram":
        pieces, _ = sp_vocab("xlnet_base_cased.model")
        ref = Tokenizer(models.Unigram(pieces, unk_id=0))
        ref.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(prepend_scheme="first")]
        )
    else:
        ref = Tokenizer.from_str(member("bpe-bytelevel-prefix-space")[0].to_str())
    ref.normalizer = more_normalizers()[index]
    ref.add_special_tokens(["<s>"])
    mine = ferrotok.Tokenizer.from_str(ref.to_str())
    inputs = TRICKY + LEADS + [f"<s>{t}<s>{t}" for t in TRICKY] + texts()[:40]
    assert_same_offsets(ref, mine, inputs)


@pytest.mark.parametrize("trim", [False, True])
@pytest.mark.parametrize("prefix", [False, True])
def test_bytelevel_post_processor_trims_offsets_as_in_tokenizers(trim: bool, prefix: bool) -> None:
    ref = Tokenizer.from_str(member("bpe-bytelevel-prefix-space")[0].to_str())
    ref.post_processor = processors.ByteLevel(trim_offsets=trim, add_prefix_space=prefix)
    mine = ferrotok.Tokenizer.from_str(ref.to_str())
    assert_same_offsets(ref, mine, ["  two  spaces  ", " lead", "x  y\n\nz "] + TRICKY + texts()[:30])


@pytest.mark.parametrize("name", ["bpe-bytelevel-prefix-space", "wordpiece-general", "llama2-metaspace-first"])
def test_offsets_of_pairs_truncated_and_padded_match_tokenizers(name: str) -> None:
    ref = Tokenizer.from_str(member(name)[0].to_str())
    mine = ferrotok.Tokenizer.from_str(ref.to_str())
    docs = [t[:200] for t in texts()[:24]] + ["", "x"]
    pairs = list(zip(docs[::2], docs[1::2]))
    settings = [
        ({"max_length": 40, "strategy": "longest_first", "direction": "right"}, {"direction": "right"}),
        ({"max_length": 33, "strategy": "only_first", "direction": "left"}, {"direction": "left", "length": 64}),
        ({"max_length": 25, "strategy": "longest_first", "direction": "left"}, {"direction": "left", "pad_to_multiple_of": 8}),
    ]
    for trunc, pad in settings:
        for t in (ref, mine):
            t.enable_truncation(**trunc)
            t.enable_padding(**pad)
        for special in (True, False):
            for inputs in (pairs, docs):
                try:
                    want = ref.encode_batch(inputs, add_special_tokens=special)
                except Exception:
                    # `tokenizers` refuses some pairs (only_first on a short first text); the
                    # errors themselves are compared in test_hf_tokenizer.
                    continue
                got = mine.encode_batch(inputs, add_special_tokens=special)
                for item, w, g in zip(inputs, want, got):
                    assert g.ids == w.ids, (trunc, pad, item)
                    assert g.offsets == w.offsets, (trunc, pad, item)


def test_offsets_of_a_sentencepiece_model_are_refused_not_guessed() -> None:
    tok = ferrotok.Tokenizer.from_sentencepiece(TESTDATA / "sentencepiece" / "xlnet_base_cased.model")
    enc = tok.encode("Hello there")
    assert enc.ids
    with pytest.raises(ferrotok.UnsupportedError, match="offsets"):
        enc.offsets


@pytest.mark.parametrize(
    "name", ["bpe-bytelevel-prefix-space", "wordpiece-general", "llama2-metaspace-first", "unigram-trained"]
)
def test_pretokenized_input_matches_tokenizers(name: str) -> None:
    # Each word is a whole input of its own: the pre-tokenizer and Metaspace's "first" scheme
    # see it so, word ids number the words, and offsets are within each word.
    ref = Tokenizer.from_str(member(name)[0].to_str())
    mine = ferrotok.Tokenizer.from_str(ref.to_str())
    lists = [t.split() for t in texts()[:20]] + [[], ["  spaced  ", "", "x"], ["<s>", "a<s>b"], ["ﬁ", "é  "]]
    fields = ("ids", "offsets", "word_ids", "type_ids", "sequence_ids", "special_tokens_mask")
    for special in (True, False):
        for words in lists:
            want = ref.encode(words, is_pretokenized=True, add_special_tokens=special)
            got = mine.encode(words, is_pretokenized=True, add_special_tokens=special)
            for f in fields:
                assert getattr(got, f) == getattr(want, f), (f, words[:5])
        pairs = list(zip(lists[::2], lists[1::2]))
        want_b = ref.encode_batch(pairs + lists, is_pretokenized=True, add_special_tokens=special)
        got_b = mine.encode_batch(pairs + lists, is_pretokenized=True, add_special_tokens=special)
        for w, g in zip(want_b, got_b):
            for f in fields:
                assert getattr(g, f) == getattr(w, f), f


FIELDS = ("ids", "tokens", "offsets", "type_ids", "sequence_ids", "word_ids", "special_tokens_mask", "attention_mask")


def assert_same_tree(got: object, want: object, where: str, depth: int = 0) -> None:
    for f in FIELDS:
        assert getattr(got, f) == getattr(want, f), (where, depth, f)
    g_over, w_over = got.overflowing, want.overflowing  # type: ignore[attr-defined]
    assert len(g_over) == len(w_over), (where, depth, "overflowing")
    for g, w in zip(g_over, w_over):
        assert_same_tree(g, w, where, depth + 1)


@pytest.mark.parametrize("name", ["wordpiece-general", "bpe-bytelevel-prefix-space", "llama2-metaspace-first"])
def test_overflowing_windows_match_tokenizers(name: str) -> None:
    # Windows with a stride, for single texts and pairs (whose overflowing `tokenizers` nests),
    # every strategy and direction, with padding to a fixed length and to the batch's longest.
    ref = Tokenizer.from_str(member(name)[0].to_str())
    mine = ferrotok.Tokenizer.from_str(ref.to_str())
    docs = [t[:150] for t in texts()[:12]] + ["x", ""]
    pairs = list(zip(docs[::2], docs[1::2]))
    settings = [
        ({"max_length": 20, "stride": 0, "strategy": "longest_first", "direction": "right"}, None),
        ({"max_length": 16, "stride": 5, "strategy": "longest_first", "direction": "left"}, {"direction": "left"}),
        ({"max_length": 24, "stride": 7, "strategy": "only_second", "direction": "right"}, {"length": 30}),
        ({"max_length": 18, "stride": 3, "strategy": "only_first", "direction": "left"}, {"pad_to_multiple_of": 8}),
    ]
    for trunc, pad in settings:
        for t in (ref, mine):
            t.enable_truncation(**trunc)
            if pad is None:
                t.no_padding()
            else:
                t.enable_padding(**pad)
        assert mine.truncation == ref.truncation
        for special in (True, False):
            for inputs in (pairs, docs):
                try:
                    want = ref.encode_batch(inputs, add_special_tokens=special)
                except Exception:
                    continue  # only_second without a pair, or a pair too short: compared elsewhere
                got = mine.encode_batch(inputs, add_special_tokens=special)
                for item, w, g in zip(inputs, want, got):
                    assert_same_tree(g, w, f"{trunc} {pad} {special} {item!r:.60}")


def test_a_stride_too_long_for_the_kept_length_is_refused_as_in_tokenizers() -> None:
    ref = Tokenizer.from_str(member("wordpiece-general")[0].to_str())
    mine = ferrotok.Tokenizer.from_str(ref.to_str())
    with pytest.raises(ValueError):
        ref.enable_truncation(5, stride=4)
    with pytest.raises(ValueError, match="stride=4 must be less than the effective max length 3"):
        mine.enable_truncation(5, stride=4)
    # A stride equal to the kept length: `tokenizers` accepts it, then panics in `encode`; we
    # refuse it here.
    with pytest.raises(ValueError, match="stride=3 must be less than the effective max length 3"):
        mine.enable_truncation(5, stride=3)
    # A pair keeps fewer ids per sequence: a stride that fits one text may not fit a pair.
    mine.enable_truncation(8, stride=4)
    with pytest.raises(ferrotok.EncodeError, match="stride"):
        mine.encode("a b c d e f g h i j", "k l m n o p q r s t")
    mine.enable_truncation(5, stride=2)
    assert mine.truncation == {"max_length": 5, "stride": 2, "strategy": "longest_first", "direction": "right"}
    assert pickle.loads(pickle.dumps(mine)).truncation == mine.truncation
    # A file's own truncation stride is taken too.
    ref.enable_truncation(6, stride=2, direction="left")
    from_file = ferrotok.Tokenizer.from_str(ref.to_str())
    assert from_file.truncation == ref.truncation
    text = " ".join(texts()[:3])[:400]
    assert_same_tree(from_file.encode(text), ref.encode(text), "file stride")


# Arbitrary text biased towards what moves alignments: marks, compatibility characters,
# spaces of every kind, controls, scripts that change, and the added token.
ALIGNMENT_CHARS = list("aZ09 '\t\n!.-_") + [
    "é", "e\u0301", "\u0301", "ﬁ", "ｶﾞ", "½", "İ", "ß", "\u00a0", "\u3000", "\u200b", "\ufeff", "\x01",
    "中", "ー", "か", "Ω", "😁", "▁", "Ġ", "<s>",
]  # fmt: skip


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(st.lists(st.sampled_from(ALIGNMENT_CHARS), max_size=30).map("".join), st.text(max_size=40)),
    st.sampled_from(list(ZOO)),
)
def test_offsets_of_arbitrary_text_match_tokenizers(text: str, name: str) -> None:
    ref, mine = member(name)
    want, got = ref.encode(text), mine.encode(text)
    assert (got.ids, got.offsets) == (want.ids, want.offsets)


@functools.lru_cache(maxsize=None)
def real_file(path: Path) -> tuple[Tokenizer, ferrotok.Tokenizer]:
    ref = Tokenizer.from_file(str(path))
    ref.no_padding()
    ref.no_truncation()
    mine = ferrotok.Tokenizer.from_file(path)
    mine.no_padding()
    mine.no_truncation()
    return ref, mine


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(st.lists(st.sampled_from(ALIGNMENT_CHARS), max_size=30).map("".join), st.text(max_size=40)),
    st.sampled_from(fast_path_files()),
)
def test_offsets_of_arbitrary_text_match_tokenizers_on_real_files(text: str, path: Path) -> None:
    ref, mine = real_file(path)
    want, got = ref.encode(text), mine.encode(text)
    assert (got.ids, got.offsets) == (want.ids, want.offsets)

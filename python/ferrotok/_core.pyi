"""Type stubs of the ``ferrotok._core`` extension module (hand-written, checked by stubtest)."""

from collections.abc import Collection, Sequence
from os import PathLike
from typing import Any, Literal, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "__version__",
    "Encoding",
    "Tokenizer",
    "TokenizerEncoding",
    "_encoding_from_state",
    "_builtin_encoding",
    "_builtin_names",
    "_cli_main",
    "_tokenize_files",
    "_encode_string_buffers",
    "_write_tokens",
]

__version__: str

_Specials = Literal["all"] | Collection[str]

@final
class Encoding:
    """An encoding: a byte-level BPE vocabulary, a split pattern and special tokens.

    Immutable and safe to share between threads.
    """

    def __new__(
        cls,
        name: str,
        *,
        pat_str: str,
        mergeable_ranks: dict[bytes, int],
        special_tokens: dict[str, int],
        explicit_n_vocab: int | None = None,
    ) -> Encoding:
        """Creates an encoding, exactly as ``tiktoken.Encoding(...)`` does.

        ``pat_str`` may be any pattern tiktoken accepts. The built-in patterns run on
        hand-written scanners; most others on a lazy DFA; those it cannot run exactly
        (look-behind, back-references, ...) on fancy-regex, as in tiktoken.
        """

    @staticmethod
    def from_tiktoken_file(
        path: str | PathLike[str],
        *,
        pat_str: str,
        special_tokens: dict[str, int] | None = None,
        name: str | None = None,
        explicit_n_vocab: int | None = None,
    ) -> Encoding:
        """Loads a tiktoken rank file (``.tiktoken``, plain or gzip), validating it strictly."""

    @property
    def name(self) -> str:
        """The encoding's name."""
    @property
    def n_vocab(self) -> int:
        """``max_token_value + 1``."""
    @property
    def max_token_value(self) -> int:
        """The largest token id, ordinary or special."""
    @property
    def eot_token(self) -> int:
        """The id of ``<|endoftext|>``."""
    @property
    def special_tokens_set(self) -> set[str]:
        """The set of special-token strings."""
    @property
    def _pat_str(self) -> str:
        """The split pattern (tiktoken's private attribute, kept for code that extends encodings)."""
    @property
    def _special_tokens(self) -> dict[str, int]:
        """A new dict of special token → id."""
    @property
    def _mergeable_ranks(self) -> dict[bytes, int]:
        """A new dict of token bytes → rank."""
    def encode_ordinary(self, text: str, /) -> list[int]:
        """Encodes text, treating special-token text as ordinary text."""
    def encode(
        self,
        text: str,
        /,
        *,
        allowed_special: _Specials = ...,
        disallowed_special: _Specials = ...,
    ) -> list[int]:
        """Encodes text. Special-token text raises unless allowed (then it becomes its id) or
        removed from ``disallowed_special`` (then it is encoded as ordinary text)."""
    def encode_to_numpy(
        self,
        text: str,
        /,
        *,
        allowed_special: _Specials = ...,
        disallowed_special: _Specials = ...,
    ) -> npt.NDArray[np.uint32]:
        """Like ``encode``, returning a ``numpy.ndarray`` of ``uint32`` without an intermediate list."""
    def count(
        self,
        text: str,
        /,
        *,
        allowed_special: _Specials = ...,
        disallowed_special: _Specials = ...,
    ) -> int:
        """The number of tokens ``encode`` would return, without building them."""
    def encode_batch(
        self,
        text: Sequence[str],
        /,
        *,
        num_threads: int | None = None,
        allowed_special: _Specials = ...,
        disallowed_special: _Specials = ...,
    ) -> list[list[int]]:
        """Encodes many texts in parallel (``num_threads`` defaults to ``FERROTOK_NUM_THREADS`` or the
        number of cores)."""
    def encode_batch_to_numpy(
        self,
        text: Sequence[str],
        /,
        *,
        num_threads: int | None = None,
        allowed_special: _Specials = ...,
        disallowed_special: _Specials = ...,
    ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64]]:
        """Encodes many texts in parallel into one flat ``uint32`` array of all their ids and
        ``len(text) + 1`` ``int64`` offsets: text ``i``'s ids are ``ids[offsets[i]:offsets[i + 1]]``.
        No Python object per token or per text; the GIL is released for the whole batch."""
    def encode_ordinary_batch(self, text: Sequence[str], /, *, num_threads: int | None = None) -> list[list[int]]:
        """Encodes many texts in parallel, treating special-token text as ordinary text."""
    def count_batch(
        self,
        text: Sequence[str],
        /,
        *,
        num_threads: int | None = None,
        allowed_special: _Specials = ...,
        disallowed_special: _Specials = ...,
    ) -> list[int]:
        """Token counts of many texts, in parallel."""
    def encode_single_token(self, text_or_bytes: str | bytes, /) -> int:
        """Encodes a string or bytes that is exactly one token (ordinary or special)."""
    def decode_bytes(self, tokens: Sequence[int], /) -> bytes:
        """Decodes tokens to bytes."""
    def decode(self, tokens: Sequence[int], /, errors: str = "replace") -> str:
        """Decodes tokens to text; invalid UTF-8 is handled by ``errors`` as in ``bytes.decode``."""
    def decode_single_token_bytes(self, token: int, /) -> bytes:
        """The bytes of one token."""
    def decode_tokens_bytes(self, tokens: Sequence[int], /) -> list[bytes]:
        """The bytes of each token."""
    def decode_with_offsets(self, tokens: Sequence[int], /) -> tuple[str, list[int]]:
        """The text (decoded strictly) and the character offset where each token starts."""
    def decode_batch(
        self, batch: Sequence[Sequence[int]], /, *, errors: str = "replace", num_threads: int | None = None
    ) -> list[str]:
        """Decodes many token lists in parallel."""
    def decode_bytes_batch(self, batch: Sequence[Sequence[int]], /, *, num_threads: int | None = None) -> list[bytes]:
        """Decodes many token lists to bytes in parallel."""
    def token_byte_values(self) -> list[bytes]:
        """The bytes of every ordinary token, sorted."""
    def is_special_token(self, token: int, /) -> bool:
        """Whether ``token`` is a special token's id."""
    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles built-ins by name and other encodings by value."""
    def __copy__(self) -> Encoding: ...
    def __deepcopy__(self, _memo: Any, /) -> Encoding: ...

@final
class TokenizerEncoding:
    """The result of `Tokenizer.encode`: the ids, the tokens, and what each token is."""

    @property
    def ids(self) -> list[int]:
        """The token ids."""
    @property
    def tokens(self) -> list[str]:
        """The tokens as the tokenizer file spells them."""
    @property
    def offsets(self) -> list[tuple[int, int]]:
        """Each token's (start, end) in characters of its input text, as `tokenizers` reports
        them; (0, 0) for the special tokens the post-processor added and for padding. Computed
        on first use (a second, slower pass over the input). Raises `UnsupportedError` for a
        tokenizer loaded from a SentencePiece `.model`."""
    @property
    def overflowing(self) -> list[TokenizerEncoding]:
        """What truncation cut off, as encodings of their own (windows of the truncated length
        that overlap by the truncation's stride, each with the post-processor's tokens and the
        padding), nested for pairs as `tokenizers` nests them. Computed on first use."""
    @property
    def attention_mask(self) -> list[int]:
        """1 for every token, 0 for padding."""
    @property
    def type_ids(self) -> list[int]:
        """The type id of each token (the template's; padding has the padding's)."""
    @property
    def special_tokens_mask(self) -> list[int]:
        """1 for the special tokens the post-processor added and for padding, 0 for the rest."""
    @property
    def sequence_ids(self) -> list[int | None]:
        """The input sequence each token comes from (0, or 1 in a pair), None for the special
        tokens the post-processor added and for padding."""
    @property
    def word_ids(self) -> list[int | None]:
        """The word (pre-tokenized piece or added token) each token comes from, counted per
        input sequence; None for the special tokens the post-processor added and for padding."""
    @property
    def n_sequences(self) -> int:
        """1, or 2 for a pair."""
    def __len__(self) -> int: ...

@final
class Tokenizer:
    """A tokenizer loaded from a Hugging Face `tokenizer.json` or a SentencePiece `.model`.

    Immutable and safe to share between threads. Loads files built from `tokenizers`'
    normalizers, pre-tokenizers, models (BPE,
    WordPiece, WordLevel, Unigram), post-processors and decoders, and SentencePiece models
    (Unigram and BPE); a file that needs anything else fails to load with `UnsupportedError`
    naming the component."""

    @staticmethod
    def from_file(path: str | PathLike[str]) -> Tokenizer:
        """Loads a `tokenizer.json` file."""
    @staticmethod
    def from_str(json: str) -> Tokenizer:
        """Parses a `tokenizer.json` given as a string."""
    @staticmethod
    def _from_str_general(json: str) -> Tokenizer:
        """The general pipeline for any file, never a fast path (the tests' reference)."""
    @staticmethod
    def from_buffer(buffer: bytes) -> Tokenizer:
        """Parses a `tokenizer.json` given as bytes."""
    @staticmethod
    def from_wordpiece_vocab(
        path: str | PathLike[str],
        /,
        *,
        lowercase: bool = True,
        unk_token: str = "[UNK]",
        sep_token: str = "[SEP]",
        cls_token: str = "[CLS]",
        pad_token: str = "[PAD]",
        mask_token: str = "[MASK]",
        clean_text: bool = True,
        handle_chinese_chars: bool = True,
        strip_accents: bool | None = None,
        wordpieces_prefix: str = "##",
    ) -> Tokenizer:
        """A BERT tokenizer from a WordPiece `vocab.txt` (one token per line, ids by line), built
        as `tokenizers`' `BertWordPieceTokenizer` builds it: BertNormalizer, BertPreTokenizer,
        WordPiece, `[CLS] … [SEP]`, the WordPiece decoder; the special tokens that are in the
        vocabulary are added as special tokens."""
    @staticmethod
    def from_sentencepiece(path: str | PathLike[str], /, *, add_bos: bool = False, add_eos: bool = False) -> Tokenizer:
        """Loads a SentencePiece `.model` file. `encode` gives the ids of
        `sentencepiece.SentencePieceProcessor.encode`; `add_bos`/`add_eos` add `<s>`/`</s>` when
        `add_special_tokens` is true."""
    @staticmethod
    def from_sentencepiece_buffer(buffer: bytes, /, *, add_bos: bool = False, add_eos: bool = False) -> Tokenizer:
        """`from_sentencepiece` for a model given as bytes."""
    @staticmethod
    def _from_state(
        data: bytes,
        sentencepiece: tuple[bool, bool] | None,
        truncate: tuple[int, int, bool, int] | None,
        padding: tuple[int | None, int | None, int, int, bool, str | None] | None,
    ) -> Tokenizer:
        """Rebuilds a pickled tokenizer."""
    def to_str(self) -> str:
        """The `tokenizer.json` this tokenizer was loaded from (`UnsupportedError` for a
        SentencePiece model)."""
    def encode(
        self,
        sequence: str | Sequence[str],
        pair: str | Sequence[str] | None = None,
        is_pretokenized: bool = False,
        add_special_tokens: bool = True,
    ) -> TokenizerEncoding:
        """Encodes one text, or a pair; `add_special_tokens` applies the post-processor's template.
        With `is_pretokenized=True` each sequence is a list of words, each encoded on its own as
        one word (offsets are then within each word, as in `tokenizers`)."""
    def encode_batch(
        self,
        inputs: Sequence[str | tuple[str, str] | list[str] | Sequence[str] | tuple[Sequence[str], Sequence[str]]],
        is_pretokenized: bool = False,
        add_special_tokens: bool = True,
        *,
        num_threads: int | None = None,
    ) -> list[TokenizerEncoding]:
        """Encodes many texts (or `(text, pair)` pairs; with `is_pretokenized`, lists of words or
        pairs of them) in parallel (the GIL released)."""
    def count(self, sequence: str, /, *, add_special_tokens: bool = True) -> int:
        """The number of tokens of `sequence`, without truncation or padding."""
    def decode(self, ids: Sequence[int], /, *, skip_special_tokens: bool = True) -> str:
        """The text of `ids`; special tokens left out unless `skip_special_tokens` is false."""
    def decode_batch(self, sequences: Sequence[Sequence[int]], /, *, skip_special_tokens: bool = True) -> list[str]:
        """`decode` for each list of ids."""
    def token_to_id(self, token: str) -> int | None: ...
    def id_to_token(self, id: int) -> str | None: ...
    def get_vocab_size(self, with_added_tokens: bool = True) -> int: ...
    def get_vocab(self, with_added_tokens: bool = True) -> dict[str, int]:
        """Token → id for every token (added tokens included when `with_added_tokens`)."""
    def add_tokens(self, tokens: Sequence[str]) -> int:
        """Adds tokens matched in the raw text before anything else, as `tokenizers` does: a token
        already in the vocabulary keeps its id, a new one takes the next id. Returns how many
        were added (empty strings and tokens added before are skipped). Tokens added this way
        are normalized tokens: with a normalizer in the pipeline that raises `UnsupportedError`."""
    def add_special_tokens(self, tokens: Sequence[str]) -> int:
        """`add_tokens` for special tokens (never normalized; left out by `decode` by default)."""
    def enable_truncation(
        self, max_length: int, stride: int = 0, strategy: str = "longest_first", direction: str = "right"
    ) -> None:
        """Truncates every encoding to at most `max_length` ids (special tokens included), with
        `tokenizers`' strategies (`longest_first`, `only_first`, `only_second`), keeping the start
        (`direction="right"`) or the end (`"left"`). What is cut goes to `overflowing`, in windows
        that overlap by `stride` ids (`ValueError` unless `stride` is less than `max_length` less
        the special tokens)."""
    def no_truncation(self) -> None:
        """Turns truncation off."""
    def enable_padding(
        self,
        direction: str = "right",
        pad_id: int | None = None,
        pad_type_id: int = 0,
        pad_token: str = "[PAD]",
        length: int | None = None,
        pad_to_multiple_of: int | None = None,
    ) -> None:
        """Pads every encoding (`length=None`: a batch to its longest), on the right or the left.
        `pad_id` defaults to the id of `pad_token` when that is a token, else 0."""
    def no_padding(self) -> None:
        """Turns padding off."""
    @property
    def truncation(self) -> dict[str, Any] | None:
        """The truncation settings, or None."""
    @property
    def padding(self) -> dict[str, Any] | None:
        """The padding settings, or None."""
    def __reduce__(self) -> tuple[Any, ...]: ...

def _encoding_from_state(
    name: str, pat_str: str, blob: bytes, special_tokens: dict[str, int], explicit_n_vocab: int | None
) -> Encoding:
    """Rebuilds a pickled encoding."""

def _builtin_encoding(name: str) -> Encoding:
    """A built-in encoding (loaded on first use, shared afterwards). ``ferrotok.get_encoding`` wraps it."""

def _builtin_names() -> list[str]:
    """The names of the built-in encodings."""

def _cli_main(argv: Sequence[str]) -> int:
    """Runs the ``ferrotok`` command with ``argv`` (without the program name) and returns its exit
    status. The GIL is released for the whole run."""

def _tokenize_files(
    inputs: Sequence[str],
    tokenizer: Encoding | Tokenizer,
    output: str | PathLike[str],
    options_json: str,
    *,
    num_threads: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Runs a tokenize job (see ``ferrotok.data.tokenize_files``) with the GIL released; returns
    the summary as a dict."""

def _encode_string_buffers(
    encoding: Encoding,
    offsets: npt.NDArray[np.int64],
    data: npt.NDArray[np.uint8],
    nulls: npt.NDArray[np.bool_] | None = None,
    *,
    num_threads: int | None = None,
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64]]:
    """Encodes the strings of an Arrow string array given as its parts: ``offsets`` (n + 1, int64),
    ``data`` (the UTF-8 bytes) and ``nulls`` (n booleans, or None). Returns ``(ids, starts)``: the
    ids of every string, flat, and n + 1 int64 offsets into them (null rows are empty)."""

def _write_tokens(
    output: str | PathLike[str],
    format: str,
    ids: npt.NDArray[np.uint32],
    starts: npt.NDArray[np.int64],
    doc_ids: Sequence[str | None] | None = None,
    *,
    dtype: str | None = None,
    header: str | None = None,
) -> list[str]:
    """Writes documents given as flat ``ids`` and ``starts`` (n + 1 offsets) to ``output`` in a job's
    format, atomically; returns the paths written. Used by the Ray Data sink."""

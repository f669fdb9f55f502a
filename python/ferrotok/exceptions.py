"""The exceptions ferrotok raises.

Every class derives from :class:`FerrotokError` and also from the builtin that fits, so
``except ValueError`` (or ``KeyError``, ``OSError``) written for tiktoken keeps working.
"""

from __future__ import annotations

__all__ = [
    "FerrotokError",
    "VocabError",
    "PatternError",
    "DisallowedSpecialTokenError",
    "EncodeError",
    "InvalidTokenError",
    "UnknownEncodingError",
    "UnknownModelError",
    "FileError",
    "InputError",
    "OptionsError",
    "ResumeError",
    "UnsupportedError",
]


class FerrotokError(Exception):
    """Base class of every ferrotok error."""


class VocabError(FerrotokError, ValueError):
    """A vocabulary (rank file or in-memory ranks) is malformed; the message names the file and line."""


class PatternError(FerrotokError, ValueError):
    """A split pattern does not compile, or exceeded the regex backtracking limit on some text."""


class DisallowedSpecialTokenError(FerrotokError, ValueError):
    """The text contains a special token that was not allowed.

    ``token`` is the special token's text and ``position`` its character offset in the text.
    """

    token: str
    position: int


class EncodeError(FerrotokError, ValueError):
    """Text could not be encoded: a byte the vocabulary has no token for, a piece a model
    cannot cover and that names no unknown token, truncation settings that cannot be met, or
    one unit of text longer than 4 GiB (a pre-tokenized piece, or a SentencePiece model's
    normalized text), whose positions the merge cannot index."""


class InvalidTokenError(FerrotokError, KeyError, ValueError):
    """A token id (or token text) does not exist in the encoding."""

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0]) if self.args else ""


class UnknownEncodingError(FerrotokError, KeyError, ValueError):
    """No built-in encoding has this name (tiktoken raises ValueError here, hence both)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownModelError(FerrotokError, KeyError):
    """No encoding is known for this model name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class FileError(FerrotokError, OSError):
    """A file could not be read."""


class InputError(FerrotokError, ValueError):
    """A corpus input could not be read: bad UTF-8 or JSON, a missing field or column.

    The message names the file and the line or row.
    """


class OptionsError(FerrotokError, ValueError):
    """Options of a corpus job contradict each other or the tokenizer."""


class ResumeError(FerrotokError, ValueError):
    """An interrupted or finished job's state does not match this job (other inputs, tokenizer
    or options); the message says what changed. Pass ``overwrite=True`` to start over."""


class UnsupportedError(FerrotokError, ValueError):
    """A tokenizer file needs a component (or an option) that ferrotok does not implement yet.
    The message names it. ferrotok refuses to load such a file rather than give other ids."""

"""ferrotok: exact, fast tokenizers for language models.

A drop-in for the common uses of ``tiktoken``::

    import ferrotok
    enc = ferrotok.get_encoding("o200k_base")
    assert enc.decode(enc.encode("hello world")) == "hello world"

Every built-in encoding ships inside the package: nothing is ever downloaded.
"""

from __future__ import annotations

import threading

from . import exceptions
from ._core import Encoding, Tokenizer, TokenizerEncoding, __version__
from ._core import _builtin_encoding, _builtin_names
from .exceptions import (
    DisallowedSpecialTokenError,
    EncodeError,
    FerrotokError,
    FileError,
    InputError,
    InvalidTokenError,
    OptionsError,
    PatternError,
    ResumeError,
    UnknownEncodingError,
    UnsupportedError,
    UnknownModelError,
    VocabError,
)
from .model import encoding_name_for_model

__all__ = [
    "Encoding",
    "Tokenizer",
    "TokenizerEncoding",
    "UnsupportedError",
    "get_encoding",
    "encoding_for_model",
    "encoding_name_for_model",
    "list_encoding_names",
    "exceptions",
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
    "__version__",
]

_lock = threading.Lock()
_encodings: dict[str, Encoding] = {}


def get_encoding(encoding_name: str) -> Encoding:
    """A built-in encoding by name (the same object on every call).

    Raises :class:`UnknownEncodingError` (a ``KeyError`` and a ``ValueError``) for unknown names.
    """
    enc = _encodings.get(encoding_name)
    if enc is not None:
        return enc
    if not isinstance(encoding_name, str):
        raise TypeError(f"encoding_name must be str, not {type(encoding_name).__name__}")
    with _lock:
        enc = _encodings.get(encoding_name)
        if enc is None:
            enc = _builtin_encoding(encoding_name)
            _encodings[encoding_name] = enc
    return enc


def encoding_for_model(model_name: str) -> Encoding:
    """The encoding a model uses; raises :class:`UnknownModelError` (a ``KeyError``)."""
    return get_encoding(encoding_name_for_model(model_name))


def list_encoding_names() -> list[str]:
    """The names of the built-in encodings."""
    return list(_builtin_names())

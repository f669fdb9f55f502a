"""The vendored fixtures are what testdata/SHA256SUMS says they are."""

from __future__ import annotations

import hashlib

from conftest import TESTDATA


def test_fixture_checksums() -> None:
    lines = (TESTDATA / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 3
    for line in lines:
        digest, name = line.split(maxsplit=1)
        assert hashlib.sha256((TESTDATA / name).read_bytes()).hexdigest() == digest, name

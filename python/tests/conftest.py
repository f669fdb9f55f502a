"""Shared fixtures: the vendored corpus and tiktoken reference encodings built from the
rank files in this repository (never downloaded)."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = ROOT / "testdata"
DATA = ROOT / "crates" / "ferrotok" / "data"
SHARED = ROOT.parent / "shared"
NAMES = ["gpt2", "r50k_base", "p50k_base", "p50k_edit", "cl100k_base", "o200k_base", "o200k_harmony"]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    # Split on "\n" only: documents may hold U+2028 and other characters str.splitlines() splits on.
    raw = path.read_bytes().decode("utf-8")
    return [json.loads(line) for line in raw.split("\n") if line]


@functools.lru_cache(maxsize=None)
def corpus() -> list[dict[str, Any]]:
    docs = read_jsonl(TESTDATA / "corpus.jsonl")
    assert len(docs) > 100, "testdata/corpus.jsonl is missing or truncated"
    return docs


@functools.lru_cache(maxsize=None)
def definitions() -> dict[str, Any]:
    return json.loads((DATA / "encodings.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=None)
def reference(name: str) -> Any:
    """tiktoken's Encoding for a built-in name, from this repo's rank files."""
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    d = definitions()[name]
    ranks = load_tiktoken_bpe(str(DATA / f"{d['ranks']}.tiktoken"))
    return tiktoken.Encoding(
        name,
        pat_str=d["pat_str"],
        mergeable_ranks=ranks,
        special_tokens=d["special_tokens"],
        explicit_n_vocab=d["explicit_n_vocab"],
    )


@pytest.fixture(autouse=True, scope="session")
def _tiktoken_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    # tiktoken caches even local files; keep that out of the user's home.
    os.environ["TIKTOKEN_CACHE_DIR"] = str(tmp_path_factory.mktemp("tiktoken-cache"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--full-corpus",
        action="store_true",
        help="also run the differential tests on all of ../shared/corpus (slow; for release checks)",
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run in which no test passed (none collected, or all skipped) is a failure."""
    if hasattr(session.config, "workerinput"):
        return  # a pytest-xdist worker: the controller, which sees every result, decides
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    passed = len(reporter.stats.get("passed", [])) if reporter is not None else 0
    if exitstatus == 0 and passed == 0:
        session.exitstatus = 1
        print("\nferrotok: no test passed (all skipped or none collected): failing the run")

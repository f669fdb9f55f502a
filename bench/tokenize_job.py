"""The corpus job, measured: `ferrotok tokenize` beside the same job done the usual way
(nanoGPT's prepare.py: Hugging Face `datasets.map` with tiktoken, then a memmapped uint16 file),
with a byte-for-byte comparison of the two outputs.

    python bench/tokenize_job.py                 # ../shared/corpus/*.jsonl, gpt2
    python bench/tokenize_job.py a.jsonl b.jsonl --encoding gpt2 --repeat 3

Prints a Markdown table and writes bench/results/tokenize_job.{md,json}. Each measurement is a
fresh process timed from outside (start-up, loading, reading JSON, encoding, writing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared"

HF_SCRIPT = r"""
import os, sys, json, time
import numpy as np
from datasets import load_dataset, disable_progress_bars
import tiktoken
from tiktoken.load import load_tiktoken_bpe
disable_progress_bars()
files, out, enc_name, num_proc = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
d = json.load(open(os.path.join(sys.argv[5], "encodings.json")))[enc_name]
enc = tiktoken.Encoding(enc_name, pat_str=d["pat_str"], special_tokens=d["special_tokens"],
                        mergeable_ranks=load_tiktoken_bpe(os.path.join(sys.argv[5], d["ranks"] + ".tiktoken")),
                        explicit_n_vocab=d["explicit_n_vocab"])
# nanoGPT's data/openwebtext/prepare.py, with the same tiktoken call and separator.
ds = load_dataset("json", data_files=files, split="train")
def process(batch):
    ids = [enc.encode_ordinary(t) + [enc.eot_token] for t in batch["text"]]
    return {"ids": ids, "len": [len(x) for x in ids]}
tok = ds.map(process, batched=True, remove_columns=ds.column_names, num_proc=num_proc)
arr_len = int(np.sum(tok["len"], dtype=np.uint64))
arr = np.memmap(out, dtype=np.uint16, mode="w+", shape=(arr_len,))
idx = 0
shards = min(1024, len(tok))
for i in range(shards):
    batch = tok.shard(num_shards=shards, index=i, contiguous=True).with_format("numpy")
    chunk = np.concatenate(batch["ids"]) if len(batch) else np.zeros(0, np.uint16)
    arr[idx : idx + len(chunk)] = chunk
    idx += len(chunk)
arr.flush()
"""


ENCODER_SCRIPT = r"""
import json, sys, time
import ferrotok
docs = [json.loads(line)["text"] for f in json.loads(sys.argv[1]) for line in open(f, encoding="utf-8") if line.strip()]
enc = ferrotok.get_encoding(sys.argv[2])
enc.encode_ordinary("warm up")
t = time.perf_counter()
enc.encode_ordinary_batch(docs, num_threads=1)
print(time.perf_counter() - t)
"""


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--encoding", default="gpt2")
    ap.add_argument("--repeat", type=int, default=3, help="runs per job; the median is shown")
    ap.add_argument("--no-hf", action="store_true", help="skip the datasets.map job")
    args = ap.parse_args()
    files = args.files or sorted((SHARED / "corpus").glob("*.jsonl"))
    if not files:
        sys.exit("no input files (and no ../shared/corpus)")
    files = [f.resolve() for f in files]
    mb = sum(f.stat().st_size for f in files) / 1e6
    cores = os.cpu_count() or 1
    tmp = Path(tempfile.mkdtemp(prefix="ferrotok-job-bench-"))
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp / "hf-cache"), "HF_DATASETS_OFFLINE": "1", "TIKTOKEN_CACHE_DIR": str(tmp / "tt")}
    exe = [sys.executable, "-m", "ferrotok"]
    rows = []
    try:
        for threads in sorted({1, cores}):
            times = []
            for r in range(args.repeat):
                out = tmp / f"ft{threads}-{r}"
                times.append(timed([*exe, "tokenize", *map(str, files), "-t", args.encoding, "-o", str(out), "--append-eot", "-j", str(threads), "--dtype", "uint16"], env))
            rows.append((f"ferrotok tokenize, {threads} thread{'s' if threads > 1 else ''}", statistics.median(times), Path(f"{out}.bin")))
        enc_secs = statistics.median(
            float(subprocess.run([sys.executable, "-c", ENCODER_SCRIPT, json.dumps([str(f) for f in files]), args.encoding], check=True, capture_output=True, env=env, text=True).stdout)
            for _ in range(args.repeat)
        )
        encoder_row = f"| (the encoder alone: `encode_ordinary_batch`, 1 thread, text already in memory) | {enc_secs:.2f} | {mb / enc_secs:.1f} | | |"
        if not args.no_hf:
            times = []
            for r in range(args.repeat):
                out = tmp / f"hf-{r}.bin"
                shutil.rmtree(tmp / "hf-cache", ignore_errors=True)  # no cache hits between runs
                times.append(timed([sys.executable, "-c", HF_SCRIPT, json.dumps([str(f) for f in files]), str(out), args.encoding, str(cores), str(ROOT / "crates" / "ferrotok" / "data")], env))
            rows.append((f"datasets.map + tiktoken (nanoGPT prepare.py), num_proc={cores}", statistics.median(times), out))
        reference = rows[-1][2].read_bytes() if not args.no_hf else None
        lines = [
            f"Corpus: {len(files)} files, {mb:.1f} MB; encoding {args.encoding}; {cores} cores; median of {args.repeat} runs, each a fresh process.",
            "",
            "| job | seconds | MB/s | vs datasets.map | output identical |",
            "|---|---|---|---|---|",
        ]
        base = rows[-1][1] if not args.no_hf else None
        results = []
        for name, secs, path in rows:
            same = "reference" if path == rows[-1][2] and not args.no_hf else ("yes" if reference is not None and path.read_bytes() == reference else ("no" if reference is not None else "n/a"))
            ratio = f"{base / secs:.1f}×" if base else "n/a"
            lines.append(f"| {name} | {secs:.2f} | {mb / secs:.1f} | {ratio} | {same} |")
            results.append({"job": name, "seconds": secs, "mb_per_s": mb / secs, "identical": same})
        lines.append(encoder_row)
        text = "\n".join(lines)
        print(text)
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "tokenize_job.md").write_text(text + "\n")
        (HERE / "results" / "tokenize_job.json").write_text(json.dumps({"mb": mb, "encoding": args.encoding, "rows": results}, indent=1) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

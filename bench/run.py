"""Cross-library tokenizer benchmark: ferrotok beside tiktoken, Hugging Face tokenizers,
gigatoken, fastokens, bpe-openai and kitoken, each built from the same local files, with a
token-for-token agreement check against tiktoken printed beside every speed.

    python bench/run.py                          # ../shared/corpus, all modes, 2 MB per part
    python bench/run.py --limit-mb 0             # whole corpus
    python bench/run.py my.txt other.jsonl       # any files (.txt = one document, .jsonl = {"text"})
    python bench/run.py --encodings cl100k_base --libs ferrotok,tiktoken --modes single

Modes (each measurement in its own fresh process, pinned to one thread unless batch):
  single   one call per document; "first-seen" = the first pass over text the process has not
           seen (after warming up on other English text), "warm" = median of three more passes
  batch    all documents of a part in one batch call, on 1 and on all cores (fastest of 5 calls)
  flat     the same with flat output (ids plus offsets: `encode_batch_to_numpy`, gigatoken's
           `encode_batch`, fastokens' `encode_batch_flat`): first-seen and warm, with the cores
           each library actually used
  pattern  a user-supplied split pattern (the encoding's own, respelled `(?:…)` so that no
           hand-written splitter recognises it) beside the built-in one, first-seen and warm,
           in ferrotok and tiktoken; ids checked against tiktoken's built-in encoding
  memory   resident memory (VmRSS) a fresh process gains by loading the encoding, after
           importing the library, then after encoding 1 MB of English (caches filled)
  startup  first call in a fresh process: import + load + encode one short text (median of 5)
  worst    adversarial inputs of 0.25, 0.5 and 1 MB (time per MB must stay flat: linear time)

Writes bench/results/results.{md,json} and bench/results/chart.png.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adapters import BUILDERS, SHARED, encoding_spec  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
ONE_THREAD = {"FERROTOK_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
              "RAYON_RS_NUM_CPUS": "1", "OMP_NUM_THREADS": "1"}
# Batch modes: numpy's OpenBLAS starts its own threads on import, which spin for a while
# (BLAS is never used here) and would take a core from a library's workers.
BATCH_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
WARMUP_BYTES = 1_000_000


# ---------------------------------------------------------------- corpus

def read_docs(path: Path) -> list[dict[str, str]]:
    if path.suffix == ".jsonl":
        raw = path.read_bytes().decode("utf-8")
        return [{"id": d.get("id", str(i)), "text": d["text"]} for i, d in enumerate(json.loads(l) for l in raw.split("\n") if l)]
    return [{"id": path.name, "text": path.read_text(encoding="utf-8")}]


def load_parts(paths: list[Path], limit_mb: float) -> dict[str, list[dict[str, str]]]:
    """Each file is a part; documents are taken in file order up to the limit."""
    parts = {}
    warm_ids = {d["id"] for d in warmup_docs()}
    for p in paths:
        docs, total = [], 0
        for d in read_docs(p):
            if d["id"] in warm_ids:
                continue
            if limit_mb and total >= limit_mb * 1e6:
                break
            docs.append(d)
            total += len(d["text"].encode())
        parts[p.stem] = docs
    return parts


def warmup_docs() -> list[dict[str, str]]:
    """English text from the end of the English part, never measured."""
    path = SHARED / "corpus" / "english.jsonl"
    if not path.exists():
        return [{"id": "warmup", "text": "The quick brown fox jumps over the lazy dog. " * 20000}]
    docs, total = [], 0
    for d in reversed(read_docs(path)):
        docs.append(d)
        total += len(d["text"].encode())
        if total >= WARMUP_BYTES:
            break
    return docs


def digest(ids: Any) -> str:
    import numpy as np

    return hashlib.sha1(np.asarray(ids, dtype=np.uint32).tobytes()).hexdigest()[:16]


# ---------------------------------------------------------------- workers (run in fresh processes)

def worker_single(lib: str, enc: str, part_file: str) -> dict[str, Any]:
    texts = [d["text"] for d in json.loads(Path(part_file).read_text(encoding="utf-8"))]
    a = BUILDERS[lib](enc)
    for d in warmup_docs():
        a.encode_list(d["text"])
    nbytes = sum(len(t.encode()) for t in texts)
    out: dict[str, Any] = {"bytes": nbytes, "version": a.version}

    def one_pass(f: Any) -> tuple[float, list[Any]]:
        res = []
        t0 = time.perf_counter()
        for t in texts:
            res.append(f(t))
        return time.perf_counter() - t0, res

    first, ids = one_pass(a.encode_list)
    out["digests"] = [digest(x) for x in ids]
    out["first_seen_s"] = first
    out["warm_s"] = statistics.median(one_pass(a.encode_list)[0] for _ in range(3))
    if a.encode_numpy is not None:
        out["numpy_warm_s"] = statistics.median(one_pass(a.encode_numpy)[0] for _ in range(3))
    # One short call per paragraph: per-call overhead.
    paras = [p for t in texts for p in t.split("\n\n") if p]
    out["para_bytes"] = sum(len(p.encode()) for p in paras)

    def para_pass() -> float:
        t0 = time.perf_counter()
        for p in paras:
            a.encode_list(p)
        return time.perf_counter() - t0

    out["para_s"] = statistics.median(para_pass() for _ in range(3))
    return out


def worker_batch(lib: str, enc: str, part_file: str) -> dict[str, Any]:
    texts = [d["text"] for d in json.loads(Path(part_file).read_text(encoding="utf-8"))]
    a = BUILDERS[lib](enc)
    if a.encode_batch is None:
        return {"unavailable": "no batch API"}
    a.encode_batch(texts[:4], 1)
    out: dict[str, Any] = {"bytes": sum(len(t.encode()) for t in texts)}
    threads = int(os.environ.get("BENCH_THREADS", "1"))
    # The fastest of five calls: a batch keeps both cores busy, so one call slowed by anything
    # else on the machine moved the median of three by up to 2x between runs; the first call
    # also starts a library's worker threads on empty caches.
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        res = a.encode_batch(texts, threads)
        times.append(time.perf_counter() - t0)
    out["s"] = min(times)
    out["digests"] = [digest(x) for x in res]
    return out


def worker_flat(lib: str, enc: str, part_file: str) -> dict[str, Any]:
    """A whole part as one call with flat output (ids plus offsets, no object per token)."""
    texts = [d["text"] for d in json.loads(Path(part_file).read_text(encoding="utf-8"))]
    a = BUILDERS[lib](enc)
    if a.encode_flat is None or a.split_flat is None:
        return {"unavailable": "no flat batch output"}
    threads = int(os.environ.get("BENCH_THREADS", "1"))
    # Warm up on other English text first, as the single-call figures do; then the first
    # pass over the part, then the fastest of four more (see worker_batch).
    a.encode_flat([d["text"] for d in warmup_docs()], threads)
    out: dict[str, Any] = {"bytes": sum(len(t.encode()) for t in texts)}
    times, cpu = [], 0.0
    for _ in range(5):
        c0, t0 = time.process_time(), time.perf_counter()
        res = a.encode_flat(texts, threads)
        times.append(time.perf_counter() - t0)
        cpu += time.process_time() - c0
    out.update(first_s=times[0], s=min(times[1:]), cores_used=cpu / sum(times))
    out["digests"] = [digest(x) for x in a.split_flat(res)]
    return out


def respelled(pat_str: str) -> str:
    """The same pattern in a spelling no hand-written splitter recognises."""
    return f"(?:{pat_str})"


def worker_pattern(lib: str, enc: str, part_file: str, variant: str) -> dict[str, Any]:
    texts = [d["text"] for d in json.loads(Path(part_file).read_text(encoding="utf-8"))]
    s = encoding_spec(enc)
    pat = s["pat_str"] if variant == "built-in" else respelled(s["pat_str"])
    if lib == "ferrotok":
        import ferrotok

        e = ferrotok.Encoding.from_tiktoken_file(s["ranks"], pat_str=pat, special_tokens=s["special_tokens"], name=enc)
        version = ferrotok.__version__
    else:
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe

        e = tiktoken.Encoding(enc, pat_str=pat, mergeable_ranks=load_tiktoken_bpe(str(s["ranks"])), special_tokens=s["special_tokens"])
        version = tiktoken.__version__
    for d in warmup_docs():
        e.encode_ordinary(d["text"])

    def one_pass() -> tuple[float, list[Any]]:
        t0 = time.perf_counter()
        res = [e.encode_ordinary(t) for t in texts]
        return time.perf_counter() - t0, res

    first, ids = one_pass()
    return {"bytes": sum(len(t.encode()) for t in texts), "version": version, "digests": [digest(x) for x in ids],
            "first_seen_s": first, "warm_s": statistics.median(one_pass()[0] for _ in range(3))}


MODULES = {"ferrotok": "ferrotok", "tiktoken": "tiktoken", "gigatoken": "gigatoken", "fastokens": "fastokens",
           "bpe-openai": "bpe_openai", "kitoken": "kitoken", "tokenizers": "tokenizers"}


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def worker_memory(lib: str, enc: str) -> dict[str, Any]:
    import ctypes
    import gc
    import importlib

    docs = [d["text"] for d in warmup_docs()]  # read first: the text is not the library's memory
    importlib.import_module(MODULES[lib])
    gc.collect()
    # Freed heap pages go back to the system, so that what loading allocates shows as growth
    # instead of reusing pages the corpus's parse had touched.
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    imported = _status_mb("VmRSS")
    a = BUILDERS[lib](enc)
    gc.collect()
    loaded = _status_mb("VmRSS")
    for t in docs:
        a.encode_list(t)
    gc.collect()
    return {"imported_mb": imported, "load_mb": loaded - imported, "after_encode_mb": _status_mb("VmRSS") - imported,
            "peak_mb": _status_mb("VmHWM")}


def worker_startup(lib: str, enc: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    a = BUILDERS[lib](enc)
    a.encode_list("Hello, world! This is the first call.")
    return {"s": time.perf_counter() - t0}


WORST = {
    "one letter": lambda n: "a" * n,
    "random letters": lambda n: "".join(random.Random(1).choices("abcdefghijklmnopqrstuvwxyz", k=n)),
    "punctuation": lambda n: "^" * n,
    "spaces": lambda n: " " * n,
    "digits": lambda n: "".join(random.Random(2).choices("0123456789", k=n)),
}


def worker_worst(lib: str, enc: str, case: str, size: int) -> dict[str, Any]:
    a = BUILDERS[lib](enc)
    text = WORST[case](size)
    a.encode_list("warm up")
    t0 = time.perf_counter()
    a.encode_list(text)
    return {"s": time.perf_counter() - t0}


# ---------------------------------------------------------------- orchestration

def spawn(args: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", *args]
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout, env={**os.environ, **env})
    except subprocess.TimeoutExpired:
        return {"unavailable": f"timeout after {timeout:.0f} s"}
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip().splitlines()
        return {"unavailable": err[-1][:160] if err else f"exit {p.returncode}"}
    return json.loads(p.stdout.decode().strip().splitlines()[-1])


def mbps(nbytes: float, s: float | None) -> float | None:
    return None if not s else nbytes / s / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path, help="corpus files (default: ../shared/corpus/*.jsonl)")
    ap.add_argument("--encodings", default="cl100k_base,o200k_base,gpt2,llama3")
    ap.add_argument("--libs", default=",".join(BUILDERS))
    ap.add_argument("--modes", default="single,batch,flat,pattern,memory,startup,worst")
    ap.add_argument("--limit-mb", type=float, default=2.0, help="MB per part (0: everything)")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        kind, *rest = args.worker
        fn = {"single": worker_single, "batch": worker_batch, "flat": worker_flat, "pattern": worker_pattern,
              "memory": worker_memory, "startup": worker_startup, "worst": worker_worst}[kind]
        if kind == "worst":
            rest[-1] = int(rest[-1])  # type: ignore[call-overload]
        print(json.dumps(fn(*rest)))
        return

    files = args.files or sorted((SHARED / "corpus").glob("*.jsonl"))
    if not files:
        sys.exit("no corpus: pass files, or put ../shared/corpus beside the repository")
    encodings = [e for e in args.encodings.split(",") if e != "llama3" or encoding_spec("llama3")["ranks"].exists()]
    # tiktoken runs first: it is the reference for the agreement check.
    libs = ["tiktoken"] + [lib for lib in args.libs.split(",") if lib != "tiktoken"]
    modes = set(args.modes.split(","))
    parts = load_parts(files, args.limit_mb)
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = args.out / "parts.tmp"
    tmp.mkdir(exist_ok=True)
    part_files = {}
    for name, docs in parts.items():
        part_files[name] = tmp / f"{name}.json"
        part_files[name].write_text(json.dumps(docs), encoding="utf-8")
    cores = os.cpu_count() or 1
    report: dict[str, Any] = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": cores, "python": platform.python_version(),
                    "cpu_model": _cpu_model()},
        "parts": {n: {"docs": len(d), "mb": sum(len(x["text"].encode()) for x in d) / 1e6} for n, d in parts.items()},
        "single": [], "batch": [], "flat": [], "pattern": [], "memory": [], "startup": [], "worst": [],
    }
    t_start = time.time()
    for enc in encodings:
        ref: dict[str, list[str]] = {}
        for lib in libs:
            for part, pf in part_files.items():
                if "single" in modes:
                    r = spawn(["single", lib, enc, str(pf)], ONE_THREAD, args.timeout)
                    row = {"encoding": enc, "library": lib, "part": part}
                    if "unavailable" in r:
                        row["unavailable"] = r["unavailable"]
                    else:
                        if lib == "tiktoken":
                            ref[part] = r["digests"]
                        agree = sum(a == b for a, b in zip(r["digests"], ref.get(part, [])))
                        row.update(
                            version=r["version"],
                            first_seen=mbps(r["bytes"], r["first_seen_s"]),
                            warm=mbps(r["bytes"], r["warm_s"]),
                            numpy_warm=mbps(r["bytes"], r.get("numpy_warm_s")),
                            per_paragraph=mbps(r["para_bytes"], r["para_s"]),
                            agree=f"{agree}/{len(r['digests'])}",
                        )
                    report["single"].append(row)
                    _progress(row, t_start)
                if "flat" in modes and lib == "tiktoken" and part not in ref:
                    # The agreement check's reference, when the single-call mode did not run.
                    ref[part] = spawn(["batch", lib, enc, str(pf)], ONE_THREAD, args.timeout).get("digests", [])
                for kind in ("batch", "flat"):
                    if kind not in modes or (kind == "flat" and lib == "tiktoken"):
                        continue
                    for threads in (1, cores):
                        r = spawn([kind, lib, enc, str(pf)], {**BATCH_ENV, "BENCH_THREADS": str(threads), "RAYON_NUM_THREADS": str(threads),
                                                              "FERROTOK_NUM_THREADS": str(threads)}, args.timeout)
                        row = {"encoding": enc, "library": lib, "part": part, "threads": threads}
                        if "unavailable" in r:
                            row["unavailable"] = r["unavailable"]
                        else:
                            agree = sum(a == b for a, b in zip(r["digests"], ref.get(part, [])))
                            row.update(mbps=mbps(r["bytes"], r["s"]), agree=f"{agree}/{len(r['digests'])}")
                            if kind == "flat":
                                row.update(first_seen=mbps(r["bytes"], r["first_s"]), cores_used=r["cores_used"])
                        report[kind].append(row)
                        _progress(row, t_start)
            if "pattern" in modes and lib in ("tiktoken", "ferrotok"):
                for part, pf in part_files.items():
                    if part not in ref:
                        ref[part] = spawn(["single", "tiktoken", enc, str(pf)], ONE_THREAD, args.timeout).get("digests", [])
                    for variant in ("built-in", "user"):
                        r = spawn(["pattern", lib, enc, str(pf), variant], ONE_THREAD, args.timeout)
                        row = {"encoding": enc, "library": lib, "part": part, "pattern": variant}
                        if "unavailable" in r:
                            row["unavailable"] = r["unavailable"]
                        else:
                            agree = sum(a == b for a, b in zip(r["digests"], ref[part]))
                            row.update(first_seen=mbps(r["bytes"], r["first_seen_s"]), warm=mbps(r["bytes"], r["warm_s"]),
                                       agree=f"{agree}/{len(r['digests'])}")
                        report["pattern"].append(row)
                        _progress(row, t_start)
            if "memory" in modes:
                r = spawn(["memory", lib, enc], ONE_THREAD, args.timeout)
                row = {"encoding": enc, "library": lib, **r}
                report["memory"].append(row)
                _progress(row, t_start)
            if "startup" in modes:
                times = []
                for _ in range(5):
                    r = spawn(["startup", lib, enc], ONE_THREAD, args.timeout)
                    if "unavailable" in r:
                        break
                    times.append(r["s"])
                row = {"encoding": enc, "library": lib}
                if times:
                    row["ms"] = statistics.median(times) * 1e3
                else:
                    row["unavailable"] = r["unavailable"]
                report["startup"].append(row)
            if "worst" in modes and enc == encodings[0]:
                for case in WORST:
                    for size in (250_000, 500_000, 1_000_000):
                        r = spawn(["worst", lib, enc, case, str(size)], ONE_THREAD, 60)
                        row = {"encoding": enc, "library": lib, "case": case, "mb": size / 1e6}
                        if "unavailable" in r:
                            row["unavailable"] = r["unavailable"]
                        else:
                            row["ms_per_mb"] = r["s"] * 1e3 / (size / 1e6)
                        report["worst"].append(row)
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    (args.out / "results.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    md = render_markdown(report)
    (args.out / "results.md").write_text(md, encoding="utf-8")
    print(md)
    try:
        if report["single"]:
            render_chart(report, args.out / "chart.png")
    except ImportError:
        print("(matplotlib not installed: no chart)")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _progress(row: dict[str, Any], t0: float) -> None:
    keys = [k for k in ("first_seen", "warm", "mbps", "load_mb", "after_encode_mb") if row.get(k)]
    vals = " ".join(f"{k}={row[k]:.1f}" for k in keys) or row.get("unavailable", "")
    print(f"[{time.time() - t0:6.0f}s] {row['encoding']:<12} {row['library']:<11} {row.get('part', ''):<13} "
          f"{'t=' + str(row['threads']) if 'threads' in row else '':<4} {vals} {row.get('agree', '')}", file=sys.stderr, flush=True)


def _f(x: Any) -> str:
    return "–" if x is None else f"{x:.1f}"


def render_markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    out = [f"Machine: {m['cpu_model']}, {m['cores']} cores, Python {m['python']}. MB/s of UTF-8 input; "
           "`agree` = documents whose ids equal tiktoken's.", ""]
    out += ["Corpus parts: " + ", ".join(f"{k} ({v['docs']} docs, {v['mb']:.1f} MB)" for k, v in r["parts"].items()), ""]
    if r["single"]:
        out += ["### One core, one call per document (Python list output unless noted)", "",
                "| encoding | part | library | first-seen | warm | numpy warm | per paragraph | agree |",
                "|---|---|---|---:|---:|---:|---:|---|"]
        for x in r["single"]:
            if "unavailable" in x:
                continue
            out.append(f"| {x['encoding']} | {x['part']} | {x['library']} | {_f(x['first_seen'])} | {_f(x['warm'])} | "
                       f"{_f(x['numpy_warm'])} | {_f(x['per_paragraph'])} | {x['agree']} |")
        out.append("")
    if r["batch"]:
        out += ["### Batch (one call for all documents of a part)", "", "| encoding | part | library | threads | MB/s | agree |",
                "|---|---|---|---:|---:|---|"]
        out += [f"| {x['encoding']} | {x['part']} | {x['library']} | {x['threads']} | {_f(x['mbps'])} | {x['agree']} |"
                for x in r["batch"] if "unavailable" not in x]
        out.append("")
    if r.get("flat"):
        out += ["### Batch with flat output (one call per part: ids plus offsets, no object per token)", "",
                "`threads` is what each library was asked for; `cores used` is the CPU time over the wall time it took "
                "(a library that ignores the setting shows it there). First-seen after warming up on other English text; "
                "warm is the fastest of four more calls.", "",
                "| encoding | part | library | threads | first-seen | warm | cores used | agree |",
                "|---|---|---|---:|---:|---:|---:|---|"]
        out += [f"| {x['encoding']} | {x['part']} | {x['library']} | {x['threads']} | {_f(x['first_seen'])} | {_f(x['mbps'])} | "
                f"{x['cores_used']:.2f} | {x['agree']} |" for x in r["flat"] if "unavailable" not in x]
        out.append("")
    if r.get("pattern"):
        out += ["### A user-supplied split pattern (one core, one call per document, Python list output)", "",
                "`user` is the encoding's own pattern respelled `(?:…)`: no hand-written splitter recognises it, so ferrotok "
                "runs it on its lazy DFA (tiktoken on fancy-regex, as always). `user / built-in` is the warm ratio.", "",
                "| encoding | part | library | built-in first-seen | built-in warm | user first-seen | user warm | user / built-in | agree |",
                "|---|---|---|---:|---:|---:|---:|---:|---|"]
        rows: dict[tuple[str, str, str], dict[str, Any]] = {}
        for x in r["pattern"]:
            if "unavailable" not in x:
                rows.setdefault((x["encoding"], x["part"], x["library"]), {})[x["pattern"]] = x
        for (enc, part, lib), v in rows.items():
            b, u = v.get("built-in"), v.get("user")
            if not b or not u:
                continue
            out.append(f"| {enc} | {part} | {lib} | {_f(b['first_seen'])} | {_f(b['warm'])} | {_f(u['first_seen'])} | "
                       f"{_f(u['warm'])} | {u['warm'] / b['warm']:.2f} | {u['agree']} |")
        out.append("")
    if r.get("memory"):
        out += ["### Resident memory (MB): what loading the encoding adds to a fresh process after importing the library, "
                "and the same after encoding 1 MB of English (caches filled)", "",
                "Freed heap pages are returned to the system before the first reading, so that growth shows. "
                "(`peak_mb` in results.json is the whole process's, set by reading the corpus.)", "",
                "| encoding | library | load | after 1 MB |", "|---|---|---:|---:|"]
        out += [f"| {x['encoding']} | {x['library']} | {_f(x['load_mb'])} | {_f(x['after_encode_mb'])} |"
                for x in r["memory"] if "unavailable" not in x]
        out.append("")
    if r["startup"]:
        out += ["### First call in a fresh process (import + load + encode), ms", "", "| encoding | library | ms |", "|---|---|---:|"]
        out += [f"| {x['encoding']} | {x['library']} | {_f(x.get('ms'))} |" for x in r["startup"]]
        out.append("")
    if r["worst"]:
        out += ["### Adversarial inputs: ms per MB at 0.25 / 0.5 / 1 MB (flat = linear)", "", "| library | case | ms/MB |", "|---|---|---|"]
        seen: dict[tuple[str, str], list[str]] = {}
        for x in r["worst"]:
            seen.setdefault((x["library"], x["case"]), []).append(_f(x.get("ms_per_mb")) if "ms_per_mb" in x else "timeout")
        out += [f"| {lib} | {case} | {' / '.join(v)} |" for (lib, case), v in seen.items()]
        out.append("")
    skipped = sorted({(x["library"], x["encoding"], x["unavailable"]) for x in r["single"] if "unavailable" in x})
    if skipped:
        out += ["Not measured: " + "; ".join(f"{lib} on {enc} ({why})" for lib, enc, why in skipped), ""]
    return "\n".join(out)


def render_chart(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    encs = sorted({x["encoding"] for x in r["single"]}, key=lambda e: [x["encoding"] for x in r["single"]].index(e))
    parts = list(r["parts"])
    libs = list(dict.fromkeys(x["library"] for x in r["single"] if "unavailable" not in x))
    fig, axes = plt.subplots(len(encs), 1, figsize=(11, 3.2 * len(encs)), squeeze=False)
    width = 0.8 / max(len(libs), 1)
    for ax, enc in zip(axes[:, 0], encs):
        for i, lib in enumerate(libs):
            vals = []
            for part in parts:
                row = next((x for x in r["single"] if x["encoding"] == enc and x["library"] == lib and x["part"] == part and "unavailable" not in x), None)
                vals.append(row["first_seen"] if row else 0)
            ax.bar([p + i * width for p in range(len(parts))], vals, width, label=lib)
        ax.set_xticks([p + width * (len(libs) - 1) / 2 for p in range(len(parts))], parts)
        ax.set_ylabel("MB/s, first-seen")
        ax.set_title(f"{enc}: one core, one call per document, Python list")
        ax.legend(fontsize=7, ncol=len(libs))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()

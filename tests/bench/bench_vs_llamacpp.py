#!/usr/bin/env python3
"""Speed: lmstation vs llama.cpp (llama-cpp-python's low-level API), llama-bench style.

Usage:
  python3 tests/bench/bench_vs_llamacpp.py [MODEL.gguf ...] [--threads 1,2] [--reps 5]
         [--pp 512] [--tg 128] [--out results.json] [--bin path/to/lmstation] [--no-q8]

  MODEL defaults to the Q4_1 test model (env LMS_TEST_MODEL, else
  $XDG_CACHE_HOME/lmstation/models/SmolLM2-135M-Instruct.Q4_1.gguf) plus a Q8_0 copy made once
  with `lmstation quantize` into $XDG_CACHE_HOME/lmstation/bench/ (--no-q8 skips it).
  The binary: --bin, else env LMSTATION_BIN, else <repo>/build/app/lmstation.
  Exit 77 when llama_cpp, the model or the binary is missing. Not run by ctest.

What is measured, for every model and thread count:
  pp512: a 512-token prompt (random token ids) decoded in one batch into an empty context.
  tg128: 128 tokens decoded one at a time into an empty context (first token BOS, then random
         ids) -- llama-bench's tg test, which is also what `lmstation bench` times.
  lmstation: one `lmstation bench MODEL -p PP -n TG -r 1 -t T --json` process per rep (that
             process does its own untimed warm-up; model loading is not timed).
  llama.cpp: one context (n_ctx = PP+TG+16 as lmstation uses, n_batch = n_ubatch = 512,
             n_threads = n_threads_batch = T, flash attention and KV types at llama.cpp's
             defaults), one untimed warm-up, memory cleared before every test; only the
             llama_decode (+ llama_synchronize) calls are timed.
  Roofline: where the membw probe is built (build/tests/bench/membw), the memory read bandwidth
  is measured at each thread count and each tg row also shows its ceiling, bandwidth / weight
  bytes per token (every generated token streams all the model's tensors), and how close each
  peer comes to it.
  The peers ALTERNATE rep by rep (and swap who goes first every rep), so slow drifts in machine
  load hit both. Reported: median tokens/s, min-max spread, and the ratio lmstation/llama.cpp of
  the medians (> 1: lmstation is faster). --out writes every sample as JSON.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))
import refcommon as rc  # noqa: E402


def q8_model(binary: Path, src: Path) -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lmstation" / "bench"
    cache.mkdir(parents=True, exist_ok=True)
    stem = src.name[:-5] if src.name.endswith(".gguf") else src.name
    for q in ("Q4_1", "Q4_0", "Q8_0", "F16", "F32"):
        stem = stem.replace("." + q, "").replace("-" + q, "")
    dst = cache / f"{stem}.Q8_0.gguf"
    if not dst.is_file() or dst.stat().st_mtime < src.stat().st_mtime:
        print(f"making {dst} with lmstation quantize ...", flush=True)
        rc.run_cli(binary, ["quantize", src, dst, "Q8_0"], timeout=1800)
    return dst


def lms_rep(binary: Path, model: Path, threads: int, pp: int, tg: int):
    out = rc.run_cli(binary, ["bench", model, "-p", pp, "-n", tg, "-r", 1, "-t", threads, "--json"], timeout=900)
    res = rc.parse_json_output(out)
    rates = {}
    for r in res["results"]:
        if int(r.get("threads", threads)) != threads:
            raise RuntimeError(f"lmstation bench ran with {r.get('threads')} threads, asked for {threads}")
        samples = r.get("samples") or [r["tokens_per_s"]]
        rates[r["test"]] = float(samples[0])
    return rates


class LlamaPeer:
    def __init__(self, model: Path, threads: int, pp: int, tg: int):
        self.pp, self.tg = pp, tg
        self.ref = rc.LlamaRef(model, n_ctx=pp + tg + 16, n_threads=threads, n_batch=512)
        self.rng = random.Random(42)
        self.first = self.ref.bos if self.ref.bos >= 0 else 0

    def _pp(self) -> float:
        ref, n = self.ref, self.pp
        ref.clear()
        toks = [self.rng.randrange(ref.n_vocab) for _ in range(n)]
        secs = 0.0
        for s in range(0, n, ref.n_batch):  # one batch when pp <= 512
            ref.fill_batch(toks[s:s + ref.n_batch], s)
            t0 = time.perf_counter()
            ref.decode_filled()
            secs += time.perf_counter() - t0
        return n / secs

    def _tg(self) -> float:
        ref = self.ref
        ref.clear()
        t = self.first
        secs = 0.0
        for i in range(self.tg):
            ref.fill_batch([t], i)
            t0 = time.perf_counter()
            ref.decode_filled()
            secs += time.perf_counter() - t0
            t = self.rng.randrange(ref.n_vocab)
        return self.tg / secs

    def warm_up(self) -> None:
        if self.pp:
            self._pp()
        if self.tg:
            self._tg()

    def rep(self):
        rates = {}
        if self.pp:
            rates[f"pp{self.pp}"] = self._pp()
        if self.tg:
            rates[f"tg{self.tg}"] = self._tg()
        return rates

    def close(self):
        self.ref.close()


def measure_bandwidth(binary: Path, threads):
    """GB/s per thread count from the membw probe beside the build, or {} without it."""
    probe = binary.resolve().parents[1] / "tests" / "bench" / "membw"
    if not probe.is_file():
        print(f"(no roofline: {probe} is not built)")
        return {}
    out = {}
    for t in threads:
        r = subprocess.run([str(probe), "--threads", str(t)], capture_output=True, text=True, timeout=300)
        out[t] = json.loads(r.stdout)["gb_per_s"]
        print(f"  memory read bandwidth, {t} thread(s): {out[t]:.1f} GB/s", flush=True)
    return out


def tensor_bytes(binary: Path, model: Path) -> int:
    """Bytes of all tensors in the model (what one generated token reads at least once)."""
    out = rc.run_cli(binary, ["info", model, "--json"], timeout=120)
    info = rc.parse_json_output(out)
    types = info.get("tensor_types") or {}
    total = sum(int(v.get("bytes", 0)) for v in types.values()) if isinstance(types, dict) else 0
    return total or int(info["file_bytes"])


def summary(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "samples": xs}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", type=Path)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--pp", type=int, default=512)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--bin", type=Path)
    ap.add_argument("--no-q8", action="store_true")
    a = ap.parse_args()
    if a.reps < 1:
        ap.error("--reps must be at least 1")

    rc.import_llama_cpp()
    if a.bin:
        os.environ["LMSTATION_BIN"] = str(a.bin)
    binary = rc.lmstation_bin()
    rc.require_subcommand(binary, "bench")
    models = a.models
    if not models:
        base = rc.model_path()
        models = [base]
        if not a.no_q8:
            rc.require_subcommand(binary, "quantize")
            models.append(q8_model(binary, base))
    for m in models:
        if not m.is_file():
            rc.skip(f"model file not found: {m}")
    threads = [int(x) for x in a.threads.split(",") if x]

    bandwidth = measure_bandwidth(binary, threads)
    rows = []
    for model in models:
        for t in threads:
            peer = LlamaPeer(model, t, a.pp, a.tg)
            peer.warm_up()
            lms, ref = {}, {}
            for r in range(a.reps):
                order = ("lms", "ref") if r % 2 == 0 else ("ref", "lms")
                for who in order:
                    got = lms_rep(binary, model, t, a.pp, a.tg) if who == "lms" else peer.rep()
                    for k, v in got.items():
                        (lms if who == "lms" else ref).setdefault(k, []).append(v)
            peer.close()
            for test in ref:
                if test not in lms:
                    raise RuntimeError(f"lmstation bench printed no {test} result")
                row = {"model": model.name, "path": str(model), "threads": t, "test": test,
                       "lmstation": summary(lms[test]), "llama_cpp": summary(ref[test])}
                row["ratio"] = row["lmstation"]["median"] / row["llama_cpp"]["median"]
                rows.append(row)
                print(f"  {model.name} t={t} {test}: lmstation {row['lmstation']['median']:.1f} t/s, "
                      f"llama.cpp {row['llama_cpp']['median']:.1f} t/s", flush=True)

    print(f"\nmedian tokens/s over {a.reps} alternating reps (min-max); ratio = lmstation / llama.cpp\n")
    hdr = f"| {'model':<38} | {'thr':>3} | {'test':<6} | {'lmstation t/s':>22} | {'llama.cpp t/s':>22} | {'ratio':>5} |"
    print(hdr)
    print("|" + "|".join("-" * (len(c)) for c in hdr.split("|")[1:-1]) + "|")
    for r in rows:
        fmt = lambda s: f"{s['median']:8.1f} ({s['min']:.1f}-{s['max']:.1f})"  # noqa: E731
        print(f"| {r['model'][:38]:<38} | {r['threads']:>3} | {r['test']:<6} | {fmt(r['lmstation']):>22} | "
              f"{fmt(r['llama_cpp']):>22} | {r['ratio']:5.2f} |")
    if bandwidth:
        print("\ngeneration roofline: memory read bandwidth (membw, median) / tensor bytes per token\n")
        print("| model                                  | thr | GB/s  | MB/token | ceiling t/s | lmstation | llama.cpp |")
        print("|----------------------------------------|-----|-------|----------|-------------|-----------|-----------|")
        for r in rows:
            if not r["test"].startswith("tg") or r["threads"] not in bandwidth:
                continue
            per_token = tensor_bytes(binary, Path(r["path"]))
            ceiling = bandwidth[r["threads"]] * 1e9 / per_token
            r["roofline"] = {"gb_per_s": bandwidth[r["threads"]], "bytes_per_token": per_token, "ceiling": ceiling}
            print(f"| {r['model'][:38]:<38} | {r['threads']:>3} | {bandwidth[r['threads']]:5.1f} | {per_token / 1e6:8.1f} | "
                  f"{ceiling:11.1f} | {100 * r['lmstation']['median'] / ceiling:8.0f}% | {100 * r['llama_cpp']['median'] / ceiling:8.0f}% |")
    if a.out:
        a.out.write_text(json.dumps({"reps": a.reps, "pp": a.pp, "tg": a.tg, "rows": rows,
                                     "llama_cpp_version": getattr(rc.import_llama_cpp(), "__version__", "?"),
                                     "lmstation": str(binary)}, indent=2))
        print(f"\nwrote {a.out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.TimeoutExpired as e:
        print(f"timed out: {e}")
        sys.exit(1)

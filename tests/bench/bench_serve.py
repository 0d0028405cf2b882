#!/usr/bin/env python3
"""Load generator for OpenAI-compatible servers (in the spirit of `vllm bench serve`), run
against `lmstation serve` and llama.cpp's server from llama-cpp-python (`python -m
llama_cpp.server`) on the same model, one server at a time, same threads, same prompts.

For each concurrency level: fixed concurrency (or Poisson arrivals with --request-rate),
streamed /v1/completions; reports request throughput, output tokens/s, TTFT, TPOT, ITL and
end-to-end latency (mean, median, p99), and the lmstation / llama.cpp ratios.

Tokens are counted as streamed content chunks (both servers send one chunk per token).

  python tests/bench/bench_serve.py --model SmolLM2-135M-Instruct.Q4_1.gguf --threads 2 \\
      --concurrency 1,4,16 --output-len 64

Needs llama-cpp-python with its server extras (uvicorn, fastapi, sse-starlette,
starlette-context, pydantic-settings) for the peer; --peer none runs lmstation alone.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORDS = ("time year people way day man thing woman life child world school state family student group country "
         "problem hand part place case week company system program question work government number night point "
         "home water room mother area money story fact month lot right study book eye job word business issue side "
         "kind head house service friend father power hour game line end member law car city community name").split()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, path: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with code {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"server on port {port} did not become ready")


def make_prompts(n: int, input_words: int, seed: int, shared_prefix_words: int = 0) -> list[str]:
    rng = random.Random(seed)
    prefix = " ".join(rng.choice(WORDS) for _ in range(shared_prefix_words))
    out = []
    for i in range(n):
        body = " ".join(rng.choice(WORDS) for _ in range(input_words))
        out.append((prefix + "\n" if prefix else "") + f"Request {i}. Continue this list: {body}")
    return out


def one_request(port: int, prompt: str, max_tokens: int, extra: dict) -> dict:
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True, **extra}
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        return {"ok": False, "status": resp.status}
    times = []
    for raw in resp:
        line = raw.decode("utf-8", "replace").strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        for ch in chunk.get("choices", []):
            if ch.get("text"):
                times.append(time.perf_counter())
    conn.close()
    t1 = time.perf_counter()
    if not times:
        return {"ok": False, "status": "no tokens"}
    n = len(times)
    return {"ok": True, "ttft": times[0] - t0, "e2e": t1 - t0, "tokens": n,
            "tpot": (times[-1] - times[0]) / (n - 1) if n > 1 else 0.0,
            "itl": [b - a for a, b in zip(times, times[1:])]}


def run_load(port: int, prompts: list[str], concurrency: int, max_tokens: int, rate: float, extra: dict) -> dict:
    results: list[dict] = []
    lock = threading.Lock()
    it = iter(enumerate(prompts))
    rng = random.Random(1)
    start = time.perf_counter()
    arrivals = []
    t = 0.0
    for _ in prompts:
        arrivals.append(t)
        if rate > 0:
            t += rng.expovariate(rate)

    def worker():
        while True:
            with lock:
                nxt = next(it, None)
            if nxt is None:
                return
            i, p = nxt
            delay = arrivals[i] - (time.perf_counter() - start)
            if delay > 0:
                time.sleep(delay)
            r = one_request(port, p, max_tokens, extra)
            with lock:
                results.append(r)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - start
    ok = [r for r in results if r["ok"]]

    def stats(xs):
        xs = sorted(xs)
        if not xs:
            return {"mean": float("nan"), "median": float("nan"), "p99": float("nan")}
        return {"mean": statistics.fmean(xs), "median": statistics.median(xs), "p99": xs[min(len(xs) - 1, int(0.99 * len(xs)))]}

    tokens = sum(r["tokens"] for r in ok)
    return {"requests": len(results), "failed": len(results) - len(ok), "wall_s": wall, "tokens": tokens,
            "req_per_s": len(ok) / wall, "output_tok_per_s": tokens / wall,
            "ttft": stats([r["ttft"] for r in ok]), "tpot": stats([r["tpot"] for r in ok]),
            "itl": stats([x for r in ok for x in r["itl"]]), "e2e": stats([r["e2e"] for r in ok])}


def prefix_ttft(port: int, words: int, reps: int, extra: dict) -> dict:
    """Cold vs warm time to first token with a long shared system prefix: for each rep a fresh
    prefix (so the first request computes it), then a second request with the same prefix and
    another question (which the prefix cache can serve)."""
    cold, warm = [], []
    for i in range(reps):
        rng = random.Random(1000 + i)
        prefix = f"System {i}: " + " ".join(rng.choice(WORDS) for _ in range(words))
        a = one_request(port, prefix + "\nQuestion: name a color.", 2, extra)
        b = one_request(port, prefix + "\nQuestion: name a number.", 2, extra)
        cold.append(a["ttft"])
        warm.append(b["ttft"])
    return {"cold_median_s": statistics.median(cold), "warm_median_s": statistics.median(warm),
            "ratio": statistics.median(cold) / statistics.median(warm)}


def start_lmstation(binary: str, model: str, threads: int, args) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = [binary, "-q", "serve", model, "--port", str(port), "-t", str(threads), "--max-running", str(args.max_running),
           "--token-budget", str(args.token_budget), "-c", str(args.ctx)]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    wait_ready(port, "/health", p)
    return p, port


def start_llamacpp(python: str, model: str, threads: int, args) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = [python, "-m", "llama_cpp.server", "--model", model, "--port", str(port), "--n_threads", str(threads),
           "--n_threads_batch", str(threads), "--n_ctx", str(args.ctx), "--verbose", "False",
           # By default a new request interrupts the running one; serve them all instead.
           "--interrupt_requests", "False"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, "/v1/models", p)
    return p, port


def fmt_row(name: str, c: int, r: dict) -> str:
    return (f"{name:10s} c={c:3d} req={r['requests']:4d} fail={r['failed']:3d} tokens={r['tokens']:5d} req/s={r['req_per_s']:6.2f} "
            f"out tok/s={r['output_tok_per_s']:7.1f} TTFT mean/med/p99={r['ttft']['mean']:.3f}/{r['ttft']['median']:.3f}/{r['ttft']['p99']:.3f}s "
            f"TPOT med={r['tpot']['median'] * 1000:.1f}ms ITL med/p99={r['itl']['median'] * 1000:.1f}/{r['itl']['p99'] * 1000:.1f}ms "
            f"e2e med/p99={r['e2e']['median']:.2f}/{r['e2e']['p99']:.2f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.environ.get("LMS_TEST_MODEL", str(Path.home() / ".cache/lmstation/models/SmolLM2-135M-Instruct.Q4_1.gguf")))
    ap.add_argument("--lmstation-bin", default=os.environ.get("LMSTATION_BIN", str(REPO / "build/app/lmstation")))
    ap.add_argument("--python", default=sys.executable, help="interpreter with llama_cpp.server")
    ap.add_argument("--peer", choices=["llamacpp", "none"], default="llamacpp")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--requests-per-stream", type=int, default=2, help="requests = max(8, this * concurrency)")
    ap.add_argument("--input-len", type=int, default=32, help="prompt length in words")
    ap.add_argument("--shared-prefix", type=int, default=0, help="words of a system prefix shared by all prompts")
    ap.add_argument("--output-len", type=int, default=64)
    ap.add_argument("--request-rate", type=float, default=0, help="Poisson arrivals per second (0: all at once)")
    ap.add_argument("--max-running", type=int, default=64)
    ap.add_argument("--token-budget", type=int, default=256)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--eos-ids", default="0,2", help="end-of-generation token ids the peer is kept from sampling")
    ap.add_argument("--prefix-words", type=int, default=0,
                    help="also measure cold vs warm TTFT with a shared prefix of this many words (e.g. 900)")
    ap.add_argument("--json", help="write all results here")
    args = ap.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]
    servers = [("lmstation", lambda: start_lmstation(args.lmstation_bin, args.model, args.threads, args), {"ignore_eos": True})]
    if args.peer == "llamacpp":
        # llama_cpp.server has no ignore_eos: a -100 logit bias on the end-of-generation tokens
        # makes both servers produce the full output length.
        bias = {str(t): -100 for t in args.eos_ids.split(",")}
        servers.append(("llama.cpp", lambda: start_llamacpp(args.python, args.model, args.threads, args), {"logit_bias": bias}))
    all_results: dict = {}
    for name, start, extra in servers:
        proc, port = start()
        try:
            one_request(port, "warm up", 4, extra)
            for c in levels:
                prompts = make_prompts(max(8, args.requests_per_stream * c), args.input_len, seed=c, shared_prefix_words=args.shared_prefix)
                r = run_load(port, prompts, c, args.output_len, args.request_rate, extra)
                all_results.setdefault(name, {})[c] = r
                print(fmt_row(name, c, r), flush=True)
            if args.prefix_words > 0:
                pr = prefix_ttft(port, args.prefix_words, 3, extra)
                all_results.setdefault(name, {})["prefix"] = pr
                print(f"{name:10s} shared prefix of {args.prefix_words} words: cold TTFT {pr['cold_median_s']:.3f}s, "
                      f"warm {pr['warm_median_s']:.3f}s, cold/warm x{pr['ratio']:.1f}", flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    if "llama.cpp" in all_results:
        print("\nratios lmstation / llama.cpp (same run, same prompts):")
        for c in levels:
            a, b = all_results["lmstation"][c], all_results["llama.cpp"][c]
            print(f"  c={c:3d} output tok/s x{a['output_tok_per_s'] / b['output_tok_per_s']:.2f}  "
                  f"median TTFT x{a['ttft']['median'] / b['ttft']['median']:.3f} (lower is better)  "
                  f"median e2e x{a['e2e']['median'] / b['e2e']['median']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(all_results, indent=1))


if __name__ == "__main__":
    main()

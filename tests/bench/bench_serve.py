#!/usr/bin/env python3
"""Serving load generator: lmstation serve vs llama.cpp's llama-server, in the same run.

Usage:
  python3 tests/bench/bench_serve.py [--model M.gguf] [--threads 2] [--concurrency 1,4,16,64]
         [--requests N] [--prompt-len 64:256] [--output-len 128] [--rate R] [--prefix-test]
         [--peers lmstation,llama] [--lms-bin PATH] [--llama-server PATH] [--out results.json]
  python3 tests/bench/bench_serve.py --capacity-test [--cap-tokens 4096] [--cap-concurrency 64]
         [--cap-output-len 64] [--cap-prefix 1000] [--cap-workloads shared,distinct]
         [--cap-llama reserve,unified]

What it does, for each peer and each concurrency level C (peers alternate level by level):
  * starts the server (lmstation: `serve -t T --max-running C`; llama-server: `-t T -tb T -np C
    -cb -c C*(prompt+output+64)`, i.e. the same per-sequence context), waits for /health,
    sends a few warm-up requests;
  * sends N requests (default max(2C, 16)) to POST /v1/completions with stream=true, each a
    slice of English text from assets/text/ of a length drawn from --prompt-len (tokens,
    approximated as 4 characters each), max_tokens --output-len, temperature 0; C requests are
    in flight at once (closed loop), or with --rate R they arrive as a Poisson process of R
    requests/s (open loop, at most C in flight);
  * per request: TTFT (send -> first token chunk), ITL (gaps between token chunks), TPOT
    ((e2e - TTFT) / (tokens - 1)), e2e latency; output tokens from the final `usage`, else the
    number of token chunks.
  Reported per peer and level: request throughput, output tokens/s, TTFT/TPOT/ITL/e2e mean,
  median and p99; and the ratios lmstation / llama.cpp of output tokens/s and of median TTFT.
  For lmstation, /metrics is sampled every 0.25 s during the load: the KV fill of the blocks in
  use (lmstation_kv_fill_ratio, tokens held / blocks in use x block size), mean and minimum.
  --prefix-test: with one stream, a ~1,000-token shared system prefix: the TTFT of the first
  request (cold) against the median TTFT of the next ones that share it (warm), per peer.

--capacity-test: how many sequences each server runs at once in the same KV memory.
  Assumptions, stated so the figure can be judged:
  * Same KV bytes. Both caches are f16 and hold the same number of token cells, at most
    CAP_TOKENS: llama-server gets `-c CELLS` (CELLS a whole number of its slots, each a
    multiple of 256 cells, as llama.cpp rounds slot contexts up to that), lmstation
    `--kv-mem CELLS x (layers x 2 x KV heads x head size x 2 bytes) / MiB` (blocks of 16
    tokens). The slot contexts llama-server reports in /slots are printed to check it.
  * Same workload, offered to both: CAP_CONCURRENCY requests in flight (closed loop), 1.5x that
    many in all, streamed, temperature 0, ignore_eos (every request runs to max_tokens).
    Two workloads: "shared" (a system prefix of about CAP_PREFIX tokens, default 1,000, common
    to all, then 16-32 tokens of its own; chat-style serving) and "distinct" (64-256 prompt
    tokens of its own).
  * llama.cpp, two configurations. "reserve": separate per-slot caches (-no-kvu) with as many
    slots as fit when every slot can reach a request's longest prompt + max_tokens
    (`-np = CAP_TOKENS // (longest prompt + max_tokens + 64)`): no admitted request can fail.
    "unified": one cache shared by all slots (-kvu) with `-np CAP_CONCURRENCY`: it admits
    everything, and the run shows how many requests then fail for want of KV space.
  * Sequences running at once: lmstation's /metrics lmstation_requests_running, llama-server's
    /slots (slots with is_processing), sampled every 0.25 s while requests are still queued
    behind the in-flight ones (the servers are saturated); median and maximum reported, with
    failed requests. Ratio: lmstation's median over llama.cpp's median.
  lmstation holds only the blocks a sequence has filled (a shared prefix once, through the
  prefix cache) and preempts when it runs out; llama.cpp reserves a slot's whole context.

Exit 77 when a peer binary or the model is missing. Not run by ctest (timings need a quiet
machine; quote medians and ratios).
"""

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lmstation"


def default_model():
    if os.environ.get("LMS_TEST_MODEL"):
        return Path(os.environ["LMS_TEST_MODEL"])
    d = Path(os.environ["LMS_MODEL_DIR"]) if os.environ.get("LMS_MODEL_DIR") else CACHE / "models"
    return d / "SmolLM2-135M-Instruct.Q4_1.gguf"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values, q):
    if not values:
        return float("nan")
    v = sorted(values)
    i = min(len(v) - 1, max(0, int(round(q / 100.0 * (len(v) - 1)))))
    return v[i]


def summary(values):
    if not values:
        return {"mean": float("nan"), "median": float("nan"), "p99": float("nan")}
    return {"mean": statistics.fmean(values), "median": statistics.median(values), "p99": pct(values, 99)}


class Server:
    """A server process on 127.0.0.1:port, stopped on exit."""

    def __init__(self, name, cmd, port, log_path):
        self.name, self.cmd, self.port = name, cmd, port
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout=180):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log.name}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/health")
                r = c.getresponse()
                r.read()
                if r.status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} not ready after {timeout}s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def stream_completion(port, prompt, max_tokens, model_name):
    """One streamed /v1/completions request. Returns timings and token count."""
    body = json.dumps({"model": model_name, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                       "stream": True, "stream_options": {"include_usage": True},
                       "ignore_eos": True})  # both servers accept it: every request runs full length
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:300]!r}")
    stamps, usage_tokens = [], None
    buf = b""
    while True:
        chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(1)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            for line in event.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    continue
                obj = json.loads(data)
                if obj.get("usage") and obj["usage"].get("completion_tokens") is not None:
                    usage_tokens = obj["usage"]["completion_tokens"]
                choices = obj.get("choices") or []
                if choices and choices[0].get("text"):
                    stamps.append(time.perf_counter())
    t1 = time.perf_counter()
    conn.close()
    if not stamps:
        raise RuntimeError("no tokens streamed")
    n = usage_tokens if usage_tokens else len(stamps)
    ttft = stamps[0] - t0
    e2e = t1 - t0
    itl = [b - a for a, b in zip(stamps, stamps[1:])]
    tpot = (e2e - ttft) / (n - 1) if n > 1 else float("nan")
    return {"ttft": ttft, "e2e": e2e, "itl": itl, "tpot": tpot, "tokens": n}


def make_prompts(n, lo, hi, rng):
    text = " ".join(p.read_text() for p in sorted((ROOT / "assets/text").glob("*.txt")))
    text = " ".join(text.split())
    prompts = []
    for _ in range(n):
        chars = 4 * rng.randint(lo, hi)
        start = rng.randrange(0, max(1, len(text) - chars))
        prompts.append(text[start:start + chars])
    return prompts


def http_get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def lms_metrics(port):
    """lmstation's /metrics as {name: value} (unlabelled samples only)."""
    _, body = http_get(port, "/metrics")
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.split()
            out[name] = float(value)
    return out


def llama_slots_processing(port):
    """Slots of llama-server busy with a request (prompt or generation), from GET /slots."""
    status, body = http_get(port, "/slots")
    if status != 200:
        raise RuntimeError(f"llama-server /slots: HTTP {status}")
    return sum(1 for slot in json.loads(body) if slot.get("is_processing"))


def run_load(port, prompts, max_tokens, concurrency, rate, model_name, rng, probe=None, probe_period=0.25):
    """Sends the prompts; with `probe`, calls it every probe_period seconds during the load and
    returns its values as samples [(saturated, value)], saturated meaning requests were still
    queued behind the `concurrency` in flight."""
    results, errors, samples, probe_errors = [], [], [], []
    lock = threading.Lock()
    sem = threading.Semaphore(concurrency)
    state = {"sent": 0, "stop": False}

    def sampler():
        while not state["stop"]:
            saturated = state["sent"] < len(prompts)
            try:
                samples.append((saturated, probe()))
            except Exception as e:  # noqa: BLE001 -- a missed sample is only reported
                probe_errors.append(str(e))
            time.sleep(probe_period)

    def worker(p):
        try:
            r = stream_completion(port, p, max_tokens, model_name)
            with lock:
                results.append(r)
        except Exception as e:  # noqa: BLE001 -- counted and reported
            with lock:
                errors.append(str(e))
        finally:
            sem.release()

    threads = []
    probe_thread = threading.Thread(target=sampler) if probe else None
    t0 = time.perf_counter()
    if probe_thread:
        probe_thread.start()
    for p in prompts:
        if rate:
            time.sleep(rng.expovariate(rate))
        sem.acquire()
        t = threading.Thread(target=worker, args=(p,))
        t.start()
        threads.append(t)
        state["sent"] += 1
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    state["stop"] = True
    if probe_thread:
        probe_thread.join()
    toks = sum(r["tokens"] for r in results)
    return {
        "requests": len(results), "errors": len(errors), "error_samples": errors[:3], "wall_s": wall,
        "req_per_s": len(results) / wall, "out_tok_per_s": toks / wall, "output_tokens": toks,
        "ttft": summary([r["ttft"] for r in results]), "tpot": summary([r["tpot"] for r in results if r["tokens"] > 1]),
        "itl": summary([x for r in results for x in r["itl"]]), "e2e": summary([r["e2e"] for r in results]),
        "samples": samples, "probe_errors": len(probe_errors),
    }


def start_peer(peer, args, conc, ctx_per_seq, logdir):
    port = free_port()
    if peer == "lmstation":
        cmd = [args.lms_bin, "serve", str(args.model), "--port", str(port), "-t", str(args.threads),
               "--max-running", str(conc), "--max-waiting", str(max(64, 4 * conc)), "-c", str(ctx_per_seq),
               "--http-threads", str(max(8, conc + 4))] + args.lms_args.split()
    else:
        cmd = [args.llama_server, "-m", str(args.model), "--port", str(port), "--host", "127.0.0.1",
               "-t", str(args.threads), "-tb", str(args.threads), "-np", str(conc), "-cb",
               "-c", str(conc * ctx_per_seq), "--log-disable"] + args.llama_args.split()
    s = Server(peer, cmd, port, logdir / f"{peer}-c{conc}.log")
    s.wait_ready()
    return s


def count_tokens(lms_bin, model, texts, logdir):
    """Token counts of `texts` with the model's tokenizer (`lmstation tokenize --file`)."""
    path = logdir / "capacity-prompts.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in texts))
    out = subprocess.run([lms_bin, "tokenize", str(model), "--file", str(path)], capture_output=True, text=True, check=True).stdout
    return [len(line.split()) for line in out.splitlines()]


def f16_kv_bytes_per_token(lms_bin, model):
    """K and V bytes one token takes in an f16 cache: layers x 2 x KV heads x head size x 2."""
    out = subprocess.run([lms_bin, "info", str(model), "--json"], capture_output=True, text=True, check=True).stdout
    h = json.loads(out)["hparams"]
    return h["n_layers"] * 2 * h["n_kv_heads"] * h["head_dim"] * 2


def llama_kv_cells(port):
    """Context cells llama-server gave its slots, from GET /slots."""
    _, body = http_get(port, "/slots")
    return [slot.get("n_ctx") for slot in json.loads(body)]


def capacity_test(args, logdir):
    """See --capacity-test in the module docstring."""
    rng = random.Random(args.seed)
    conc, out_len = args.cap_concurrency, args.cap_output_len
    n_req = conc + conc // 2
    prefix = make_prompts(1, args.cap_prefix, args.cap_prefix, rng)[0]
    workloads = {
        "shared": [prefix + " " + sfx for sfx in make_prompts(n_req, 16, 32, rng)],
        "distinct": make_prompts(n_req, 64, 256, rng),
    }
    workloads = {k: v for k, v in workloads.items() if k in args.cap_workloads.split(",")}
    report = {"kv_tokens": args.cap_tokens, "concurrency": conc, "requests": n_req, "output_len": out_len, "workloads": {}}
    per_token = f16_kv_bytes_per_token(args.lms_bin, args.model)
    for name, prompts in workloads.items():
        longest = max(count_tokens(args.lms_bin, args.model, prompts, logdir))
        per_seq = longest + out_len + 64
        # llama.cpp rounds each slot's context up to a multiple of 256 cells: size the slots so,
        # then give every configuration the same number of cells.
        slot_cells = -(-per_seq // 256) * 256
        slots = max(1, args.cap_tokens // slot_cells)
        cells = slots * slot_cells
        kv_mib = cells * per_token / 1048576
        configs = [
            ("llama-reserve", ["-c", str(cells), "-np", str(slots), "-no-kvu"]),
            ("llama-unified", ["-c", str(cells), "-np", str(conc), "-kvu"]),
            ("lmstation", ["--kv-mem", f"{kv_mib:.4f}"]),
        ]
        configs = [c for c in configs if c[0] == "lmstation" or c[0][len("llama-"):] in args.cap_llama.split(",")]
        wl = {"longest_prompt_tokens": longest, "kv_cells": cells, "kv_mib": kv_mib, "llama_reserve_slots": slots}
        for peer, extra in configs:
            port = free_port()
            log = logdir / f"capacity-{name}-{peer}.log"
            if peer.startswith("llama"):
                cmd = [args.llama_server, "-m", str(args.model), "--port", str(port), "--host", "127.0.0.1",
                       "-t", str(args.threads), "-tb", str(args.threads), "-cb"] + extra
                probe = lambda port=port: llama_slots_processing(port)  # noqa: E731
            else:
                cmd = [args.lms_bin, "serve", str(args.model), "--port", str(port), "-t", str(args.threads),
                       "--max-running", str(conc), "--max-waiting", str(4 * conc), "-c", str(per_seq),
                       "--http-threads", str(conc + 8)] + extra
                probe = lambda port=port: lms_metrics(port)["lmstation_requests_running"]  # noqa: E731
            s = Server(peer, cmd, port, log)
            try:
                s.wait_ready()
                slot_ctx = llama_kv_cells(s.port) if peer.startswith("llama") else None
                r = run_load(s.port, prompts, out_len, conc, 0.0, "bench", random.Random(args.seed), probe=probe)
            finally:
                s.stop()
            running = [v for saturated, v in r.pop("samples") if saturated]
            wl[peer] = {"running_median": statistics.median(running) if running else float("nan"),
                        "running_max": max(running) if running else float("nan"), "samples": len(running),
                        "requests_ok": r["requests"], "requests_failed": r["errors"], "error_samples": r["error_samples"],
                        "out_tok_per_s": r["out_tok_per_s"], "slot_n_ctx": slot_ctx}
            w = wl[peer]
            print(f"capacity {name:8s} {peer:13s} running at once: median {w['running_median']:.0f} max {w['running_max']:.0f} "
                  f"({w['samples']} samples)  ok {w['requests_ok']} failed {w['requests_failed']}  "
                  f"out tok/s {w['out_tok_per_s']:.1f}" + (f"  slot n_ctx {slot_ctx[:3]}..." if slot_ctx else ""), flush=True)
        for ref in ("llama-reserve", "llama-unified"):
            if ref in wl:
                wl[f"ratio_vs_{ref}"] = wl["lmstation"]["running_median"] / max(wl[ref]["running_median"], 1e-9)
                print(f"capacity {name:8s} ratio lmstation/{ref} sequences at once (medians): {wl[f'ratio_vs_{ref}']:.2f}x "
                      f"({wl[ref]['requests_failed']} of llama.cpp's requests failed, {wl['lmstation']['requests_failed']} of lmstation's)",
                      flush=True)
        report["workloads"][name] = wl
    return report


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=default_model())
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--concurrency", default="1,4,16,64")
    ap.add_argument("--requests", type=int, default=0, help="requests per level (default max(2C, 16))")
    ap.add_argument("--prompt-len", default="64:256", help="prompt tokens, uniform LO:HI")
    ap.add_argument("--output-len", type=int, default=128)
    ap.add_argument("--rate", type=float, default=0.0, help="Poisson arrivals per second (0: closed loop)")
    ap.add_argument("--prefix-test", action="store_true")
    ap.add_argument("--capacity-test", action="store_true", help="only the same-KV-memory capacity test")
    ap.add_argument("--cap-tokens", type=int, default=4096, help="llama-server -c for the capacity test")
    ap.add_argument("--cap-concurrency", type=int, default=64)
    ap.add_argument("--cap-output-len", type=int, default=64)
    ap.add_argument("--cap-prefix", type=int, default=1000, help="shared prefix tokens (about) of the shared workload")
    ap.add_argument("--cap-workloads", default="shared,distinct")
    ap.add_argument("--cap-llama", default="reserve,unified", help="llama-server configurations to run")
    ap.add_argument("--peers", default="lmstation,llama")
    ap.add_argument("--lms-bin", default=os.environ.get("LMSTATION_BIN", str(ROOT / "build/app/lmstation")))
    ap.add_argument("--llama-server", default=str(CACHE / "llama-server/bin/llama-server"))
    ap.add_argument("--lms-args", default="")
    ap.add_argument("--llama-args", default="")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    peers = [p for p in args.peers.split(",") if p]
    if not args.model.exists():
        print(f"SKIP: model {args.model} not found (lmstation pull smollm2)", file=sys.stderr)
        return 77
    if "lmstation" in peers and not os.access(args.lms_bin, os.X_OK):
        print(f"SKIP: {args.lms_bin} not built", file=sys.stderr)
        return 77
    if "llama" in peers and not os.access(args.llama_server, os.X_OK):
        print(f"SKIP: {args.llama_server} missing (tests/bench/build_llama_server.sh builds it)", file=sys.stderr)
        return 77
    lo, hi = (int(x) for x in args.prompt_len.split(":"))
    ctx_per_seq = hi + args.output_len + 64
    logdir = Path(os.environ.get("TMPDIR", "/tmp")) / "lms-bench-serve"
    logdir.mkdir(parents=True, exist_ok=True)
    report = {"model": args.model.name, "threads": args.threads, "levels": {}, "prefix": {}}
    if args.capacity_test:
        report["capacity"] = capacity_test(args, logdir)
        if args.out:
            args.out.write_text(json.dumps(report, indent=2))
        return 0

    for conc in [int(c) for c in args.concurrency.split(",")]:
        n = args.requests or max(2 * conc, 16)
        prompts = make_prompts(n, lo, hi, random.Random(args.seed + conc))
        level = {}
        order = peers if conc % 2 else list(reversed(peers))  # alternate who goes first
        for peer in order:
            s = start_peer(peer, args, conc, ctx_per_seq, logdir)
            try:
                for p in make_prompts(min(conc, 4), 16, 32, random.Random(0)):
                    stream_completion(s.port, p, 8, "bench")  # warm-up
                probe = (lambda port=s.port: lms_metrics(port)) if peer == "lmstation" else None
                level[peer] = run_load(s.port, prompts, args.output_len, conc, args.rate, "bench",
                                       random.Random(args.seed), probe=probe)
            finally:
                s.stop()
            r = level[peer]
            if peer == "lmstation":
                # KV fill of the blocks in use, over the samples where some were in use.
                fills = [m["lmstation_kv_fill_ratio"] for _, m in r.pop("samples") if m.get("lmstation_kv_blocks_used")]
                r["kv_fill"] = {"mean": statistics.fmean(fills) if fills else float("nan"),
                                "min": min(fills) if fills else float("nan"), "samples": len(fills)}
                print(f"C={conc:3d} lmstation KV fill of blocks in use: mean {r['kv_fill']['mean']*100:.1f}% "
                      f"min {r['kv_fill']['min']*100:.1f}% ({len(fills)} samples)", flush=True)
            else:
                r.pop("samples")
            print(f"C={conc:3d} {peer:9s} req/s {r['req_per_s']:.2f}  out tok/s {r['out_tok_per_s']:.1f}  "
                  f"TTFT med {r['ttft']['median']*1e3:.0f} ms p99 {r['ttft']['p99']*1e3:.0f}  "
                  f"TPOT med {r['tpot']['median']*1e3:.1f} ms  ITL med {r['itl']['median']*1e3:.1f} ms  "
                  f"e2e med {r['e2e']['median']:.2f} s  errors {r['errors']}", flush=True)
        if "lmstation" in level and "llama" in level:
            a, b = level["lmstation"], level["llama"]
            level["ratio_out_tok_per_s"] = a["out_tok_per_s"] / b["out_tok_per_s"]
            level["ratio_median_ttft"] = a["ttft"]["median"] / b["ttft"]["median"]
            print(f"C={conc:3d} ratio lmstation/llama.cpp: output tok/s {level['ratio_out_tok_per_s']:.2f}x, "
                  f"median TTFT {level['ratio_median_ttft']:.2f}x (lower is better)", flush=True)
        report["levels"][str(conc)] = level

    if args.prefix_test:
        rng = random.Random(args.seed)
        prefix = make_prompts(1, 1000, 1000, rng)[0]
        suffixes = make_prompts(8, 16, 32, rng)
        for peer in peers:
            s = start_peer(peer, args, 1, 1000 + 32 + args.output_len + 64, logdir)
            try:
                ttfts = [stream_completion(s.port, prefix + " " + sfx, 16, "bench")["ttft"] for sfx in suffixes]
            finally:
                s.stop()
            cold, warm = ttfts[0], statistics.median(ttfts[1:])
            report["prefix"][peer] = {"cold_ttft": cold, "warm_ttft_median": warm, "cold_over_warm": cold / warm}
            print(f"prefix {peer:9s} cold TTFT {cold*1e3:.0f} ms, warm median {warm*1e3:.0f} ms: "
                  f"{cold / warm:.1f}x", flush=True)

    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

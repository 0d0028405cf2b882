"""Soak test for `lmstation serve` (loopback only, bounded): many concurrent requests mixing
normal and streamed greedy requests, streams cancelled mid-way, whole-answer requests whose
client leaves before the answer, malformed JSON, unknown fields,
oversize prompts, bad parameters and n > 1, in a KV cache small enough to force preemption. Checks that the server stays up, every well-formed
greedy request gets exactly the text the same request gets when it runs alone, every bad one
gets the right OpenAI error, and KV block usage returns to idle.

Env: LMS_SOAK_REQUESTS (default 300), LMS_SOAK_CONCURRENCY (default 16). Exits 77 without the
model or the lmstation binary.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from refcommon import lmstation_bin, model_path, skip  # noqa: E402,F401

PROMPTS = ["The capital of France is", "List three colors:", "def add(a, b):", "Water boils at",
           "The quick brown fox", "Once upon a time"]
QUESTIONS = ["What is 2+2?", "Name a planet.", "Say hello."]


def post(port, path, body: bytes, timeout=300):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def stream_text(port, path, body: dict, cancel_after=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    if r.status != 200:
        return r.status, None
    text, chunks, done = {}, 0, False
    for raw in r:
        line = raw.decode("utf-8", "replace").strip()
        if not line.startswith("data: "):
            continue
        if line == "data: [DONE]":
            done = True
            break
        for ch in json.loads(line[6:]).get("choices", []):
            piece = ch.get("text") if "text" in ch else (ch.get("delta") or {}).get("content")
            text[ch["index"]] = text.get(ch["index"], "") + (piece or "")
        chunks += 1
        if cancel_after is not None and chunks >= cancel_after:
            conn.close()  # the client goes away mid-stream
            return 200, "cancelled"
    conn.close()
    return 200, (text if done else None)


def metric(port, name):
    _, body = get(port, "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def main():
    model = model_path()
    binary = lmstation_bin()
    n_requests = int(os.environ.get("LMS_SOAK_REQUESTS", "300"))
    concurrency = int(os.environ.get("LMS_SOAK_CONCURRENCY", "16"))
    cmd = [str(binary), "serve", str(model), "--port", "0", "-t", "2", "-c", "512", "--max-running", "16",
           "--max-waiting", "1024", "--http-threads", str(concurrency + 8), "--kv-mem", "8"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    port = None
    for line in proc.stderr:
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        raise SystemExit("FAIL: the server did not start")
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    failures = []
    lock = threading.Lock()

    def fail(what):
        with lock:
            failures.append(what)
            print("FAIL", what, flush=True)

    try:
        idle_blocks = metric(port, "lmstation_kv_blocks_used")
        # Expected greedy answers, each request alone.
        want_c = {}
        for p in PROMPTS:
            s, b = post(port, "/v1/completions", json.dumps({"prompt": p, "max_tokens": 8, "temperature": 0}).encode())
            want_c[p] = json.loads(b)["choices"][0]["text"]
        want_chat = {}
        for q in QUESTIONS:
            s, b = post(port, "/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": q}], "max_tokens": 8, "temperature": 0}).encode())
            want_chat[q] = json.loads(b)["choices"][0]["message"]["content"]

        kinds = ["normal", "stream", "cancel", "abandon", "malformed", "unknown", "oversize", "badparam", "n"]
        rng = random.Random(42)
        jobs = [rng.choice(kinds) for _ in range(n_requests)]
        counts = {k: 0 for k in kinds}
        it = iter(jobs)

        def one(kind):
            counts[kind] += 1
            p = rng.choice(PROMPTS)
            q = rng.choice(QUESTIONS)
            if kind == "normal":
                s, b = post(port, "/v1/completions", json.dumps({"prompt": p, "max_tokens": 8, "temperature": 0}).encode())
                if s != 200 or json.loads(b)["choices"][0]["text"] != want_c[p]:
                    fail(f"normal {p!r}: {s} {b[:200]!r}")
            elif kind == "stream":
                s, text = stream_text(port, "/v1/chat/completions", {"messages": [{"role": "user", "content": q}], "max_tokens": 8,
                                                                     "temperature": 0, "stream": True})
                if s != 200 or text is None or text.get(0) != want_chat[q]:
                    fail(f"stream {q!r}: {s} {text!r} vs {want_chat[q]!r}")
            elif kind == "cancel":
                s, text = stream_text(port, "/v1/completions", {"prompt": p, "max_tokens": 200, "temperature": 0.7, "stream": True,
                                                                "ignore_eos": True}, cancel_after=rng.randint(2, 60))
                if s != 200:
                    fail(f"cancel: {s}")
            elif kind == "abandon":  # a non-streaming request whose client leaves before the answer
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                conn.request("POST", "/v1/completions", body=json.dumps({"prompt": p, "max_tokens": 200, "temperature": 0.7,
                                                                          "ignore_eos": True}),
                             headers={"Content-Type": "application/json"})
                time.sleep(rng.uniform(0.05, 1.0))
                conn.close()
            elif kind == "malformed":
                s, b = post(port, "/v1/chat/completions", b'{"messages": [{"role": "user", "content": "hi"}')
                if s != 400 or "error" not in json.loads(b):
                    fail(f"malformed: {s} {b[:200]!r}")
            elif kind == "unknown":
                s, b = post(port, "/v1/completions", json.dumps({"prompt": p, "max_tokens": 8, "temperature": 0, "frobnicate": {"x": 1},
                                                                  "user": "soak"}).encode())
                if s != 200 or json.loads(b)["choices"][0]["text"] != want_c[p]:
                    fail(f"unknown fields: {s} {b[:200]!r}")
            elif kind == "oversize":
                s, b = post(port, "/v1/completions", json.dumps({"prompt": "word " * 700, "max_tokens": 4}).encode())
                if s != 400 or json.loads(b)["error"]["code"] != "context_length_exceeded":
                    fail(f"oversize: {s} {b[:200]!r}")
            elif kind == "badparam":
                bad = rng.choice([{"temperature": "hot"}, {"top_p": 0}, {"n": 0}, {"max_tokens": -3}, {"stop": [1, 2]}, {"logprobs": 99}])
                s, b = post(port, "/v1/completions", json.dumps({"prompt": p, **bad}).encode())
                if s != 400 or json.loads(b)["error"]["param"] != next(iter(bad)):
                    fail(f"badparam {bad}: {s} {b[:200]!r}")
            elif kind == "n":
                s, b = post(port, "/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": q}], "max_tokens": 6,
                                                                       "temperature": 0.8, "n": 3, "seed": 5}).encode())
                if s != 200 or sorted(c["index"] for c in json.loads(b)["choices"]) != [0, 1, 2]:
                    fail(f"n=3: {s} {b[:200]!r}")

        def worker():
            while True:
                with lock:
                    kind = next(it, None)
                if kind is None:
                    return
                try:
                    one(kind)
                except Exception as e:  # a dropped connection or a bad body is a failure too
                    fail(f"{kind}: {type(e).__name__}: {e}")

        t0 = time.time()
        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        print(f"{n_requests} requests at concurrency {concurrency} in {time.time() - t0:.1f}s: {counts}", flush=True)
        if proc.poll() is not None:
            fail(f"the server died (rc {proc.returncode})")
        s, _ = get(port, "/health")
        if s != 200:
            fail("/health after the soak")
        deadline = time.time() + 60
        while time.time() < deadline and (metric(port, "lmstation_kv_blocks_used") != idle_blocks or metric(port, "lmstation_requests_running")):
            time.sleep(0.5)
        used = metric(port, "lmstation_kv_blocks_used")
        if used != idle_blocks:
            fail(f"KV blocks in use {used}, idle value {idle_blocks}")
        print(f"preemptions {metric(port, 'lmstation_preemptions_total')}, cancelled {metric(port, 'lmstation_requests_cancelled_total')}, "
              f"prefix hit rate {metric(port, 'lmstation_prefix_cache_hit_rate'):.3f}", flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=60)
            if rc != 0:
                failures.append(f"server exit code {rc}")
        except subprocess.TimeoutExpired:
            proc.kill()
            failures.append("server did not exit on SIGTERM")
    if failures:
        print(f"{len(failures)} failure(s)")
        sys.exit(1)
    print("soak passed")


if __name__ == "__main__":
    main()

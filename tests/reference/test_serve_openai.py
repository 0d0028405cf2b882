"""`lmstation serve` driven by the real `openai` client (PyPI) and by curl.

Checks: /v1/models; chat and completions, whole and streamed (SSE ending with [DONE], usage
chunk); greedy text through the server equals `lmstation run` greedy text for the same prompt;
n > 1 with a seed is reproducible; logprobs; stop strings; errors in OpenAI's shape (401 bad or
missing key, 400 bad parameter naming it, 400 malformed JSON, 400 context exceeded, 413 body
too large, 503 queue full); a client that goes away, streaming or waiting for a whole answer, is
cancelled and KV usage returns to idle.

Exits 77 (skip) without the openai package, the model or the lmstation binary.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, __import__("os").path.dirname(__file__))
from refcommon import lmstation_bin, model_path, skip  # noqa: E402

KEY = "test-key-123"
failures: list[str] = []


def check(cond: bool, what: str) -> None:
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def start_server(binary, model, extra):
    cmd = [str(binary), "serve", str(model), "--port", "0", "-t", "2", "--api-key", KEY,
           "--served-model-name", "smol", "-c", "1024"] + extra
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    port = None
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        proc.kill()
        raise SystemExit("FAIL: the server did not start")
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    return proc, port


def raw(port, method, path, body=None, key=KEY, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    h = {"Content-Type": "application/json"}
    if key is not None:
        h["Authorization"] = f"Bearer {key}"
    h.update(headers or {})
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def run_greedy(binary, model, prompt, n, chat):
    cmd = [str(binary), "run", str(model), "-p", prompt, "-n", str(n), "--temp", "0", "--json", "-t", "2", "-c", "1024"]
    if chat:
        cmd.append("--chat")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out)["text"]


def metric(port, name):
    status, body = raw(port, "GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def main():
    try:
        import openai
    except ImportError as e:
        skip(f"the openai package is not importable by {sys.executable}: {e}")
    model = model_path()
    binary = lmstation_bin()
    proc, port = start_server(binary, model, ["--max-running", "2", "--max-waiting", "4", "--max-body", "65536"])
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0, timeout=120)
        models = client.models.list()
        check([m.id for m in models.data] == ["smol"], "GET /v1/models lists the served model")

        # Greedy through the server equals `lmstation run`.
        prompt = "The capital of France is"
        want = run_greedy(binary, model, prompt, 16, chat=False)
        c = client.completions.create(model="smol", prompt=prompt, max_tokens=16, temperature=0)
        check(c.choices[0].text == want, f"completions greedy == run: {c.choices[0].text!r} vs {want!r}")
        check(c.choices[0].finish_reason == "length" and c.usage.completion_tokens == 16, "completions finish_reason/usage")
        check(c.object == "text_completion", "completions object")

        question = "What is the tallest mountain on Earth?"
        want_chat = run_greedy(binary, model, question, 24, chat=True)
        msgs = [{"role": "user", "content": question}]
        r = client.chat.completions.create(model="smol", messages=msgs, max_tokens=24, temperature=0)
        check(r.choices[0].message.content == want_chat, f"chat greedy == run --chat: {r.choices[0].message.content!r} vs {want_chat!r}")
        check(r.choices[0].message.role == "assistant" and r.object == "chat.completion", "chat message shape")
        check(r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, "chat usage adds up")
        check((r.usage.prompt_tokens_details.cached_tokens or 0) >= 0, "usage has cached_tokens")

        # Streaming, chat and completions, with a usage chunk.
        stream = client.chat.completions.create(model="smol", messages=msgs, max_tokens=24, temperature=0, stream=True,
                                                stream_options={"include_usage": True})
        text, finish, usage = "", None, None
        for chunk in stream:
            if chunk.usage:
                usage = chunk.usage
            for ch in chunk.choices:
                text += ch.delta.content or ""
                finish = ch.finish_reason or finish
        check(text == want_chat, "chat streamed text == whole text")
        check(finish is not None and usage is not None and usage.completion_tokens == r.usage.completion_tokens,
              "chat stream ends with finish_reason and usage")
        stream = client.completions.create(model="smol", prompt=prompt, max_tokens=16, temperature=0, stream=True)
        check("".join(ch.choices[0].text for ch in stream if ch.choices) == want, "completions streamed text == run")

        # n > 1 with a seed: three choices, reproducible.
        a = client.chat.completions.create(model="smol", messages=msgs, max_tokens=12, temperature=1.0, n=3, seed=7)
        b = client.chat.completions.create(model="smol", messages=msgs, max_tokens=12, temperature=1.0, n=3, seed=7)
        check(sorted(ch.index for ch in a.choices) == [0, 1, 2], "n=3 gives three choices")
        check([ch.message.content for ch in a.choices] == [ch.message.content for ch in b.choices], "same seed, same choices")
        check(len({ch.message.content for ch in a.choices}) > 1, "choices differ from each other")
        sa = client.chat.completions.create(model="smol", messages=msgs, max_tokens=12, temperature=1.0, n=2, seed=7, stream=True)
        texts = {}
        for chunk in sa:
            for ch in chunk.choices:
                texts[ch.index] = texts.get(ch.index, "") + (ch.delta.content or "")
        check([texts.get(0), texts.get(1)] == [a.choices[0].message.content, a.choices[1].message.content],
              "streamed n=2 choices equal the whole ones with the same seed")

        # Logprobs.
        lp = client.chat.completions.create(model="smol", messages=msgs, max_tokens=8, temperature=0, logprobs=True, top_logprobs=3)
        content = lp.choices[0].logprobs.content
        check(len(content) == lp.usage.completion_tokens, "one logprob entry per token")
        check(all(e.logprob <= 0 and len(e.top_logprobs) == 3 and e.top_logprobs[0].token == e.token for e in content),
              "greedy token is the top logprob")
        clp = client.completions.create(model="smol", prompt=prompt, max_tokens=4, temperature=0, logprobs=2)
        check(len(clp.choices[0].logprobs.tokens) == 4 and len(clp.choices[0].logprobs.top_logprobs[0]) == 2,
              "completions legacy logprobs")

        # Stop string: the text ends right before it.
        word = want.split()[2] if len(want.split()) > 2 else want.strip()[:3]
        s = client.completions.create(model="smol", prompt=prompt, max_tokens=16, temperature=0, stop=[word])
        check(s.choices[0].finish_reason == "stop" and s.choices[0].text == want[: want.find(word)], f"stop string {word!r}")

        # Errors.
        bad = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong", max_retries=0)
        try:
            bad.models.list()
            check(False, "wrong key refused")
        except openai.AuthenticationError as e:
            check(e.status_code == 401, "wrong key: 401")
        status, body = raw(port, "GET", "/health", key=None)
        check(status == 401 and "error" in json.loads(body), "missing key on /health: 401 with error JSON")
        try:
            client.chat.completions.create(model="smol", messages=msgs, temperature=5)
            check(False, "temperature 5 refused")
        except openai.BadRequestError as e:
            check(e.status_code == 400 and e.body.get("param") == "temperature", "bad temperature: 400 naming it")
        try:
            client.completions.create(model="smol", prompt="hello " * 1200, max_tokens=4)
            check(False, "oversize prompt refused")
        except openai.BadRequestError as e:
            check(e.body.get("code") == "context_length_exceeded", "oversize prompt: 400 context_length_exceeded")
        status, body = raw(port, "POST", "/v1/chat/completions", body=b"{not json")
        check(status == 400 and json.loads(body)["error"]["type"] == "invalid_request_error", "malformed JSON: 400")
        status, body = raw(port, "POST", "/v1/chat/completions", body=json.dumps({"messages": "hi"}).encode())
        check(status == 400 and json.loads(body)["error"]["param"] == "messages", "messages not an array: 400 naming it")
        status, body = raw(port, "POST", "/v1/completions", body=b"x" * 100000)
        check(status == 413, f"body over --max-body: 413 (got {status})")

        # Queue full: 2 running + 4 waiting accepted, then 503. Streams opened and left unread.
        conns, statuses = [], []
        for i in range(9):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            body = json.dumps({"prompt": f"Count slowly {i}:", "max_tokens": 300, "stream": True, "ignore_eos": True})
            conn.request("POST", "/v1/completions", body=body, headers={"Authorization": f"Bearer {KEY}"})
            resp = conn.getresponse()
            statuses.append(resp.status)
            if resp.status == 503:
                err = json.loads(resp.read())
                check(err["error"]["code"] == "queue_full", "503 carries an OpenAI error")
            conns.append((conn, resp))
            time.sleep(0.3)  # lets the engine admit the first two, so the count below is exact
        check(statuses[:6] == [200] * 6 and statuses[6:] == [503] * 3, f"queue limit: 503 after 2 running + 4 waiting ({statuses})")
        for conn, resp in conns:  # clients go away mid-stream
            conn.close()
        deadline = time.time() + 60
        while time.time() < deadline and (metric(port, "lmstation_kv_blocks_used") != 0 or metric(port, "lmstation_requests_running") != 0):
            time.sleep(0.5)
        check(metric(port, "lmstation_kv_blocks_used") == 0, "disconnected streams are cancelled; KV blocks back to idle")
        check((metric(port, "lmstation_requests_cancelled_total") or 0) >= statuses.count(200), "cancellations counted")

        # Whole (non-streaming) answers whose clients go away: 2 running + 1 waiting, each asking
        # for far more tokens than the seconds allowed below can produce, so only a cancel ends them.
        cancelled_before = metric(port, "lmstation_requests_cancelled_total") or 0
        generated_before = metric(port, "lmstation_generation_tokens_total") or 0
        conns = []
        for i in range(3):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            body = json.dumps({"prompt": f"Write a very long story {i}:", "max_tokens": 900, "ignore_eos": True})
            conn.request("POST", "/v1/completions", body=body, headers={"Authorization": f"Bearer {KEY}"})
            conns.append(conn)
        deadline = time.time() + 30
        while time.time() < deadline and (metric(port, "lmstation_requests_running"), metric(port, "lmstation_requests_waiting")) != (2, 1):
            time.sleep(0.1)
        check((metric(port, "lmstation_requests_running"), metric(port, "lmstation_requests_waiting")) == (2, 1),
              "non-streaming: 2 running + 1 waiting before the clients leave")
        t0 = time.time()
        for conn in conns:
            conn.close()
        idle = lambda: [metric(port, n) for n in ("lmstation_requests_running", "lmstation_requests_waiting", "lmstation_kv_blocks_used")] == [0, 0, 0]
        while time.time() < t0 + 30 and not idle():
            time.sleep(0.05)
        elapsed = time.time() - t0
        generated = (metric(port, "lmstation_generation_tokens_total") or 0) - generated_before
        check(idle() and elapsed < 5, f"non-streaming clients gone: running/waiting/KV blocks back to idle in {elapsed:.2f} s")
        check((metric(port, "lmstation_requests_cancelled_total") or 0) - cancelled_before == 3,
              f"non-streaming disconnects cancelled, not finished ({generated:.0f} of 2700 tokens generated)")

        # curl: SSE lines, ending with [DONE].
        if shutil.which("curl"):
            out = subprocess.run(["curl", "-sN", f"http://127.0.0.1:{port}/v1/chat/completions", "-H", f"Authorization: Bearer {KEY}",
                                  "-H", "Content-Type: application/json", "-d",
                                  json.dumps({"messages": msgs, "max_tokens": 6, "temperature": 0, "stream": True})],
                                 capture_output=True, text=True, timeout=120).stdout
            events = [line for line in out.splitlines() if line and not line.startswith(":")]
            check(events and all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]",
                  f"curl: SSE ends with [DONE] ({out[:300]!r})")
            check(events[0].startswith("data: {") and json.loads(events[0][6:])["object"] == "chat.completion.chunk", "curl: chunk objects")
        prom = raw(port, "GET", "/metrics")[1].decode()
        check("lmstation_time_to_first_token_seconds_bucket" in prom and "lmstation_prefix_cache_hit_rate" in prom, "/metrics exposition")
        check((metric(port, "lmstation_prefix_cache_hits_total") or 0) > 0, "repeated prompts hit the prefix cache")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
            check(rc == 0, f"server exits cleanly on SIGTERM (rc {rc})")
        except subprocess.TimeoutExpired:
            proc.kill()
            check(False, "server exits on SIGTERM")
    if failures:
        print(f"{len(failures)} check(s) failed", flush=True)
        sys.exit(1)
    print("all serve checks passed")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The desktop app as a person sees it, under Xvfb (Mesa's software OpenGL).

Starts `lmstation --screenshot FILE --panel P` for each panel, and checks the saved picture
(the window's size, a rendered image rather than a blank one, panels that differ) and what the
panel reports it shows (the FILE.json companion): the Models panel lists the model and its
layer count as `lmstation info --json` gives it; the History panel lists the runs of a
database made by a batch job; the Chat panel answers a message through the serving engine with
the same greedy text `lmstation run --chat` produces, and saves the conversation to the record
(which the History panel then shows); the Log panel shows the engine's lines.
The Serve panel's server answers a client while its plots show the request; the Train panel
trains a tiny model and shows its loss, plan and pipeline timeline. The icon the app draws has the
SVG's colours at the SVG's coordinates, and text uses DejaVu Sans when installed. Also: without a display, `lmstation` says why it cannot open a window.

Screenshots are kept in $LMS_SCREENSHOT_DIR (default: build/tests/ui/screenshots).
Exit 77 (skipped) when xvfb-run, the model, or a GUI build is missing.
"""
import json
import os
import socket
import sqlite3
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path

SKIP = 77
DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"  # fonts-dejavu-core


def skip(why):
    print(f"SKIPPED: {why}")
    sys.exit(SKIP)


def read_png(path):
    """Width, height and RGBA rows of an unfiltered 8-bit RGBA PNG (as the app writes them)."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    w = h = 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour == 6, "expected 8-bit RGBA"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * 4 + 1
    rows = []
    for y in range(h):
        line = raw[y * stride:(y + 1) * stride]
        assert line[0] == 0, "expected unfiltered rows"
        rows.append(line[1:])
    return w, h, rows


def colours(rows, step=3):
    seen = set()
    for row in rows[::step]:
        for x in range(0, len(row), 4):
            seen.add(bytes(row[x:x + 3]))
    return seen


def main():
    binary = os.environ.get("LMSTATION_BIN") or str(Path(__file__).resolve().parents[2] / "build/app/lmstation")
    if not Path(binary).is_file():
        skip(f"no lmstation binary at {binary}")
    if not shutil.which("xvfb-run"):
        skip("xvfb-run is not installed (apt-get install xvfb xauth)")
    helptext = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    if "--screenshot" not in helptext:
        skip("this lmstation was built without the desktop app")
    model = os.environ.get("LMS_TEST_MODEL") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lmstation/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    if not Path(model).is_file():
        skip(f"model not found: {model} (lmstation pull smollm2)")

    shots = Path(os.environ.get("LMS_SCREENSHOT_DIR") or Path(binary).resolve().parents[1] / "tests/ui/screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="lms-ui-"))
    models_dir = work / "models"
    models_dir.mkdir()
    os.symlink(model, models_dir / Path(model).name)
    env = dict(os.environ, LMS_MODEL_DIR=str(models_dir), XDG_CONFIG_HOME=str(work / "config"))

    # Without a display the app explains itself.
    bare = {k: v for k, v in env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = subprocess.run([binary], env=bare, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r
    assert "cannot open the desktop window" in r.stderr and "no display" in r.stderr, r.stderr

    # The icon, drawn by code from the SVG's shapes: transparent corners, the background square,
    # an edge and the nodes in their colours at the SVG's coordinates.
    icon = work / "icon.png"
    subprocess.run([binary, "--icon-png", str(icon)], env=bare, check=True, timeout=60)
    w, h, rows = read_png(icon)
    assert (w, h) == (256, 256)
    px = lambda x, y: bytes(rows[y][4 * x:4 * x + 4])
    assert px(1, 1)[3] == 0, px(1, 1)
    expect = {(128, 30): "1d2330", (96, 106): "4f9cf5", (64, 84): "7fd67f", (128, 128): "f5c04f", (192, 172): "f07f6f"}
    for (x, y), colour in expect.items():
        assert px(x, y) == bytes.fromhex(colour + "ff"), ((x, y), px(x, y).hex(), colour)

    # A database with runs in it, made by a batch job.
    job = work / "job.toml"
    job.write_text(f'name = "ui-history"\ndb = "{work}/rec.db"\n[[step]]\nrun = "info"\nargs = ["{model}"]\n'
                   f'[[step]]\nname = "tokens"\nrun = "tokenize"\nargs = ["{model}", "hello"]\n')
    r = subprocess.run([binary, "--batch", str(job)], env=env, capture_output=True, text=True, cwd=work, timeout=120)
    assert r.returncode == 0, r.stderr

    def shot(panel, *extra, db="rec.db", name=None):
        png = shots / f"{name or panel}.png"
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", binary, "--screenshot", str(png), "--panel", panel,
               "--frames", "6", "--db", str(work / db), *extra]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
        assert r.returncode == 0, f"{panel}: exit {r.returncode}\n{r.stderr}"
        w, h, rows = read_png(png)
        assert (w, h) == (1280, 800), (w, h)
        c = colours(rows)
        assert len(c) >= 12, f"{panel}: the picture has {len(c)} colours: nothing was drawn"
        report = json.loads(Path(str(png) + ".json").read_text())
        assert report["panel"] == panel, report
        assert report["font"] == (DEJAVU if Path(DEJAVU).is_file() else "built-in"), report["font"]
        print(f"{panel}: {png} ({len(c)} colours sampled)")
        return rows, report["report"]

    info = json.loads(subprocess.run([binary, "info", model, "--json"], capture_output=True, text=True, check=True).stdout)
    rows_models, rep = shot("models")
    assert rep["models"] == [Path(model).name], rep
    hp = info["hparams"]
    assert rep["details"]["layers"] == str(hp["n_layers"]), (rep["details"], hp)
    assert rep["details"]["heads (kv)"] == f"{hp['n_heads']} ({hp['n_kv_heads']})", (rep["details"], hp)
    assert rep["details"]["architecture"] == "llama", rep

    rows_history, rep = shot("history")
    names = [x["name"] for x in rep["runs"]]
    assert names == ["ui-history"], rep
    assert rep["runs"][0]["kind"] == "batch" and rep["runs"][0]["status"] == "done", rep
    assert rows_history != rows_models, "the History panel looks like the Models panel"

    prompt = "What is the capital of France? Answer in one sentence."
    rows_chat, rep = shot("chat", "--chat-prompt", prompt)
    assert rep["loaded"], rep
    turns = rep["turns"]
    assert [t["role"] for t in turns] == ["user", "assistant"], turns
    ref = subprocess.run([binary, "run", model, "--chat", "--system", "You are a helpful assistant.", "-p", prompt,
                          "--temp", "0", "-n", "256", "--json"], capture_output=True, text=True, check=True)
    expected = json.loads(ref.stdout)["text"]
    assert turns[1]["content"] == expected, f"chat panel said {turns[1]['content']!r}, run --chat said {expected!r}"
    assert rep["tokens"] > 0 and rep["kv_blocks_total"] > 0, rep
    # The conversation is in the record (a run of kind "chat" and its turns), and History shows it.
    assert rep["record_run_id"] > 0 and rep["saved_turns"] == 2, rep
    with sqlite3.connect(work / "rec.db") as con:
        kind, name = con.execute("SELECT kind, name FROM runs WHERE id = ?", (rep["record_run_id"],)).fetchone()
        saved = con.execute("SELECT role, content FROM chat_turns WHERE run_id = ? ORDER BY turn",
                            (rep["record_run_id"],)).fetchall()
    assert (kind, name) == ("chat", prompt), (kind, name)
    assert saved == [("user", prompt), ("assistant", expected)], saved
    chat_run = rep["record_run_id"]
    _, rep = shot("history", name="history-chat")
    runs = {r["id"]: r for r in rep["runs"]}
    assert runs[chat_run]["kind"] == "chat" and rep["selected"] == chat_run, rep
    assert [t["content"] for t in runs[chat_run]["turns"]] == [prompt, expected], runs[chat_run]

    # Serve: the panel starts the server; a client asks it (health, then the chat above, greedy)
    # while the window runs; the plots show the request and the served text is run --chat's.
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    png = shots / "serve.png"
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", binary, "--screenshot", str(png), "--panel", "serve",
           "--frames", "6", "--db", str(work / "rec.db"), "--serve-now", "--serve-port", str(port), "--serve-requests", "2"]
    app = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(base + "/health", timeout=5) as h:
                assert json.loads(h.read()) == {"status": "ok"}
            break
        except OSError:
            assert app.poll() is None and time.time() < deadline, "the Serve panel never answered /health"
            time.sleep(0.5)
    body = {"model": "x", "temperature": 0, "max_tokens": 256,
            "messages": [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": prompt}]}
    req = urllib.request.Request(base + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as resp:
        answer = json.loads(resp.read())
    with urllib.request.urlopen(req, timeout=300) as resp:  # again: its prompt is in the prefix cache
        again = json.loads(resp.read())
    assert again["choices"][0]["message"]["content"] == answer["choices"][0]["message"]["content"], again
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] > 0, again["usage"]
    out, _ = app.communicate(timeout=300)
    assert app.returncode == 0, out
    assert answer["choices"][0]["message"]["content"] == expected, (answer, expected)
    report = json.loads(Path(str(png) + ".json").read_text())
    assert report["panel"] == "serve", report
    rep = report["report"]
    assert rep["listening"] and rep["port"] == port, rep
    series = rep["series"]
    for name in ("output_tok_s", "running", "waiting", "kv_usage_pct", "prefix_hit_pct"):
        assert len(series[name]) == len(series["t_s"]) >= 3, (name, series)
    # The gauges are sampled every period: a short request may run between two samples, but some
    # sample saw it in the engine (running or waiting), and never more than one at once.
    in_engine = [r + w for r, w in zip(series["running"], series["waiting"])]
    assert rep["requests_finished"] == 2 and max(in_engine) >= 1 and max(series["running"]) <= 1, rep
    assert max(series["prefix_hit_pct"]) > 0, series["prefix_hit_pct"]
    # The tokens/s curve integrates to the tokens the client was sent.
    times = [0.0] + series["t_s"]
    generated = sum(r * (times[i + 1] - times[i]) for i, r in enumerate(series["output_tok_s"]))
    sent = answer["usage"]["completion_tokens"] + again["usage"]["completion_tokens"]
    assert abs(generated - sent) < 0.5, (generated, sent)
    # KV blocks are held while a request runs: a sample that saw one running saw them in use (a
    # request that ran between two samples leaves the gauge nothing to show).
    kv = series["kv_usage_pct"]
    assert all(0 <= k <= 100 for k in kv), series
    assert all(k > 0 for r, k in zip(series["running"], kv) if r > 0), series
    w, h, rows = read_png(png)
    assert (w, h) == (1280, 800) and len(colours(rows)) >= 12
    print(f"serve: {png} ({generated:.1f} tokens plotted)")

    # Train: train_tiny for a few steps; the plots, the plan table and the Gantt chart of the last step.
    _, rep = shot("train", "--train-now", "--train-steps", "24", "--train-out", str(work / "train-out"))
    assert rep["phase"] == "done" and rep["step"] == 24, rep
    loss = rep["loss"]
    assert len(loss) == 24 and len(rep["lr"]) == 24, rep
    assert all(x == x and 0 < x < 20 for x in loss), loss
    assert sum(loss[-4:]) / 4 < sum(loss[:4]) / 4, loss  # from scratch, the loss falls within a few steps
    assert [(r["first_layer"], r["end_layer"]) for r in rep["plan"]] == [(0, 2), (2, 4)], rep["plan"]
    assert rep["timeline_boxes"] == len(rep["plan"]) * rep["microbatches"] * 2 == 16, rep
    assert Path(rep["model"]).is_file(), rep

    # Evaluate: answer (two contestants) -> judge -> leaderboard on one question, as child steps.
    _, rep = shot("evaluate", "--evaluate-now")
    steps = {st["name"]: st["status"] for st in rep["summary"]["steps"]}
    assert all(v == "done" for v in steps.values()), rep
    board = rep["summary"]["steps"][-1]["output"]
    assert sorted(m["model"] for m in board) == ["greedy", "hot"], board
    ev_runs = json.loads(subprocess.run([binary, "db", "--db", str(work / "rec.db"), "runs", "--json"], env=env,
                                        capture_output=True, text=True, check=True).stdout)
    assert any(r["kind"] == "batch" and r["name"] == "evaluate" for r in ev_runs), ev_runs

    # History again: the judge run's lineage goes back to the two answer runs (and their model
    # file); compared with one of them, the differences are listed.
    judge_run = max(r["id"] for r in ev_runs if r["kind"] == "judge")
    answer_runs = sorted(r["id"] for r in ev_runs if r["kind"] == "answer")
    assert len(answer_runs) == 2, ev_runs
    _, rep = shot("history", "--history-select", f"{judge_run},{answer_runs[0]}")
    sel = rep["lineage"]
    assert rep["selected"] == judge_run and sel["id"] == judge_run and sel["upstream"] == answer_runs, rep
    assert sel["produced"]["judgments"] > 0 and sel["produced"]["battles"] > 0, sel
    assert [m["role"] for m in sel["models"]] == ["judged"] and Path(sel["models"][0]["path"]).name == Path(model).name, sel
    kind = next(c for c in rep["comparison"] if c["what"] == "kind")
    assert kind == {"what": "kind", "a": "judge", "b": "answer", "differs": True}, rep["comparison"]

    # Arena: two anonymous answers side by side, a vote for B, names revealed, the battle recorded.
    _, rep = shot("arena", "--arena-prompt", "Name a colour of the sky.", "--arena-vote", "b", db="arena.db")
    assert rep["voted"] and rep["a"]["done"] and rep["b"]["done"] and rep["a"]["text"] and rep["b"]["text"], rep
    assert rep["a"]["name"] != rep["b"]["name"], rep
    assert rep["leaderboard"][0]["model"] == rep["b"]["name"], rep
    board = json.loads(subprocess.run([binary, "leaderboard", "--from-db", "--db", str(work / "arena.db"), "--json"],
                                      env=env, capture_output=True, text=True, check=True).stdout)
    assert {m["model"] for m in board} == {rep["a"]["name"], rep["b"]["name"]}, board

    _, rep = shot("log")
    assert any("desktop started" in line for line in rep), rep
    print("desktop panels: ok")


if __name__ == "__main__":
    main()

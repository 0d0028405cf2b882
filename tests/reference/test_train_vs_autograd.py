"""lmstation's training forward/backward against an independent reference: the same Llama
model written in NumPy (float64) and differentiated by the `autograd` package (PyPI).

For several small configurations (tied and untied head, GQA and not, llama and NeoX rotary
pairs, ignored targets, pipeline splits S = 1, 2, 4 with GPipe and 1F1B) this script writes random
weights and tokens, runs tests/reference/train_reference_dump.cpp (env LMS_TRAIN_DUMP, else
build/tests/reference/train_reference_dump) and compares, with these tolerances (lmstation
computes in float32):
  logits:   max |Δ| ≤ 2e-5 · max(1, max |logit|)
  loss:     |Δ| ≤ 1e-5
  gradient: for every parameter tensor, ‖Δ‖ ≤ 1e-4 · ‖g_ref‖ + 1e-8
Exit 77 (skip) when numpy or autograd is missing or the dump tool is not built.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SKIP = 77
REPO = Path(__file__).resolve().parents[2]

try:
    import numpy as np
    import autograd.numpy as anp
    from autograd import grad
except Exception as e:  # ImportError or a broken install
    print(f"SKIP: numpy/autograd not importable by {sys.executable}: {e}")
    sys.exit(SKIP)


def layout(c):
    """(name, rows, cols) in lmstation's flat order, written from the GGUF tensor naming."""
    d, H, KV, ff, V = c["d_model"], c["n_heads"], c["n_kv_heads"], c["d_ff"], c["n_vocab"]
    hd = d // H
    t = [("token_embd.weight", V, d)]
    for l in range(c["n_layers"]):
        b = f"blk.{l}."
        t += [(b + "attn_norm.weight", 1, d), (b + "attn_q.weight", H * hd, d), (b + "attn_k.weight", KV * hd, d),
              (b + "attn_v.weight", KV * hd, d), (b + "attn_output.weight", d, H * hd), (b + "ffn_norm.weight", 1, d),
              (b + "ffn_gate.weight", ff, d), (b + "ffn_up.weight", ff, d), (b + "ffn_down.weight", d, ff)]
    t.append(("output_norm.weight", 1, d))
    if not c["tied"]:
        t.append(("output.weight", V, d))
    return t


def unpack(flat, c):
    out, off = {}, 0
    for name, r, k in layout(c):
        out[name] = flat[off:off + r * k].reshape(r, k) if r > 1 else flat[off:off + k]
        off += r * k
    return out, off


def rmsnorm(x, w, eps):
    return x / anp.sqrt(anp.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, theta, neox):
    # x (B, T, heads, hd); angle(t, i) = t · theta^(-2i/hd)
    B, T, Hh, hd = x.shape
    half = hd // 2
    freq = theta ** (-2.0 * np.arange(half) / hd)
    ang = np.arange(T)[:, None] * freq[None, :]
    cos, sin = np.cos(ang)[None, :, None, :], np.sin(ang)[None, :, None, :]
    if neox:
        x0, x1 = x[..., :half], x[..., half:]
        return anp.concatenate([x0 * cos - x1 * sin, x0 * sin + x1 * cos], axis=-1)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return anp.reshape(anp.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], axis=-1), x.shape)


def forward(flat, c, inp, B):
    P, _ = unpack(flat, c)
    T, d, H, KV = c["seq_len"], c["d_model"], c["n_heads"], c["n_kv_heads"]
    hd, eps = d // H, c["rms_eps"]
    x = P["token_embd.weight"][inp.reshape(-1)].reshape(B, T, d)
    mask = np.tril(np.ones((T, T), dtype=bool))
    for l in range(c["n_layers"]):
        b = f"blk.{l}."
        xn = rmsnorm(x, P[b + "attn_norm.weight"], eps)
        q = rope(anp.reshape(xn @ P[b + "attn_q.weight"].T, (B, T, H, hd)), c["rope_theta"], c["rope_neox"])
        k = rope(anp.reshape(xn @ P[b + "attn_k.weight"].T, (B, T, KV, hd)), c["rope_theta"], c["rope_neox"])
        v = anp.reshape(xn @ P[b + "attn_v.weight"].T, (B, T, KV, hd))
        k = anp.repeat(k, H // KV, axis=2)
        v = anp.repeat(v, H // KV, axis=2)
        q, k, v = (anp.transpose(a, (0, 2, 1, 3)) for a in (q, k, v))  # (B, H, T, hd)
        s = anp.matmul(q, anp.transpose(k, (0, 1, 3, 2))) / np.sqrt(hd)
        s = anp.where(mask, s, -1e30)
        s = s - anp.max(s, axis=-1, keepdims=True)
        a = anp.exp(s)
        a = a / anp.sum(a, axis=-1, keepdims=True)
        o = anp.reshape(anp.transpose(anp.matmul(a, v), (0, 2, 1, 3)), (B, T, H * hd))
        x = x + o @ P[b + "attn_output.weight"].T
        xn = rmsnorm(x, P[b + "ffn_norm.weight"], eps)
        g = xn @ P[b + "ffn_gate.weight"].T
        u = xn @ P[b + "ffn_up.weight"].T
        x = x + (g / (1.0 + anp.exp(-g)) * u) @ P[b + "ffn_down.weight"].T
    xn = rmsnorm(x, P["output_norm.weight"], eps)
    head = P["token_embd.weight"] if c["tied"] else P["output.weight"]
    return anp.reshape(xn @ head.T, (B * T, c["n_vocab"]))


def loss_fn(flat, c, inp, tgt, B):
    logits = forward(flat, c, inp, B)
    mx = anp.max(logits, axis=-1, keepdims=True)
    lse = anp.log(anp.sum(anp.exp(logits - mx), axis=-1)) + mx[:, 0]
    keep = tgt >= 0
    picked = logits[np.arange(len(tgt))[keep], tgt[keep]]
    return anp.sum(lse[keep] - picked) / keep.sum()


def find_tool():
    env = os.environ.get("LMS_TRAIN_DUMP")
    cand = Path(env) if env else REPO / "build" / "tests" / "reference" / "train_reference_dump"
    if not cand.exists():
        print(f"SKIP: train_reference_dump not built ({cand})")
        sys.exit(SKIP)
    return cand


def check(tool, c, seed):
    rng = np.random.default_rng(seed)
    lay = layout(c)
    n = sum(r * k for _, r, k in lay)
    flat = np.concatenate([
        (1.0 + 0.2 * rng.standard_normal(r * k)) if r == 1 else 0.3 * rng.standard_normal(r * k) for _, r, k in lay
    ]).astype(np.float32)
    B, T, V = c["batch"], c["seq_len"], c["n_vocab"]
    inp = rng.integers(0, V, size=(B, T)).astype(np.int32)
    tgt = rng.integers(0, V, size=(B * T,)).astype(np.int32)
    tgt[rng.random(B * T) < c.get("ignore_fraction", 0.0)] = -1
    with tempfile.TemporaryDirectory() as d:
        Path(d, "config.json").write_text(json.dumps(c))
        flat.tofile(Path(d, "params.f32"))
        np.concatenate([inp.reshape(-1), tgt]).astype(np.int32).tofile(Path(d, "tokens.i32"))
        r = subprocess.run([str(tool), d], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"FAIL: dump tool exited {r.returncode}: {r.stderr}")
            return False
        got_logits = np.fromfile(Path(d, "out_logits.f32"), dtype=np.float32).astype(np.float64)
        got_grads = np.fromfile(Path(d, "out_grads.f32"), dtype=np.float32).astype(np.float64)
        out = json.loads(Path(d, "out.json").read_text())
    names = [t["name"] for t in out["tensors"]]
    if names != [name for name, _, _ in lay]:
        print("FAIL: tensor order differs from the reference layout")
        return False
    p64 = flat.astype(np.float64)
    ref_logits = forward(p64, c, inp, B).reshape(-1)
    ref_loss = loss_fn(p64, c, inp, tgt, B)
    ref_grads = grad(loss_fn)(p64, c, inp, tgt, B)
    ok = True
    tag = f"[S={c['stages']} M={c['microbatches']} {c['schedule']} tied={c['tied']} neox={c['rope_neox']}]"
    ld = np.max(np.abs(got_logits - ref_logits))
    lt = 2e-5 * max(1.0, np.max(np.abs(ref_logits)))
    print(f"{tag} logits max|Δ| {ld:.2e} (tol {lt:.1e}); loss {out['loss']:.8f} ref {ref_loss:.8f}")
    if not ld <= lt:
        ok = False
        print("FAIL: logits")
    for loss_name in ("loss", "single_stage_loss"):
        if not abs(out[loss_name] - ref_loss) <= 1e-5:
            ok = False
            print(f"FAIL: {loss_name} {out[loss_name]} vs {ref_loss}")
    worst = 0.0
    off = 0
    for name, r, k in lay:
        g, rg = got_grads[off:off + r * k], ref_grads[off:off + r * k]
        off += r * k
        err = np.linalg.norm(g - rg) / (np.linalg.norm(rg) + 1e-30)
        worst = max(worst, err)
        if not np.linalg.norm(g - rg) <= 1e-4 * np.linalg.norm(rg) + 1e-8:
            ok = False
            print(f"FAIL: gradient of {name}: relative error {err:.2e}")
    print(f"{tag} worst relative gradient error over {len(lay)} tensors: {worst:.2e}")
    return ok


def main():
    tool = find_tool()
    base = dict(n_layers=2, d_model=32, n_heads=4, n_kv_heads=2, d_ff=48, n_vocab=37, seq_len=8, rope_theta=10000.0,
                rms_eps=1e-5, tied=True, rope_neox=False, batch=4, stages=1, microbatches=1, schedule="1f1b")
    configs = [
        dict(base),
        dict(base, tied=False, rope_neox=True, n_kv_heads=4, stages=2, microbatches=2, schedule="gpipe"),
        dict(base, n_layers=4, stages=4, microbatches=4, ignore_fraction=0.25, n_kv_heads=1),
        # sequences longer than the attention's 36-row causal blocks (and not a multiple of them)
        dict(base, n_layers=1, seq_len=80, batch=2, stages=1, microbatches=2),
    ]
    results = [check(tool, c, seed) for seed, c in enumerate(configs)]
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()

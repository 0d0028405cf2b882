"""Training throughput: lmstation (CPU, fp32) against PyTorch on CPU, same model, threads, batch.

The model is Llama-shaped (RMSNorm, rotary, GQA attention, SwiGLU, tied embeddings), default
6 layers, d=384, 6 heads / 2 kv heads, d_ff 1024, sequences of 128 byte-level tokens (vocab 258),
batch 8, AdamW. Each rep runs `lmstation train --json` for --steps steps (tokens/s over the steps)
and the same steps in PyTorch; reps alternate and the medians and their ratio are printed.

    python tests/bench/bench_train.py [--threads 2] [--steps 5] [--reps 3]

Needs `torch` (PyPI) for the peer; without it only lmstation's figure is printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def lmstation_bin() -> Path:
    env = os.environ.get("LMSTATION_BIN")
    return Path(env) if env else REPO / "build" / "app" / "lmstation"


def write_config(d: Path, a) -> Path:
    cfg = d / "bench.toml"
    cfg.write_text(
        f"""[model]
layers = {a.layers}
d_model = {a.d_model}
heads = {a.heads}
kv_heads = {a.kv_heads}
d_ff = {a.d_ff}
seq_len = {a.seq}
[data]
text = ["{REPO / 'tests' / 'data' / 'text' / 'essays.txt'}"]
tokenizer = "byte"
[train]
steps = {a.steps}
batch_size = {a.batch}
eval_batches = 1
[pipeline]
stages = 1
microbatches = 1
"""
    )
    return cfg


def run_lmstation(cfg: Path, out: Path, a) -> float:
    r = subprocess.run([str(lmstation_bin()), "train", str(cfg), "--out", str(out), "-t", str(a.threads), "--json"],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)["tokens_per_s"]


def torch_tokens_per_s(a) -> float:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    V, d, H, KV, ff, T, B = 258, a.d_model, a.heads, a.kv_heads, a.d_ff, a.seq, a.batch
    hd = d // H

    class RMSNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(d))

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.w

    freq = 10000.0 ** (-torch.arange(0, hd, 2).float() / hd)
    ang = torch.arange(T).float()[:, None] * freq[None, :]
    cos, sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]

    def rope(x):  # (B, T, h, hd), pairs (2i, 2i+1)
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], -1).flatten(-2)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.n1, self.n2 = RMSNorm(), RMSNorm()
            self.q = nn.Linear(d, H * hd, bias=False)
            self.k = nn.Linear(d, KV * hd, bias=False)
            self.v = nn.Linear(d, KV * hd, bias=False)
            self.o = nn.Linear(H * hd, d, bias=False)
            self.g = nn.Linear(d, ff, bias=False)
            self.u = nn.Linear(d, ff, bias=False)
            self.dn = nn.Linear(ff, d, bias=False)

        def forward(self, x):
            h = self.n1(x)
            q = rope(self.q(h).view(B, T, H, hd)).transpose(1, 2)
            k = rope(self.k(h).view(B, T, KV, hd)).repeat_interleave(H // KV, 2).transpose(1, 2)
            v = self.v(h).view(B, T, KV, hd).repeat_interleave(H // KV, 2).transpose(1, 2)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, d)
            x = x + self.o(y)
            h = self.n2(x)
            return x + self.dn(F.silu(self.g(h)) * self.u(h))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(V, d)
            self.blocks = nn.ModuleList(Block() for _ in range(a.layers))
            self.norm = RMSNorm()

        def forward(self, idx, tgt):
            x = self.emb(idx)
            for b in self.blocks:
                x = b(x)
            logits = self.norm(x) @ self.emb.weight.T
            return F.cross_entropy(logits.view(-1, V), tgt.view(-1))

    m = Model()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.1)
    idx = torch.randint(0, V, (B, T))
    tgt = torch.randint(0, V, (B, T))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = m(idx, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    return B * T * a.steps / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--d-model", type=int, default=384)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--d-ff", type=int, default=1024)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    a = ap.parse_args()
    if not lmstation_bin().exists():
        sys.exit(f"lmstation binary not found at {lmstation_bin()} (set LMSTATION_BIN)")
    try:
        import torch  # noqa: F401
        have_torch = True
    except Exception as e:  # ImportError or a broken install
        print(f"PyTorch not importable ({e}); measuring lmstation alone")
        have_torch = False
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as d:
        cfg = write_config(Path(d), a)
        for rep in range(a.reps):
            ours.append(run_lmstation(cfg, Path(d) / f"o{rep}", a))
            if have_torch:
                theirs.append(torch_tokens_per_s(a))
    print(f"shape: {a.layers} layers d={a.d_model} heads {a.heads}/{a.kv_heads} ff={a.d_ff} seq {a.seq} batch {a.batch}, "
          f"{a.threads} threads, {a.steps} steps x {a.reps} reps (alternating)")
    print(f"lmstation: {statistics.median(ours):.0f} tokens/s (median)")
    if have_torch:
        print(f"pytorch:   {statistics.median(theirs):.0f} tokens/s (median)")
        print(f"ratio lmstation/pytorch: {statistics.median(ours) / statistics.median(theirs):.2f}x")


if __name__ == "__main__":
    main()

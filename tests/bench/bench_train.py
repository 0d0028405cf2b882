"""Training throughput: lmstation (CPU, fp32) against PyTorch on CPU, same model, threads, batch.

The model is Llama-shaped (RMSNorm, rotary, GQA attention, SwiGLU, tied embeddings), default
6 layers, d=384, 6 heads / 2 kv heads, d_ff 1024, sequences of 128 byte-level tokens (vocab 258),
batch 8, AdamW. Each rep runs `lmstation train --json` for --steps steps (tokens/s over the steps)
and the same steps in PyTorch; reps alternate and the medians and their ratio are printed.

    python3 tests/bench/bench_train.py [--threads 2] [--steps 5] [--reps 3] [--blas default,openblas]

The peer runs in its own interpreter (--torch-python, default the system python3). On Debian 12:

    apt-get install python3-torch            # PyTorch 1.13 built for CPU
    apt-get install libopenblas0-pthread     # optional: OpenBLAS for the peer's matrix products

python3-torch alone links the reference BLAS (libblas3), which is slow; the peer is therefore run
with each BLAS listed in --blas ("openblas" puts Debian's OpenBLAS first on the library path of
the peer only) and the BLAS it actually loaded is printed. The first step of every run is a
warm-up and is not counted, for both. Without torch only lmstation's figure is printed.
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
text = ["{REPO / 'assets' / 'text' / 'essays.txt'}"]
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

    mask = torch.ones(T, T, dtype=torch.bool).triu(1)

    def share(x):  # (B, T, KV, hd) -> (B, H, T, hd): each kv head serves H/KV query heads
        return x[:, :, :, None, :].expand(B, T, KV, H // KV, hd).reshape(B, T, H, hd).transpose(1, 2)

    def attention(q, k, v):  # (B, H, T, hd), causal
        if hasattr(F, "scaled_dot_product_attention"):  # PyTorch >= 2.0
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        return att.masked_fill(mask, float("-inf")).softmax(-1) @ v

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
            k = share(rope(self.k(h).view(B, T, KV, hd)))
            v = share(self.v(h).view(B, T, KV, hd))
            y = attention(q, k, v).transpose(1, 2).reshape(B, T, d)
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


def lmstation_tokens_per_s(cfg: Path, out: Path, a) -> float:
    """Tokens/s over steps 2.. (the first is a warm-up, as for the peer), from the per-step log."""
    run_lmstation(cfg, out, a)
    rows = (out / "log.csv").read_text().splitlines()[1:]
    secs = [1.0 / float(r.split(",")[4]) for r in rows[1:]]  # seconds per token of each step
    return len(secs) / sum(secs)


BLAS_DIRS = {"default": None, "openblas": "/usr/lib/x86_64-linux-gnu/openblas-pthread"}


def run_torch_worker(a, blas: str) -> tuple[float, str]:
    """The peer in its own interpreter (the one that has torch), with the chosen BLAS first."""
    # Passive OpenMP waits: spinning threads starve the BLAS threads on a busy machine (measured
    # here: 2-thread PyTorch ran ~6x slower with the default active wait under load).
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if BLAS_DIRS[blas]:
        env["LD_LIBRARY_PATH"] = BLAS_DIRS[blas] + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    args = [a.torch_python, __file__, "--torch-worker"] + [f"--{k.replace('_', '-')}={v}" for k, v in shape_args(a).items()]
    r = subprocess.run(args, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "torch worker failed")
    out = json.loads(r.stdout)
    return out["tokens_per_s"], out["blas"]


def shape_args(a) -> dict:
    return {k: getattr(a, k) for k in ("threads", "steps", "layers", "d_model", "heads", "kv_heads", "d_ff", "seq", "batch")}


def loaded_blas() -> str:
    """Which BLAS library this process mapped (the peer's matrix products go through it)."""
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if "blas" in path.lower():
                libs.add(os.path.realpath(path))
    return ", ".join(sorted(libs)) or "none"


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
    ap.add_argument("--torch-python", default="/usr/bin/python3", help="interpreter with torch (default: the system one)")
    ap.add_argument("--blas", default="default,openblas",
                    help="comma list of BLAS builds to run the peer with: default (what libblas.so.3 resolves to), "
                         "openblas (Debian's libopenblas0-pthread, put first on the library path)")
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.torch_worker:
        tps = torch_tokens_per_s(a)
        print(json.dumps({"tokens_per_s": tps, "blas": loaded_blas()}))
        return
    if not lmstation_bin().exists():
        sys.exit(f"lmstation binary not found at {lmstation_bin()} (set LMSTATION_BIN)")
    peers = []
    for blas in a.blas.split(","):
        if blas not in BLAS_DIRS:
            sys.exit(f"unknown --blas {blas}")
        if BLAS_DIRS[blas] and not Path(BLAS_DIRS[blas]).is_dir():
            print(f"peer with {blas}: {BLAS_DIRS[blas]} missing (apt-get install libopenblas0-pthread); skipped")
            continue
        peers.append(blas)
    if a.steps < 2:
        sys.exit("--steps must be at least 2 (the first step is a warm-up)")
    ours: list[float] = []
    theirs: dict[str, list[float]] = {b: [] for b in peers}
    blas_seen: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as d:
        cfg = write_config(Path(d), a)
        for rep in range(a.reps):
            ours.append(lmstation_tokens_per_s(cfg, Path(d) / f"o{rep}", a))
            for b in list(peers):
                try:
                    tps, blas_seen[b] = run_torch_worker(a, b)
                    theirs[b].append(tps)
                except RuntimeError as e:  # no torch in that interpreter, or a broken install
                    print(f"PyTorch peer ({b}) unavailable: {e}")
                    peers.remove(b)
    print(f"shape: {a.layers} layers d={a.d_model} heads {a.heads}/{a.kv_heads} ff={a.d_ff} seq {a.seq} batch {a.batch}, "
          f"{a.threads} threads, {a.steps} steps (first is warm-up) x {a.reps} reps (alternating); "
          f"load average at end {os.getloadavg()[0]:.1f}")
    med = statistics.median(ours)
    print(f"lmstation:         {med:8.0f} tokens/s (median; reps {', '.join(f'{x:.0f}' for x in ours)})")
    for b in peers:
        m = statistics.median(theirs[b])
        print(f"pytorch ({b:8s}): {m:8.0f} tokens/s (median; reps {', '.join(f'{x:.0f}' for x in theirs[b])}); "
              f"BLAS {blas_seen.get(b, '?')}")
        print(f"ratio lmstation/pytorch ({b}): {med / m:.2f}x")


if __name__ == "__main__":
    main()

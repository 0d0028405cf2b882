"""Training speed of a Llama-style decoder in PyTorch on one GPU: the peer of lmstation's CUDA trainer.

The model is written here in plain PyTorch: token embedding tied with the output head; per layer
RMSNorm -> q/k/v projections (no bias) -> rotary embedding (llama pairing of dims (2i, 2i+1)) ->
causal GQA attention (F.scaled_dot_product_attention(is_causal=True)) -> output projection,
residual; RMSNorm -> SwiGLU MLP (gate, up, down; no bias), residual; final RMSNorm; logits =
h @ embedding^T; cross-entropy over next tokens. Default shape is GPT-2-124M sized: 12 layers,
d_model 768, 12 heads / 12 kv heads, d_ff 2048, vocab 50304, seq 1024, batch 8 sequences.

Training: random token batches (seeded, generated on the device before timing), AdamW (lr 3e-4,
betas 0.9/0.95, eps 1e-8, weight decay 0.1 on matrices only, as lmstation does; fused=True on
CUDA where supported), gradient clipping at global norm 1.0, bf16 autocast with fp32 master
weights, torch.compile (default on CUDA; --no-compile for eager; a failing compile is reported and
the run falls back to eager). --tf32 allows TF32 for the fp32 matrix products (default off).

    python3 tests/bench/bench_train_torch_gpu.py                      # H100/H200, default shape
    python3 tests/bench/bench_train_torch_gpu.py --no-compile --batch 16 --peak-tflops 989
    python3 tests/bench/bench_train_torch_gpu.py --device cpu --layers 2 --d-model 64 --heads 4 \\
        --kv-heads 2 --d-ff 128 --vocab 300 --seq 32 --batch 2 --warmup 1 --steps 3   # smoke test

On CPU, bf16 autocast, fused AdamW and compile are skipped (fp32 eager), and PyTorch < 2.0 (no
F.scaled_dot_product_attention) uses an explicit masked softmax; the script says which it used.

Measurement: --warmup steps (untimed; compilation happens there), then --steps timed steps, each
ended by torch.cuda.synchronize() and timed with time.perf_counter. Reported: the median step
time, tokens/s = batch*seq / median, peak memory (torch.cuda.max_memory_allocated), and

    MFU = flops_per_step / median_step_time / peak
    flops_per_step  = flops_per_token * batch * seq
    flops_per_token = 6*N + 12*L*d_model*seq                                   (PaLM, appendix B)

where N counts every parameter used in a matrix product: all weights except the norms, the tied
embedding counted once (it is the head's matrix; the lookup itself is not a product), and the
attention term counts the full T x T score matrix (not the causal half). The peak is --peak-tflops
if given, else from torch.cuda.get_device_name(): H100/H200 with "PCIe" 756, other H100/H200 989
(dense BF16, SXM), A100 312; otherwise MFU is reported as n/a.

The last line of output is `RESULT {json}` with device, torch_version, compiled, dtype, the shape,
params, step_ms_median, step_ms_all, tokens_per_s, flops_per_token, peak_tflops, mfu, max_mem_gb,
loss_first (first warm-up step) and loss_last (last timed step). Exit status 0 on success, 2 when
--device cuda is asked for and CUDA is unavailable.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import math
import statistics
import sys
import time


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--kv-heads", type=int, default=12)
    ap.add_argument("--d-ff", type=int, default=2048)
    ap.add_argument("--vocab", type=int, default=50304)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=8, help="sequences per step")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compile", dest="compile", action="store_true", default=None,
                    help="torch.compile the model (default: on for CUDA, off for CPU)")
    ap.add_argument("--no-compile", dest="compile", action="store_false", help="run eager")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 in fp32 matrix products (default off)")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="peak dense TFLOP/s for MFU (default: detected from the GPU name)")
    a = ap.parse_args(argv)
    if a.d_model % a.heads:
        ap.error("--d-model must be a multiple of --heads")
    if a.heads % a.kv_heads:
        ap.error("--heads must be a multiple of --kv-heads")
    if (a.d_model // a.heads) % 2:
        ap.error("head dimension (d_model/heads) must be even for the rotary embedding")
    if a.steps < 1 or a.warmup < 0:
        ap.error("--steps must be >= 1 and --warmup >= 0")
    return a


def build_model(a, torch):
    """The Llama-style decoder (classes defined here so that torch is imported only when needed)."""
    nn = torch.nn
    F = torch.nn.functional
    d, H, KV, ff, V, T = a.d_model, a.heads, a.kv_heads, a.d_ff, a.vocab, a.seq
    hd = d // H
    have_sdpa = hasattr(F, "scaled_dot_product_attention")

    class RMSNorm(nn.Module):
        def __init__(self, n, eps=1e-5):
            super().__init__()
            self.eps = eps
            self.weight = nn.Parameter(torch.ones(n))

        def forward(self, x):
            xf = x.float()
            y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
            return (y * self.weight).type_as(x)

    def rope(x, cos, sin):
        """x: (B, T, h, hd); rotates each pair (2i, 2i+1) by angle t * theta_i (llama pairing)."""
        x0, x1 = x[..., 0::2].float(), x[..., 1::2].float()
        y = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)
        return y.type_as(x)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q = nn.Linear(d, H * hd, bias=False)
            self.k = nn.Linear(d, KV * hd, bias=False)
            self.v = nn.Linear(d, KV * hd, bias=False)
            self.o = nn.Linear(H * hd, d, bias=False)

        def forward(self, x, cos, sin, mask):
            B, Tx, _ = x.shape
            q = rope(self.q(x).view(B, Tx, H, hd), cos, sin).transpose(1, 2)  # (B, H, T, hd)
            k = rope(self.k(x).view(B, Tx, KV, hd), cos, sin).transpose(1, 2)  # (B, KV, T, hd)
            v = self.v(x).view(B, Tx, KV, hd).transpose(1, 2)
            if KV != H:  # query head j reads kv head j // (H/KV)
                k = k.repeat_interleave(H // KV, dim=1)
                v = v.repeat_interleave(H // KV, dim=1)
            if have_sdpa:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:  # PyTorch < 2.0: explicit causal softmax
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
                att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
                y = att @ v
            return self.o(y.transpose(1, 2).reshape(B, Tx, H * hd))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate = nn.Linear(d, ff, bias=False)
            self.up = nn.Linear(d, ff, bias=False)
            self.down = nn.Linear(ff, d, bias=False)

        def forward(self, x):
            return self.down(F.silu(self.gate(x)) * self.up(x))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn_norm = RMSNorm(d)
            self.attn = Attention()
            self.mlp_norm = RMSNorm(d)
            self.mlp = MLP()

        def forward(self, x, cos, sin, mask):
            x = x + self.attn(self.attn_norm(x), cos, sin, mask)
            return x + self.mlp(self.mlp_norm(x))

    class Llama(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(V, d)
            self.blocks = nn.ModuleList(Block() for _ in range(a.layers))
            self.norm = RMSNorm(d)
            theta = 10000.0 ** (-torch.arange(0, hd, 2, dtype=torch.float32) / hd)  # (hd/2,)
            ang = torch.arange(T, dtype=torch.float32)[:, None] * theta[None, :]    # (T, hd/2)
            self.register_buffer("cos", ang.cos()[None, :, None, :], persistent=False)
            self.register_buffer("sin", ang.sin()[None, :, None, :], persistent=False)
            self.register_buffer("mask", torch.ones(T, T, dtype=torch.bool).triu(1), persistent=False)
            for name, p in self.named_parameters():
                if p.dim() == 2:
                    nn.init.normal_(p, mean=0.0, std=0.02)
                    if name.endswith("o.weight") or name.endswith("down.weight"):  # residual outputs
                        with torch.no_grad():
                            p.mul_(1.0 / math.sqrt(2 * a.layers))

        def forward(self, idx, tgt):
            Tx = idx.shape[1]
            cos, sin, mask = self.cos[:, :Tx], self.sin[:, :Tx], self.mask[:Tx, :Tx]
            x = self.emb(idx)
            for b in self.blocks:
                x = b(x, cos, sin, mask)
            logits = F.linear(self.norm(x), self.emb.weight)  # tied head
            return F.cross_entropy(logits.reshape(-1, V).float(), tgt.reshape(-1))

    return Llama(), have_sdpa


def matmul_params(model) -> int:
    """N of the PaLM formula: every 2-D weight (all but the norms); the tied embedding once."""
    return sum(p.numel() for p in model.parameters() if p.dim() == 2)  # parameters() yields shared ones once


def detect_peak_tflops(name: str):
    n = name.upper()
    if "H100" in n or "H200" in n:
        return 756.0 if "PCIE" in n else 989.0
    if "A100" in n:
        return 312.0
    return None


def make_optimizer(model, a, torch, on_cuda):
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() != 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    kw = dict(lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    if on_cuda:
        if "fused" in inspect.signature(torch.optim.AdamW).parameters:
            try:
                return torch.optim.AdamW(groups, fused=True, **kw), "fused"
            except (RuntimeError, TypeError, ValueError) as e:
                print(f"note: fused AdamW unavailable ({e}); using the default implementation")
        else:
            print("note: this PyTorch's AdamW has no fused=; using the default implementation")
    return torch.optim.AdamW(groups, **kw), "default (foreach)" if on_cuda else "default"


def main(argv=None) -> int:
    a = parse_args(argv)
    try:
        import torch
    except ImportError as e:
        print(f"PyTorch is not importable from {sys.executable} ({e})", file=sys.stderr)
        return 2

    on_cuda = a.device == "cuda"
    if on_cuda and not torch.cuda.is_available():
        print(f"CUDA is not available to this PyTorch ({torch.__version__}); "
              "run on a GPU machine or pass --device cpu for a smoke test", file=sys.stderr)
        return 2
    dev = torch.device(a.device)
    torch.manual_seed(a.seed)
    if on_cuda:
        torch.backends.cuda.matmul.allow_tf32 = a.tf32
        torch.backends.cudnn.allow_tf32 = a.tf32
        dev_name = torch.cuda.get_device_name(dev)
    else:
        dev_name = "cpu"
    notes = []

    model, have_sdpa = build_model(a, torch)
    model = model.to(dev)
    N = matmul_params(model)
    total_params = sum(p.numel() for p in model.parameters())
    opt, opt_kind = make_optimizer(model, a, torch, on_cuda)
    params = list(model.parameters())
    if not have_sdpa:
        notes.append("F.scaled_dot_product_attention missing (PyTorch < 2.0): explicit masked-softmax attention")

    # bf16 autocast on CUDA only (fp32 master weights either way).
    use_bf16 = on_cuda
    if not on_cuda:
        notes.append("cpu: bf16 autocast, fused AdamW and torch.compile skipped (fp32 eager)")
    dtype = "bf16-autocast" if use_bf16 else "fp32"

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()

    want_compile = on_cuda if a.compile is None else a.compile
    run_model = model
    compiled = False
    if want_compile:
        if on_cuda and a.warmup == 0:
            notes.append("--warmup 0 with compile: the first timed step includes compilation")
        if not on_cuda:
            notes.append("--compile ignored on cpu")
        elif not hasattr(torch, "compile"):
            notes.append(f"torch.compile missing in PyTorch {torch.__version__}: eager")
        else:
            try:
                run_model = torch.compile(model)
                compiled = True
            except Exception as e:  # noqa: BLE001 - any failure means eager
                notes.append(f"torch.compile failed ({type(e).__name__}: {e}); falling back to eager")

    # All batches up front, on the device, seeded: (B, T+1) tokens -> inputs and next-token targets.
    g = torch.Generator(device=dev)
    g.manual_seed(a.seed + 1)
    n_batches = a.warmup + a.steps
    batches = []
    for _ in range(n_batches):
        x = torch.randint(0, a.vocab, (a.batch, a.seq + 1), device=dev, generator=g)
        batches.append((x[:, :-1].contiguous(), x[:, 1:].contiguous()))

    def sync():
        if on_cuda:
            torch.cuda.synchronize()

    def train_step(fwd, idx, tgt):
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = fwd(idx, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.detach()

    print(f"device: {dev_name}; torch {torch.__version__}")
    print(f"shape: {a.layers} layers, d_model {a.d_model}, heads {a.heads}/{a.kv_heads} kv, d_ff {a.d_ff}, "
          f"vocab {a.vocab}, seq {a.seq}, batch {a.batch} ({a.batch * a.seq} tokens/step)")
    print(f"params: {total_params:,} total, N = {N:,} in matrix products (tied embedding once)")
    print(f"precision: {dtype}; tf32 {'on' if (on_cuda and a.tf32) else 'off'}; AdamW {opt_kind}; "
          f"attention {'sdpa' if have_sdpa else 'explicit'}; compile requested {bool(want_compile)}")

    losses = []
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    t_warm = time.perf_counter()
    for i in range(a.warmup):
        idx, tgt = batches[i]
        try:
            loss = train_step(run_model, idx, tgt)
            sync()
        except Exception as e:  # noqa: BLE001 - compilation errors surface at the first call
            if not compiled:
                raise
            notes.append(f"torch.compile failed at warm-up step {i + 1} ({type(e).__name__}: "
                         f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}); falling back to eager")
            print(f"warning: {notes[-1]}")
            compiled = False
            run_model = model
            opt.zero_grad(set_to_none=True)
            loss = train_step(run_model, idx, tgt)
            sync()
        losses.append(loss.item())
    if a.warmup:
        print(f"warm-up: {a.warmup} steps in {time.perf_counter() - t_warm:.1f} s"
              f"{' (includes compilation)' if compiled else ''}")

    step_s = []
    for i in range(a.steps):
        idx, tgt = batches[a.warmup + i]
        sync()
        t0 = time.perf_counter()
        loss = train_step(run_model, idx, tgt)
        sync()
        step_s.append(time.perf_counter() - t0)
        losses.append(loss.item())

    med = statistics.median(step_s)
    tokens = a.batch * a.seq
    flops_per_token = 6 * N + 12 * a.layers * a.d_model * a.seq
    flops_per_step = flops_per_token * tokens
    peak = a.peak_tflops if a.peak_tflops is not None else (detect_peak_tflops(dev_name) if on_cuda else None)
    achieved_tflops = flops_per_step / med / 1e12
    mfu = achieved_tflops / peak if peak else None
    max_mem_gb = torch.cuda.max_memory_allocated(dev) / 1e9 if on_cuda else None

    for n in notes:
        print(f"note: {n}")
    print(f"compiled: {compiled}")
    print(f"step time: median {med * 1e3:.2f} ms over {a.steps} steps "
          f"(min {min(step_s) * 1e3:.2f}, max {max(step_s) * 1e3:.2f})")
    print(f"throughput: {tokens / med:,.0f} tokens/s")
    print(f"flops/token: {flops_per_token:,} (6N + 12*L*d_model*seq); achieved {achieved_tflops:.1f} TFLOP/s")
    if mfu is not None:
        print(f"MFU: {mfu * 100:.1f}% of {peak:g} TFLOP/s")
    else:
        print("MFU: n/a (unknown peak; pass --peak-tflops)")
    if max_mem_gb is not None:
        print(f"peak memory: {max_mem_gb:.2f} GB (torch.cuda.max_memory_allocated)")
    print(f"loss: first {losses[0]:.4f}, last {losses[-1]:.4f}")

    finite = all(math.isfinite(x) for x in losses)
    result = {
        "device": dev_name,
        "torch_version": torch.__version__,
        "compiled": compiled,
        "dtype": dtype,
        "layers": a.layers, "d_model": a.d_model, "heads": a.heads, "kv_heads": a.kv_heads,
        "d_ff": a.d_ff, "vocab": a.vocab, "seq": a.seq, "batch": a.batch,
        "params": N,
        "step_ms_median": med * 1e3,
        "step_ms_all": [s * 1e3 for s in step_s],
        "tokens_per_s": tokens / med,
        "flops_per_token": flops_per_token,
        "peak_tflops": peak,
        "mfu": mfu,
        "max_mem_gb": max_mem_gb,
        "loss_first": losses[0] if finite else None,
        "loss_last": losses[-1] if finite else None,
    }
    if not finite:
        print("error: non-finite loss", file=sys.stderr)
    print("RESULT " + json.dumps(result))
    return 0 if finite else 1


if __name__ == "__main__":
    sys.exit(main())

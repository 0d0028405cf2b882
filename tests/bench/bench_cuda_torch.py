#!/usr/bin/env python3
"""PyTorch + transformers peer of bench_cuda: the same random 1B Llama shapes in bf16 on the GPU.

    python3 bench_cuda_torch.py [--reps 5] [--steps 32] [--compile]

LlamaForCausalLM(config) with random weights (d 2048, 16 layers, 32/8 heads, ff 8192, vocab
32000, tied embeddings), bf16. Prefill tokens/s of one 512-token prompt; decode tokens/s at
batch 1, 16 and 64 with each sequence 128 tokens into its context, on transformers' dynamic KV cache (a static one with --compile)
(torch.compile of the decode step with --compile). Medians of --reps runs; one JSON line per
figure, in the same form as bench_cuda's, so the two can be set side by side.
"""
import argparse
import json
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.cache_utils import DynamicCache, StaticCache

PROMPT, CONTEXT = 512, 128


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--compile", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                      num_key_value_heads=8, vocab_size=32000, tie_word_embeddings=True, rope_theta=500000.0,
                      max_position_embeddings=2048)
    model = LlamaForCausalLM(cfg).to(device="cuda", dtype=torch.bfloat16).eval()
    name = "llama1b-bf16"
    print(json.dumps({"peer": "torch", "torch": torch.__version__, "device": torch.cuda.get_device_name(),
                      "compile": a.compile}), flush=True)

    def sync_time(fn):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    with torch.inference_mode():
        ids = torch.randint(0, cfg.vocab_size, (1, PROMPT), device="cuda")
        model(ids)  # warm-up
        t = [sync_time(lambda: model(ids, use_cache=False, logits_to_keep=1)) for _ in range(a.reps)]
        tps = PROMPT / statistics.median(t)
        print(f"{name:14s} prefill {PROMPT:4d} tokens  {tps:10.1f} tok/s", flush=True)
        print(json.dumps({"peer": "torch", "model": name, "test": "prefill", "tokens": PROMPT, "tokens_per_s": tps}),
              flush=True)

        for batch in (1, 16, 64):
            # torch.compile needs a static cache; plain eager decoding uses the default dynamic one,
            # cut back to the context before every timed run.
            cache = StaticCache(config=cfg, max_cache_len=CONTEXT + a.steps + 4) if a.compile else DynamicCache()
            ctx = torch.randint(0, cfg.vocab_size, (batch, CONTEXT), device="cuda")
            pos = torch.arange(CONTEXT, device="cuda")
            model(ctx, past_key_values=cache, cache_position=pos, use_cache=True, logits_to_keep=1)

            def step(tok, p):
                return model(tok, past_key_values=cache, cache_position=p, use_cache=True).logits

            fn = torch.compile(step, mode="reduce-overhead", fullgraph=True) if a.compile else step
            tok = torch.randint(0, cfg.vocab_size, (batch, 1), device="cuda")
            for s in range(3):  # warm-up (and compilation)
                fn(tok, torch.tensor([CONTEXT + s], device="cuda"))
            per = []
            for _ in range(a.reps):
                if not a.compile:
                    cache.crop(CONTEXT)

                def run():
                    for s in range(a.steps):
                        fn(tok, torch.tensor([CONTEXT + s], device="cuda"))
                per.append(sync_time(run) / a.steps)
            tps = batch / statistics.median(per)
            print(f"{name:14s} decode batch {batch:2d}  {tps:10.1f} tok/s", flush=True)
            print(json.dumps({"peer": "torch", "model": name, "test": "decode", "batch": batch, "tokens_per_s": tps}),
                  flush=True)


if __name__ == "__main__":
    main()

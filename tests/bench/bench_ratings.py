#!/usr/bin/env python3
"""Speed: Bradley-Terry + bootstrap intervals, lmstation vs the PyPI package evalica (Rust core).

Usage:
  python3 tests/bench/bench_ratings.py [--battles 100000] [--models 20] [--rounds 1000]
         [--reps 3] [--threads 1] [--seed 0] [--bin path/to/lmstation] [--out results.json]

  The binary: --bin, else env LMSTATION_BIN, else <repo>/build/app/lmstation.
  Exit 77 when evalica or the binary is missing. Not run by ctest.

What is measured (one synthetic battle set: --models models with normal log-strengths,
--battles random pairs, 10% ties, the rest drawn from the Bradley-Terry model):
  lmstation: the whole `lmstation leaderboard --battles FILE.csv --bootstrap R --json -t T`
             process, wall time: reading the CSV, online Elo, the Bradley-Terry fit and R
             bootstrap rounds.
  evalica:   in the same Python process with the battles already in memory (not timed):
             evalica.bradley_terry on the full set, then evalica.bootstrap(bradley_terry,
             n_resamples=R, bootstrap_method="percentile"), its documented way to get
             intervals; and, as a second, leaner peer, a loop of R calls to
             evalica.bradley_terry on resampled integer-indexed battles (numpy resampling).
  The peers alternate rep by rep (who goes first swaps every rep). Reported: median seconds per
  peer and the ratio evalica/lmstation of the medians (> 1: lmstation is faster), against each
  evalica variant. The intervals are compared too (they should agree to bootstrap noise).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--battles", type=int, default=100000)
    ap.add_argument("--models", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="lmstation bootstrap threads (evalica runs on one)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bin", default=os.environ.get("LMSTATION_BIN", str(Path(__file__).resolve().parents[2] / "build/app/lmstation")))
    ap.add_argument("--skip-scipy-bootstrap", action="store_true", help="only the lean evalica loop")
    ap.add_argument("--out")
    args = ap.parse_args()
    try:
        import evalica
        import numpy as np
    except ImportError as e:
        print(f"skip: {e}")
        return 77
    if not os.access(args.bin, os.X_OK):
        print(f"skip: no lmstation binary at {args.bin}")
        return 77

    rng = np.random.default_rng(args.seed)
    m, n = args.models, args.battles
    strength = rng.normal(0, 1, m)
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    p = 1 / (1 + np.exp(-(strength[a] - strength[b])))
    u = rng.random(n)
    winner_code = np.where(u < 0.1, 2, np.where(u < 0.1 + 0.9 * p, 0, 1))  # 0 left, 1 right, 2 tie
    names = [f"model{i:02d}" for i in range(m)]
    word = ["left", "right", "tie"]
    tmp = tempfile.mkdtemp()
    csv_path = os.path.join(tmp, "battles.csv")
    with open(csv_path, "w") as f:
        f.write("left,right,winner\n")
        for x, y, w in zip(a, b, winner_code):
            f.write(f"{names[x]},{names[y]},{word[w]}\n")
    ev_winner = [evalica.Winner.X, evalica.Winner.Y, evalica.Winner.Draw]
    xs = [names[i] for i in a]
    ys = [names[i] for i in b]
    ws = [ev_winner[w] for w in winner_code]
    a_list, b_list = a.tolist(), b.tolist()
    import pandas as pd
    index = pd.Index(names)

    def run_lmstation():
        t = time.perf_counter()
        r = subprocess.run([args.bin, "leaderboard", "--battles", csv_path, "--bootstrap", str(args.rounds), "--seed", "1", "--json",
                            "-t", str(args.threads)], capture_output=True, text=True, check=True)
        dt = time.perf_counter() - t
        return dt, {row["model"]: row for row in json.loads(r.stdout)}

    def run_evalica_bootstrap():
        t = time.perf_counter()
        evalica.bradley_terry(xs, ys, ws)
        bs = evalica.bootstrap(evalica.bradley_terry, xs, ys, ws, n_resamples=args.rounds, bootstrap_method="percentile", random_state=1)
        return time.perf_counter() - t, bs

    def run_evalica_loop():
        t = time.perf_counter()
        evalica.bradley_terry(a_list, b_list, ws, index=pd.Index(range(m)))
        r = np.random.default_rng(1)
        samples = np.empty((args.rounds, m))
        w_arr = np.array(ws, dtype=object)
        for k in range(args.rounds):
            pick = r.integers(0, n, n)
            res = evalica.bradley_terry(a[pick].tolist(), b[pick].tolist(), w_arr[pick].tolist(), index=pd.Index(range(m)))
            samples[k] = res.scores.reindex(range(m)).to_numpy()
        return time.perf_counter() - t, samples

    peers = {"lmstation": run_lmstation, "evalica_loop": run_evalica_loop}
    if not args.skip_scipy_bootstrap:
        peers["evalica_bootstrap"] = run_evalica_bootstrap
    times = {k: [] for k in peers}
    last = {}
    order = list(peers)
    for rep in range(args.reps):
        seq = order if rep % 2 == 0 else order[::-1]
        for k in seq:
            dt, res = peers[k]()
            times[k].append(dt)
            last[k] = res
            print(f"rep {rep} {k}: {dt:.2f} s", flush=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nBradley-Terry + {args.rounds} bootstrap rounds, {n} battles, {m} models, lmstation threads={args.threads}, reps={args.reps}")
    for k, v in med.items():
        print(f"  {k:<18} median {v:8.2f} s  (min {min(times[k]):.2f}, max {max(times[k]):.2f})")
    for k in peers:
        if k != "lmstation":
            print(f"  ratio {k}/lmstation: {med[k] / med['lmstation']:.1f}x")

    # Sanity: interval widths on the Elo scale agree with evalica's (bootstrap noise only).
    ours = last["lmstation"]
    samples = last["evalica_loop"]
    elo = 400 * np.log10(samples / np.exp(np.mean(np.log(samples), axis=1, keepdims=True))) + 1000
    width_ev = np.percentile(elo, 97.5, axis=0) - np.percentile(elo, 2.5, axis=0)
    width_us = np.array([ours[nm]["bt_high"] - ours[nm]["bt_low"] for nm in names])
    print(f"  interval width (Elo points), mean: lmstation {width_us.mean():.2f}, evalica loop {width_ev.mean():.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"times": times, "median": med, "args": vars(args)}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

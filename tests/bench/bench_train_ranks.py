"""Training across processes: `lmstation train --ranks N` (one stage a process, TCP between them)
against one process running the same N-stage pipeline, same config, steps and threads per stage.

    python3 tests/bench/bench_train_ranks.py [--lmstation BUILD/app/lmstation] [--config CFG]
                                             [--ranks 2] [--steps 60] [--threads 1] [--reps 5]

Reps alternate between the two ways; each prints tokens/s (lmstation's own figure, over the
run's steps) and whether the final losses are the same bits. The medians and their ratio
(processes / one process) are printed last, with a JSON line.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(args, out, extra):
    cmd = [args.lmstation, "train", args.config, "--steps", str(args.steps), "--stages", str(args.ranks),
           "--plan", "equal", "-t", str(args.threads), "--out", out, "--db", "", "--json"] + extra
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def one_process(args, out):
    p = train(args, out, [])
    stdout, _ = p.communicate()
    if p.returncode != 0:
        sys.exit(f"one process failed ({p.returncode})")
    return json.loads(stdout.strip().splitlines()[-1])


def many_processes(args, out):
    where = f"127.0.0.1:{free_port()}"
    procs = [train(args, out, ["--ranks", str(args.ranks), "--rank", str(r), "--rendezvous", where])
             for r in range(args.ranks)]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode != 0 for p in procs):
        sys.exit(f"a rank failed ({[p.returncode for p in procs]})")
    return json.loads(outs[0].strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lmstation", default=os.path.join(ROOT, "build", "app", "lmstation"))
    ap.add_argument("--config", default=os.path.join(ROOT, "assets", "examples", "train_tiny.toml"))
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    one, many = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            a = one_process(args, os.path.join(tmp, f"one{rep}"))
            b = many_processes(args, os.path.join(tmp, f"many{rep}"))
            one.append(a["tokens_per_s"])
            many.append(b["tokens_per_s"])
            same = a["loss"] == b["loss"] and a["val_loss"] == b["val_loss"]
            print(f"rep {rep}: one process {a['tokens_per_s']:.0f} tok/s, {args.ranks} processes "
                  f"{b['tokens_per_s']:.0f} tok/s; losses {'the same bits' if same else 'DIFFER'}")
            if not same:
                sys.exit("the runs trained differently")
    m1, mn = statistics.median(one), statistics.median(many)
    print(f"median: one process {m1:.0f} tok/s, {args.ranks} processes {mn:.0f} tok/s, ratio {mn / m1:.3f}")
    print(json.dumps({"ranks": args.ranks, "one_process_tokens_per_s": m1, "processes_tokens_per_s": mn,
                      "ratio": mn / m1}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Perplexity: lmstation vs llama.cpp on assets/text/*.txt, context 512.

Chunking is llama.cpp's llama-perplexity scheme, reproduced here over llama.cpp's own logits:
  * tokenize the whole file once (add_special=True, parse_special=False);
  * n_chunks = n_tokens // CTX; chunk i is tokens[i*CTX : (i+1)*CTX], evaluated in a fresh
    context; if the model adds BOS, the chunk's first token is replaced by BOS;
  * only the second half is scored: for positions j in [CTX/2, CTX-1), the logits at j predict
    token j+1, i.e. CTX-1-CTX/2 = 255 tokens per chunk;
  * ppl = exp(sum of negative log-likelihoods / scored tokens), log-softmax in float64 numpy.
lmstation computes the same with `lmstation perplexity MODEL FILE --ctx 512 --json`.
Pass: |ppl_lms - ppl_llama| / ppl_llama < 1% for every file, and the same chunk and scored
token counts.

Usage: test_perplexity_vs_llamacpp.py [FILE ...]   (default: assets/text/*.txt;
       env LMSTATION_BIN, LMS_TEST_MODEL; exit 77 = skipped)
"""

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refcommon as rc  # noqa: E402

CTX = 512
THREADS = rc.ref_threads()  # env LMS_REF_THREADS, default 2
REL_TOL = 0.01


def llama_perplexity(ref: "rc.LlamaRef", text: str):
    np = ref.np
    tokens = ref.tokenize(text.encode("utf-8"), add_special=True, parse_special=False)
    n_chunks = len(tokens) // CTX
    first = CTX // 2
    nll = 0.0
    count = 0
    for c in range(n_chunks):
        chunk = list(tokens[c * CTX:(c + 1) * CTX])
        if ref.add_bos:
            chunk[0] = ref.bos
        ref.clear()
        # Only positions first..CTX-2 are scored, so only they need logits.
        ref.decode(chunk, 0, want_logits=lambda i: first <= i < CTX - 1)
        for j in range(first, CTX - 1):
            row = ref.logits(j).astype(np.float64)
            m = row.max()
            logz = m + math.log(np.exp(row - m).sum())
            nll += logz - row[chunk[j + 1]]
            count += 1
    if count == 0:
        return None
    return {"ppl": math.exp(nll / count), "nll": nll / count, "chunks": n_chunks,
            "scored_tokens": count, "tokens": len(tokens)}


def main(argv) -> int:
    rc.import_llama_cpp()
    model = rc.model_path()
    binary = rc.lmstation_bin()
    rc.require_subcommand(binary, "perplexity")
    files = [Path(a) for a in argv] or sorted((rc.REPO_ROOT / "assets" / "text").glob("*.txt"))
    if not files:
        rc.skip("no text files in assets/text")

    ref = rc.LlamaRef(model, n_ctx=CTX, n_threads=THREADS, n_batch=CTX)
    failed = False
    for f in files:
        theirs = llama_perplexity(ref, f.read_text(encoding="utf-8"))
        if theirs is None:
            print(f"FAIL {f.name}: shorter than one {CTX}-token chunk")
            failed = True
            continue
        ours = rc.parse_json_output(rc.run_cli(binary, ["perplexity", model, f, "--ctx", CTX, "--json", "-t", THREADS]))
        ppl = float(ours["ppl"])
        rel = abs(ppl - theirs["ppl"]) / theirs["ppl"]
        ok = rel < REL_TOL
        counts_ok = (int(ours.get("chunks", -1)) == theirs["chunks"]
                     and int(ours.get("scored_tokens", -1)) == theirs["scored_tokens"])
        print(f"{f.name}: {theirs['tokens']} tokens, ctx {CTX}\n"
              f"  llama.cpp : ppl {theirs['ppl']:.4f}  (mean nll {theirs['nll']:.5f}, "
              f"{theirs['chunks']} chunks, {theirs['scored_tokens']} scored tokens)\n"
              f"  lmstation : ppl {ppl:.4f}  (nll {ours.get('nll')}, {ours.get('chunks')} chunks, "
              f"{ours.get('scored_tokens')} scored tokens)\n"
              f"  relative difference {rel * 100:.3f}% (limit {REL_TOL * 100:.0f}%)"
              f"{'' if ok else '  FAIL'}{'' if counts_ok else '  FAIL: chunk/scored-token counts differ'}")
        failed |= not (ok and counts_ok)
    ref.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

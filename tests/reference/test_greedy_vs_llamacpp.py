#!/usr/bin/env python3
"""Greedy decoding: lmstation vs llama.cpp, token by token.

For each prompt (half of them rendered through the model's chat template by `lmstation run --chat`),
lmstation generates N_GEN greedy tokens (`--temp 0 --ignore-eos --json`). Its reported "prompt_ids"
are then fed, unchanged, to llama.cpp (low-level llama_decode), which continues with argmax over
its raw logits for the same number of steps. So only the forward pass and argmax are compared, not
tokenization or templating. Both peers use 2 threads (env LMS_REF_THREADS overrides).

Pass rule: every sequence matches exactly, OR every divergence happens at a near-tie:
  llama.cpp's logit for its own choice minus its logit for lmstation's choice < NEAR_TIE (0.05).
When lmstation picked llama.cpp's runner-up, that is exactly llama.cpp's top-2 logit gap.
(Two correct implementations with different float summation orders may flip such a tie.)
After the first divergence the two continuations condition on different text, so nothing later is
compared. The script prints how many sequences diverged at a near-tie.

A separate check compares lmstation's chat rendering with llama-cpp-python's own (the GGUF's
tokenizer.chat_template rendered by jinja2, as Llama.create_chat_completion does): the --chat
prompt_ids must equal llama.cpp's tokenization of that rendered text (parse_special on).

Diagnosis (does not change the verdict): with env LMS_REF_EXACT=1, each divergence is also scored
by an all-F32 copy of the model (weights dequantized by llama.cpp, cached), i.e. the same weights
without 8-bit activation blocks. It prints exact = l[llama.cpp's pick] - l[lmstation's pick] under
that reference: negative means the exact computation prefers lmstation's token.

Usage: test_greedy_vs_llamacpp.py   (env LMSTATION_BIN, LMS_TEST_MODEL, LMS_REF_THREADS,
       LMS_REF_EXACT; exit 77 = skipped)
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refcommon as rc  # noqa: E402

N_GEN = 64
NEAR_TIE = 0.05
THREADS = rc.ref_threads()  # env LMS_REF_THREADS, default 2

# (chat?, prompt). Varied on purpose: facts, lists, code, numbers, other languages, odd spacing.
PROMPTS = [
    (False, "The capital of France is"),
    (False, "Once upon a time, in a small village by the sea, there lived"),
    (False, "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"),
    (False, "1, 2, 3, 5, 8, 13, 21,"),
    (False, "Ingredients for a simple pancake batter:\n-"),
    (False, "La vie est belle parce que"),
    (False, "   Leading spaces and\ttabs, then a question: why is the sky blue?"),
    (False, "<html>\n<head>\n<title>"),
    (True, "What is the boiling point of water at sea level?"),
    (True, "Write a haiku about autumn leaves."),
    (True, "Explain in two sentences what a hash table is."),
    (True, "List three tips for sleeping better."),
    (True, "Translate 'good morning, how are you?' into Spanish."),
    (True, "What is 17 multiplied by 23? Show your steps."),
    (True, "Write a Python function that reverses a string."),
    (True, "hi"),
]


def chat_prompt_ids_llamacpp(ref: "rc.LlamaRef", user_text: str):
    """Renders [user] through the GGUF chat template like Llama.create_chat_completion does."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = ref.meta("tokenizer.chat_template")
    if template is None:
        return None
    fmt = Jinja2ChatFormatter(
        template=template,
        eos_token=ref.piece(ref.eos).decode("utf-8", errors="replace"),
        bos_token=ref.piece(ref.bos).decode("utf-8", errors="replace"),
        add_generation_prompt=True,
    )
    res = fmt(messages=[{"role": "user", "content": user_text}])
    ids = ref.tokenize(res.prompt.encode("utf-8"), add_special=not res.added_special, parse_special=True)
    return ids, res.prompt


def main() -> int:
    rc.import_llama_cpp()
    model = rc.model_path()
    binary = rc.lmstation_bin()
    rc.require_subcommand(binary, "run")

    ref = rc.LlamaRef(model, n_ctx=1024, n_threads=THREADS)
    exact = None
    if os.environ.get("LMS_REF_EXACT"):
        exact = rc.LlamaRef(rc.dequantized_f32_copy(model), n_ctx=1024, n_threads=THREADS)
    exact_favours_lms = 0
    n_exact = n_tie = n_bad = 0
    template_mismatch = 0
    failures = []
    for chat, prompt in PROMPTS:
        args = ["run", model, "-p", prompt, "-n", N_GEN, "--temp", 0, "--ignore-eos", "--json", "-t", THREADS]
        if chat:
            args.append("--chat")
        res = rc.parse_json_output(rc.run_cli(binary, args))
        ours = [int(t) for t in res["tokens"]]
        prompt_ids = [int(t) for t in res["prompt_ids"]]
        label = ("[chat] " if chat else "") + repr(prompt)

        if chat:
            rendered = chat_prompt_ids_llamacpp(ref, prompt)
            if rendered is not None and rendered[0] != prompt_ids:
                template_mismatch += 1
                print(f"CHAT TEMPLATE MISMATCH {label}\n  llama-cpp-python text: {rendered[1]!r}\n"
                      f"  llama ids: {rendered[0]}\n  lmstation prompt_ids: {prompt_ids}\n"
                      f"  lmstation prompt text: {ref.detokenize(prompt_ids)!r}")

        if len(ours) != N_GEN:
            n_bad += 1
            failures.append(f"{label}: lmstation produced {len(ours)} tokens, expected {N_GEN} "
                            f"(finish_reason={res.get('finish_reason')}) despite --ignore-eos")
            continue

        theirs, rows = ref.greedy(prompt_ids, N_GEN)
        div = next((i for i in range(N_GEN) if ours[i] != theirs[i]), None)
        if div is None:
            n_exact += 1
            print(f"MATCH   {label}: {N_GEN}/{N_GEN} tokens")
            continue
        row = rows[div]
        order = row.argsort()[::-1]
        top2_gap = float(row[order[0]] - row[order[1]])
        our_gap = float(row[theirs[div]] - row[ours[div]])
        rank = int((row > row[ours[div]]).sum())  # 0 = llama.cpp's own top choice
        detail = (f"{label}: first divergence at generated index {div} (prompt {len(prompt_ids)} tokens); "
                  f"lmstation {ours[div]} {ref.piece(ours[div])!r} (llama.cpp rank {rank}, logit {row[ours[div]]:.4f}) vs "
                  f"llama.cpp {theirs[div]} {ref.piece(theirs[div])!r} (logit {row[theirs[div]]:.4f}); "
                  f"llama.cpp top-2 gap {top2_gap:.4f}, gap to lmstation's pick {our_gap:.4f}; "
                  f"common prefix text {ref.detokenize(ours[:div])!r}")
        if exact is not None:
            exact.clear()
            ctx_ids = prompt_ids + ours[:div]
            for s in range(0, len(ctx_ids), exact.n_batch):
                exact.decode(ctx_ids[s:s + exact.n_batch], s)
            erow = exact.logits(-1)
            egap = float(erow[theirs[div]] - erow[ours[div]])
            exact_favours_lms += egap < 0
            detail += f"; exact(F32-dequantized) gap {egap:+.4f} (favours {'lmstation' if egap < 0 else 'llama.cpp'})"
        if our_gap < NEAR_TIE:
            n_tie += 1
            print(f"NEAR-TIE {detail}")
        else:
            n_bad += 1
            failures.append(detail)
            print(f"DIVERGE {detail}")

    ref.close()
    if exact is not None:
        exact.close()
        print(f"exact F32-dequantized reference favoured lmstation's token at {exact_favours_lms} of "
              f"{n_tie + n_bad} divergences")
    total = len(PROMPTS)
    print(f"\ngreedy vs llama.cpp: {n_exact}/{total} identical over {N_GEN} tokens, "
          f"{n_tie} diverged at a near-tie (gap < {NEAR_TIE}), {n_bad} real divergences")
    print(f"chat template: {template_mismatch} mismatches against llama-cpp-python's jinja2 rendering "
          f"({sum(1 for c, _ in PROMPTS if c)} chat prompts)")
    if failures:
        print("\nFAILURES:")
        for f in failures:
            print("  " + f)
    return 0 if (n_bad == 0 and template_mismatch == 0) else 1


if __name__ == "__main__":
    sys.exit(main())

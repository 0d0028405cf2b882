"""Shared plumbing for the llama.cpp reference checks (tests/reference/*.py, tests/bench).

Two peers are driven here:
  * lmstation, through its command line (the `run` / `tokenize` / `perplexity` / `bench`
    contract), located by env LMSTATION_BIN, else <repo>/build/app/lmstation;
  * llama.cpp, through llama-cpp-python's low-level ctypes API (llama_decode and raw logits),
    so no sampler chain or high-level caching sits between us and the forward pass.

The model: env LMS_TEST_MODEL, else $XDG_CACHE_HOME/lmstation/models/SmolLM2-135M-Instruct.Q4_1.gguf
(XDG_CACHE_HOME defaults to ~/.cache).

Every script exits with SKIP_CODE (77, ctest's SKIP_RETURN_CODE) and a message saying why when a
prerequisite is missing: llama_cpp not importable, no model file, no lmstation binary, or a binary
that does not have the needed subcommand yet.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Sequence

SKIP_CODE = 77
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def skip(why: str) -> "NoReturn":  # noqa: F821
    print(f"SKIP: {why}", flush=True)
    sys.exit(SKIP_CODE)


def import_llama_cpp():
    """Returns the llama_cpp module with its native logging quieted, or skips."""
    try:
        import llama_cpp  # noqa: F401
        import numpy  # noqa: F401
    except Exception as e:  # ImportError, or a broken native library
        skip(f"llama_cpp / numpy not importable by {sys.executable}: {e}")
    try:
        from llama_cpp import _logger

        _logger.set_verbose(False)  # only errors from llama.cpp reach stderr
    except Exception:
        pass
    import llama_cpp

    llama_cpp.llama_backend_init()
    return llama_cpp


def ref_threads(default: int = 2) -> int:
    """Thread count for both peers in the correctness checks: env LMS_REF_THREADS, else 2.
    (On an oversubscribed machine llama.cpp's spinning worker threads slow down sharply with
    more than one thread; results do not depend on it.)"""
    try:
        return max(1, int(os.environ.get("LMS_REF_THREADS", default)))
    except ValueError:
        return default


def model_path(required: bool = True) -> Optional[Path]:
    env = os.environ.get("LMS_TEST_MODEL")
    if env:
        p = Path(env)
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        p = Path(cache) / "lmstation" / "models" / DEFAULT_MODEL_NAME
    if not p.is_file():
        if required:
            skip(f"model file not found: {p} (set LMS_TEST_MODEL)")
        return None
    return p


def lmstation_bin(required: bool = True) -> Optional[Path]:
    env = os.environ.get("LMSTATION_BIN")
    p = Path(env) if env else REPO_ROOT / "build" / "app" / "lmstation"
    if not (p.is_file() and os.access(p, os.X_OK)):
        if required:
            skip(f"lmstation binary not found: {p} (set LMSTATION_BIN)")
        return None
    return p


def require_subcommand(binary: Path, sub: str) -> None:
    """Skips (not fails) when the CLI does not know `sub` yet: the CLI is being built in parallel."""
    r = subprocess.run([str(binary), sub, "--help"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        msg = (r.stderr or r.stdout).strip().splitlines()
        skip(f"{binary} has no working '{sub}' subcommand yet ({msg[0] if msg else 'rc=%d' % r.returncode})")


def run_cli(binary: Path, args: Sequence[str], timeout: float = 600, input_text: Optional[str] = None) -> str:
    """Runs lmstation and returns stdout; raises RuntimeError with the command and stderr on failure."""
    cmd = [str(binary)] + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, timeout=timeout, input=input_text.encode() if input_text else None)
    out = r.stdout.decode("utf-8", errors="replace")
    if r.returncode != 0:
        err = r.stderr.decode("utf-8", errors="replace")
        raise RuntimeError(f"command failed (rc={r.returncode}): {' '.join(cmd)}\nstderr:\n{err[-4000:]}")
    return out


def parse_json_output(out: str) -> dict:
    """The --json contract prints one object; tolerate log lines around it."""
    s = out.strip()
    try:
        return json.loads(s)
    except json.JSONDecodeError:
        pass
    for line in reversed(s.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    start = s.find("{")
    if start >= 0:
        return json.JSONDecoder().raw_decode(s[start:])[0]
    raise ValueError(f"no JSON object in lmstation output:\n{out[-2000:]}")


def dequantized_f32_copy(model_file: Path) -> Path:
    """An all-F32 copy of model_file made by llama.cpp's quantizer (weights dequantized exactly),
    cached in $XDG_CACHE_HOME/lmstation/reference/. Running it evaluates the quantized model's
    weights without any activation quantization: a near-exact reference for diagnosing which
    peer sits closer to the true forward pass at a near-tie."""
    L = import_llama_cpp()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lmstation" / "reference"
    cache.mkdir(parents=True, exist_ok=True)
    dst = cache / (model_file.stem + ".dequant-F32.gguf")
    if dst.is_file() and dst.stat().st_mtime >= model_file.stat().st_mtime:
        return dst
    params = L.llama_model_quantize_default_params()
    params.nthread = 2
    params.ftype = L.LLAMA_FTYPE_ALL_F32
    params.allow_requantize = True
    tmp = dst.with_suffix(".tmp")
    if L.llama_model_quantize(str(model_file).encode(), str(tmp).encode(), params) != 0:
        raise RuntimeError(f"llama.cpp could not write an F32 copy of {model_file}")
    tmp.replace(dst)
    return dst


class LlamaRef:
    """llama.cpp via the low-level API: one model, one context, one reusable batch.

    Logits come straight from llama_get_logits_ith as float32 arrays of shape (n_vocab,).
    """

    def __init__(self, model_file: Path, n_ctx: int = 1024, n_threads: int = 2, n_batch: int = 512,
                 vocab_only: bool = False):
        import numpy as np

        self.np = np
        self.L = import_llama_cpp()
        L = self.L
        mp = L.llama_model_default_params()
        mp.vocab_only = vocab_only
        self.model = L.llama_model_load_from_file(str(model_file).encode(), mp)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {model_file}")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.add_bos = bool(L.llama_vocab_get_add_bos(self.vocab))
        self.bos = L.llama_vocab_bos(self.vocab)
        self.eos = L.llama_vocab_eos(self.vocab)
        self.ctx = None
        self.batch = None
        if vocab_only:
            return
        cp = L.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = n_batch
        cp.n_ubatch = n_batch
        cp.n_threads = n_threads
        cp.n_threads_batch = n_threads
        # flash_attn_type, K/V cache types: left at llama.cpp's defaults on purpose.
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self.ctx = L.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create a context")
        self.batch = L.llama_batch_init(n_batch, 0, 1)

    # ---- vocabulary ---------------------------------------------------------------------------
    def tokenize(self, text: bytes, add_special: bool, parse_special: bool) -> List[int]:
        L = self.L
        cap = max(16, 2 * len(text) + 8)
        buf = (L.llama_token * cap)()
        n = L.llama_tokenize(self.vocab, text, len(text), buf, cap, add_special, parse_special)
        if n < 0:
            cap = -n
            buf = (L.llama_token * cap)()
            n = L.llama_tokenize(self.vocab, text, len(text), buf, cap, add_special, parse_special)
            if n < 0:
                raise RuntimeError(f"llama_tokenize failed for {text!r}")
        return list(buf[:n])

    def piece(self, token: int, special: bool = True) -> bytes:
        buf = ctypes.create_string_buffer(256)
        n = self.L.llama_token_to_piece(self.vocab, token, buf, 256, 0, special)
        return buf.raw[:max(n, 0)]

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.piece(t, special=True) for t in tokens).decode("utf-8", errors="replace")

    def meta(self, key: str) -> Optional[str]:
        buf = ctypes.create_string_buffer(1 << 16)
        n = self.L.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf))
        if n < 0:
            return None
        return buf.raw[:n].decode("utf-8", errors="replace")

    # ---- evaluation -----------------------------------------------------------------------
    def clear(self) -> None:
        self.L.llama_memory_clear(self.L.llama_get_memory(self.ctx), True)

    def decode(self, tokens: Sequence[int], pos0: int, want_logits=None) -> None:
        """Decodes tokens at positions pos0.. in sequence 0. want_logits: None = last token only,
        True = all, or a predicate on the index within this call."""
        self.fill_batch(tokens, pos0, want_logits)
        self.decode_filled()

    def decode_filled(self) -> None:
        """llama_decode of the batch prepared by fill_batch, waiting for the backend to finish
        (what a benchmark times)."""
        rc = self.L.llama_decode(self.ctx, self.batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        self.L.llama_synchronize(self.ctx)

    def fill_batch(self, tokens: Sequence[int], pos0: int, want_logits=None) -> None:
        assert 0 < len(tokens) <= self.n_batch
        b = self.batch
        b.n_tokens = len(tokens)
        last = len(tokens) - 1
        for i, t in enumerate(tokens):
            b.token[i] = t
            b.pos[i] = pos0 + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            if want_logits is None:
                flag = i == last
            elif want_logits is True:
                flag = True
            else:
                flag = bool(want_logits(i))
            b.logits[i] = 1 if flag else 0

    def logits(self, i: int = -1):
        """Copy of the logits row of batch token i (which must have asked for logits; negative i
        counts outputs from the end), shape (n_vocab,) float32."""
        p = self.L.llama_get_logits_ith(self.ctx, i)
        if not p:
            raise RuntimeError(f"no logits for output {i}")
        return self.np.ctypeslib.as_array(p, shape=(self.n_vocab,)).copy()

    def greedy(self, prompt_ids: Sequence[int], n: int):
        """Greedy continuation (argmax, EOS ignored). Returns (tokens, logit rows per step)."""
        self.clear()
        pos = 0
        for s in range(0, len(prompt_ids), self.n_batch):
            chunk = list(prompt_ids[s:s + self.n_batch])
            self.decode(chunk, pos)
            pos += len(chunk)
        out, rows = [], []
        for _ in range(n):
            row = self.logits(-1)
            t = int(self.np.argmax(row))
            out.append(t)
            rows.append(row)
            if len(out) == n:
                break
            self.decode([t], pos)
            pos += 1
        return out, rows

    def close(self) -> None:
        L = self.L
        if self.batch is not None:
            L.llama_batch_free(self.batch)
            self.batch = None
        if self.ctx:
            L.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            L.llama_model_free(self.model)
            self.model = None

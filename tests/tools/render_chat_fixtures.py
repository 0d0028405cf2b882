#!/usr/bin/env python3
"""Renders the reference outputs for lmstation's chat-template conformance test.

For every chat template in <shared>/data/chat_templates/*.jinja (third-party files, NOT copied
into the repo) plus SmolLM2's own template (tests/data/chat/SmolLM2-135M-Instruct.jinja,
refreshed from the model's GGUF key tokenizer.chat_template when the model is present), this
script renders each message set of tests/data/chat/message_sets.json with add_generation_prompt
true and false, using Python's jinja2 configured the way Hugging Face transformers configures it
for apply_chat_template:

  ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                extensions=[jinja2.ext.loopcontrols])
  filters["tojson"]  = json.dumps(x, ensure_ascii=False, indent=…, separators=…, sort_keys=…)
  globals["raise_exception"] raises; globals["strftime_now"] formats a FIXED date (2024-07-26)
  render(messages=…, tools=… or None, documents=None, add_generation_prompt=…,
         bos_token=…, eos_token=…, **per-template extras)

Outputs go to tests/data/chat/expected/<template>.json: the expected text per case, or the error
jinja2 raised (the C++ renderer must then fail too). Run from anywhere:

  python3 tests/tools/render_chat_fixtures.py [--shared ../shared/data] [--model path.gguf]
"""

import argparse
import datetime
import json
import os
import struct
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHAT_DIR = os.path.join(REPO, "tests", "data", "chat")
SMOLLM_TEMPLATE = os.path.join(CHAT_DIR, "SmolLM2-135M-Instruct.jinja")
FIXED_NOW = datetime.datetime(2024, 7, 26, 12, 0, 0)
BOS, EOS = "<s>", "</s>"

# Variables a template needs beyond HF's standard ones (firefunction reads `functions` and
# `datetime`, which callers of that model pass as extra kwargs).
EXTRA_CONTEXT = {
    "fireworks-ai-llama-3-firefunction-v2.jinja": {
        "functions": "[{\"name\": \"get_current_weather\"}]",
        "datetime": "2024-07-26",
    },
}


def read_gguf_chat_template(path):
    """Returns tokenizer.chat_template from a GGUF file (v2/v3), or None."""
    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    with open(path, "rb") as f:
        def rd(fmt):
            fmt = "<" + fmt
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))

        def rstr():
            (n,) = rd("Q")
            return f.read(n).decode("utf-8")

        def rval(t):
            if t == 8:
                return rstr()
            if t == 9:
                et, n = rd("IQ")
                return [rval(et) for _ in range(n)]
            return rd(scalar[t])[0]

        if f.read(4) != b"GGUF":
            return None
        rd("I")  # version
        _, n_kv = rd("QQ")
        for _ in range(n_kv):
            key = rstr()
            (t,) = rd("I")
            value = rval(t)
            if key == "tokenizer.chat_template":
                return value
    return None


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return FIXED_NOW.strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render_cases(env, source, message_sets, extra):
    template = env.from_string(source)
    cases = []
    for set_name, spec in message_sets.items():
        if set_name.startswith("_"):
            continue
        for agp in (True, False):
            ctx = {
                "messages": spec["messages"],
                "tools": spec.get("tools"),
                "documents": spec.get("documents"),
                "add_generation_prompt": agp,
                "bos_token": BOS,
                "eos_token": EOS,
            }
            ctx.update(extra)
            case = {"messages": set_name, "add_generation_prompt": agp}
            try:
                case["expected"] = template.render(**ctx)
            except Exception as e:  # jinja2 errors and Python TypeErrors alike
                case["error"] = f"{type(e).__name__}: {e}"
            cases.append(case)
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(REPO), "shared", "data"))
    ap.add_argument("--model", default=os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
        "lmstation", "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    args = ap.parse_args()

    if os.path.exists(args.model):
        tmpl = read_gguf_chat_template(args.model)
        if tmpl:
            with open(SMOLLM_TEMPLATE, "w", encoding="utf-8") as f:
                f.write(tmpl)
    with open(os.path.join(CHAT_DIR, "message_sets.json"), encoding="utf-8") as f:
        message_sets = json.load(f)

    sources = []
    tdir = os.path.join(args.shared, "chat_templates")
    for name in sorted(os.listdir(tdir)):
        if name.endswith(".jinja"):
            with open(os.path.join(tdir, name), encoding="utf-8") as f:
                sources.append((name, "shared", f.read()))
    with open(SMOLLM_TEMPLATE, encoding="utf-8") as f:
        sources.append((os.path.basename(SMOLLM_TEMPLATE), "repo", f.read()))

    env = make_env()
    out_dir = os.path.join(CHAT_DIR, "expected")
    os.makedirs(out_dir, exist_ok=True)
    for name, origin, source in sources:
        extra = EXTRA_CONTEXT.get(name, {})
        fixture = {
            "_generated_by": "tests/tools/render_chat_fixtures.py with Python jinja2 " + jinja2.__version__ +
                             " in Hugging Face's chat-template environment (trim_blocks, lstrip_blocks, "
                             "loopcontrols, tojson=json.dumps(ensure_ascii=False)); strftime_now fixed at "
                             + FIXED_NOW.strftime("%Y-%m-%d"),
            "template": name,
            "template_origin": origin,  # shared: <shared>/data/chat_templates; repo: tests/data/chat
            "bos_token": BOS,
            "eos_token": EOS,
            "now": FIXED_NOW.strftime("%Y-%m-%d"),
            "extra_context": extra,
            "cases": render_cases(env, source, message_sets, extra),
        }
        path = os.path.join(out_dir, name[: -len(".jinja")] + ".json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(fixture, f, ensure_ascii=False, indent=1)
            f.write("\n")
        n_err = sum(1 for c in fixture["cases"] if "error" in c)
        print(f"{name}: {len(fixture['cases'])} cases ({n_err} expected errors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

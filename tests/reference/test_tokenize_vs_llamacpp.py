#!/usr/bin/env python3
"""Tokenization: lmstation vs llama.cpp on a few hundred varied strings.

The strings are generated deterministically here (hand-picked edge cases plus seeded random
mixtures of English, code, numbers, whitespace runs, accents, CJK, emoji, contractions and
special-looking text such as "<|im_start|>"). They are written one JSON string per line to a
temporary file and tokenized in one process by `lmstation tokenize MODEL --file F`, under three
flag sets, each compared with llama.cpp's llama_tokenize(add_special, parse_special):
  default               -> add_special=True,  parse_special=False
  --parse-special       -> add_special=True,  parse_special=True
  --no-add-special      -> add_special=False, parse_special=False
Every string must give identical ids. On failure the first differences are printed with both
id lists and their token pieces.

Usage: test_tokenize_vs_llamacpp.py   (env LMSTATION_BIN, LMS_TEST_MODEL; exit 77 = skipped)
"""

import json
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refcommon as rc  # noqa: E402

FLAG_SETS = [
    ([], True, False),
    (["--parse-special"], True, True),
    (["--no-add-special"], False, False),
]
MAX_REPORTED = 15

HAND_PICKED = [
    "", " ", "  ", "\n", "\n\n", "\t", " \n ", "\r\n", "a", "A", "Hello world", "Hello, world!",
    "hello   world", " leading space", "trailing space ", "   three leading", "multiple\n\n\nnewlines",
    "I'm", "you're", "they'll", "she's", "we've", "I'd", "don't", "DON'T", "It's 5 o'clock",
    "1", "12", "123", "1234", "12345", "3.14159", "-42", "1,000,000", "0x1F", "1e-9", "2024-05-17",
    "café", "naïve", "résumé", "Ångström", "Straße", "façade", "piñata", "Ελληνικά", "Русский текст",
    "中文", "你好，世界", "日本語のテキスト", "한국어", "ไทย", "العربية", "עברית", "हिन्दी",
    "😀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "I ❤️ NY", "emoji😀inside", "∑ x² ≤ ∞", "→ ← ↑ ↓", "©®™",
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_start|>user\nhi<|im_end|>\n",
    "<|im_start|>assistant\n", "text<|im_end|>more", "<|im_start", "im_start|>", "<|unknown|>",
    "<s>", "</s>", "<unk>", "[INST]", "<think>", "<|im_start|><|im_end|>",
    "def f(x):\n    return x * 2\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
    "#include <stdio.h>", "SELECT * FROM users WHERE id = 1;", "x=>x+1", "a&&b||!c", "{\"k\": [1, 2]}",
    "https://example.com/path?q=1&r=2", "user@example.com", "C:\\Windows\\System32", "$HOME/.bashrc",
    "    indented code", "\t\tdouble tab", "\u00a0non-breaking", "zero\u200bwidth", "e\u0301 combining",
    "...", "?!?!", "----", "====", "***bold***", "__init__", "snake_case_name", "camelCaseName",
    "ALLCAPS", "MiXeD CaSe", "a" * 100, "ab" * 60, " " * 40, "\n" * 12, "1" * 30, "😀" * 8,
]

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "tokenizer", "running",
         "unbelievable", "re-entry", "co-operate", "isn't", "won't", "we'll", "they're", "Mr.",
         "U.S.A.", "e.g.", "hello", "World", "HTTP", "JSON", "GPU", "model", "inference", "π",
         "naïveté", "crème", "brûlée", "jalapeño", "Zürich", "Łódź", "东京", "北京", "ありがとう",
         "사랑", "мир", "γειά", "🙂", "🚀", "🎉", "✓", "—", "–", "“quoted”", "‘single’", "«guillemets»"]
CODE = ["x", "=", "+", "-", "*", "/", "(", ")", "{", "}", "[", "]", ";", ":", "::", "->", "=>", "==",
        "!=", "<=", ">=", "&&", "||", "#", "//", "/*", "*/", "\"str\"", "'c'", "i++", "return",
        "if", "else", "while", "lambda", "self.", "std::vector<int>", "0", "42", "3.5f", "1e10"]
SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "system", "user", "assistant"]
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", " \n", "\r\n", "    ", "\u3000"]


def generated_strings(seed: int = 20240517, count: int = 260):
    rnd = random.Random(seed)
    out = []
    for k in range(count):
        kind = k % 6
        parts = []
        n = rnd.randint(1, 14)
        for _ in range(n):
            if kind == 0:  # English-ish prose
                parts.append(rnd.choice(WORDS))
                parts.append(rnd.choice([" ", " ", " ", ", ", ". ", "\n"]))
            elif kind == 1:  # code
                parts.append(rnd.choice(CODE))
                parts.append(rnd.choice(["", " ", "", "\n", "    "]))
            elif kind == 2:  # numbers of every length, with separators
                parts.append(str(rnd.randint(0, 10 ** rnd.randint(1, 12))))
                parts.append(rnd.choice(["", " ", ".", ",", "-", "/", ":"]))
            elif kind == 3:  # whitespace runs between words
                parts.append(rnd.choice(WORDS))
                parts.append(rnd.choice(SPACES) * rnd.randint(1, 4))
            elif kind == 4:  # special-looking markers mixed with text
                parts.append(rnd.choice(SPECIALS + WORDS))
                parts.append(rnd.choice(["", " ", "\n"]))
            else:  # random code points from several scripts and emoji
                block = rnd.choice([(0x20, 0x7E), (0xC0, 0x17F), (0x370, 0x3FF), (0x400, 0x4FF),
                                    (0x4E00, 0x4FFF), (0x3040, 0x30FF), (0xAC00, 0xAD00),
                                    (0x1F300, 0x1F64F), (0x2000, 0x206F)])
                parts.append("".join(chr(rnd.randint(*block)) for _ in range(rnd.randint(1, 6))))
        out.append("".join(parts))
    return out


def main() -> int:
    rc.import_llama_cpp()
    model = rc.model_path()
    binary = rc.lmstation_bin()
    rc.require_subcommand(binary, "tokenize")

    strings = HAND_PICKED + generated_strings()
    ref = rc.LlamaRef(model, vocab_only=True)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "strings.jsonl"
        path.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in strings), encoding="utf-8")
        total_bad = 0
        for flags, add_special, parse_special in FLAG_SETS:
            out = rc.run_cli(binary, ["tokenize", model, "--file", path] + flags)
            lines = out.split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            name = " ".join(flags) or "(default)"
            if len(lines) != len(strings):
                print(f"FAIL {name}: lmstation printed {len(lines)} lines for {len(strings)} strings")
                total_bad += len(strings)
                continue
            bad = 0
            for s, line in zip(strings, lines):
                try:
                    ours = [int(x) for x in line.split()]
                except ValueError:
                    ours = None
                theirs = ref.tokenize(s.encode("utf-8"), add_special, parse_special)
                if ours != theirs:
                    bad += 1
                    if bad <= MAX_REPORTED:
                        print(f"DIFF {name} text={s!r}\n  lmstation: {line.strip()}\n"
                              f"    pieces: {[ref.piece(t) for t in ours] if ours else line!r}\n"
                              f"  llama.cpp: {' '.join(map(str, theirs))}\n"
                              f"    pieces: {[ref.piece(t) for t in theirs]}")
            print(f"{name}: {len(strings) - bad}/{len(strings)} strings tokenized identically")
            total_bad += bad
    ref.close()
    return 0 if total_bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

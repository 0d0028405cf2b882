"""Copies the CUDA kernels' source into OUT with what a C++ compiler cannot take replaced by the
host emulation of cuda_host.h: the mma asm by HostMma, the extern __shared__ array by g_host_smem,
static __shared__ arrays by function-local statics (blocks run one at a time), <<<...>>> launches
by HostLaunch (named for the emulator's messages). Fails when a pattern is not found, so a change
to the kernels that the emulation does not cover shows at once.

    python3 patch_kernels.py SOURCE_ROOT OUT FILE...
"""
import os
import re
import sys

MMA = re.compile(r'asm volatile\(\s*"mma\.sync\.aligned\.m16n8k16\.row\.col\.f32\.(b?f16)\..*?"r"\(b1\)\);', re.S)
SHARED = re.compile(r'extern __shared__ (?:__align__\(\d+\) )?(\w+) (\w+)\[\];')
STATIC_SHARED = re.compile(r'__shared__ (\w+) (\w+)\[')
LAUNCH = re.compile(r'([\w:]+(?:<[^<>;]*>)?)<<<(.*?)>>>\((.*?)\);', re.S)


def patch(text, rel):
    text, mma = MMA.subn(lambda m: 'HostMma(c, a, b0, b1, %s);' % ("true" if m.group(1) == "f16" else "false"), text)
    text, _ = SHARED.subn(r'\1* \2 = reinterpret_cast<\1*>(g_host_smem);', text)
    text, _ = STATIC_SHARED.subn(r'static \1 \2[', text)
    text, _ = LAUNCH.subn(
        lambda m: '(g_host_kernel_name = "%s", HostLaunch(HostLaunchConfig(%s), %s, %s));' % (
            m.group(1), m.group(2), m.group(1), m.group(3)), text)
    if rel.endswith("mma_tile.cuh") and mma != 2:
        sys.exit("patch_kernels: %s: expected 2 mma asm statements, found %d" % (rel, mma))
    for left in ("asm", "<<<", "__shared__"):
        if left in text:
            sys.exit("patch_kernels: %s: '%s' is left that the host cannot run" % (rel, left))
    return text


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    root, out = sys.argv[1], sys.argv[2]
    for rel in sys.argv[3:]:
        with open(os.path.join(root, rel)) as f:
            text = patch(f.read(), rel)
        dst = os.path.join(out, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()

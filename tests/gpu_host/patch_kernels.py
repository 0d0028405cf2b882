"""Copies the tiled attention kernels' CUDA source into OUT with what a C++ compiler cannot take
replaced by the host emulation of cuda_host.h: the mma asm by HostMma, the extern __shared__
array by g_host_smem, <<<...>>> launches by HostLaunch. Fails when a pattern is not found, so a
change to the kernels that the emulation does not cover shows at once.

    python3 patch_kernels.py SOURCE_ROOT OUT
"""
import os
import re
import sys

FILES = ("gpu/ops/mma_tile.cuh", "gpu/ops/attention_prefill.cu", "gpu/train/attention_flash.cu")
MMA = re.compile(r'asm volatile\(\s*"mma\.sync\.aligned\.m16n8k16\.row\.col\.f32\.(b?f16)\..*?"r"\(b1\)\);', re.S)
SHARED = re.compile(r'extern __shared__ __align__\(16\) uint16_t smem\[\];')
LAUNCH = re.compile(r'([\w:]+(?:<[^<>;]*>)?)<<<(.*?)>>>\((.*?)\);', re.S)


def patch(text, rel):
    text, mma = MMA.subn(lambda m: 'HostMma(c, a, b0, b1, %s);' % ("true" if m.group(1) == "f16" else "false"), text)
    text, shared = SHARED.subn('uint16_t* smem = g_host_smem;', text)
    text, launches = LAUNCH.subn(r'HostLaunch(HostLaunchConfig(\2), \1, \3);', text)
    if rel.endswith("mma_tile.cuh") and mma != 2:
        sys.exit("patch_kernels: %s: expected 2 mma asm statements, found %d" % (rel, mma))
    if rel.endswith(".cu") and (shared == 0 or launches == 0):
        sys.exit("patch_kernels: %s: no shared array or no launch found" % rel)
    for left in ("asm", "<<<", "__shared__"):
        if left in text:
            sys.exit("patch_kernels: %s: '%s' is left that the host cannot run" % (rel, left))
    return text


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    root, out = sys.argv[1], sys.argv[2]
    for rel in FILES:
        with open(os.path.join(root, rel)) as f:
            text = patch(f.read(), rel)
        dst = os.path.join(out, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()

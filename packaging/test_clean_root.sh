#!/usr/bin/env bash
# Installs the .deb into a clean Debian 12 root made by debootstrap (network to the Debian
# mirror, root, a few minutes; not part of the test suite) and runs lmstation there: --version,
# the ratings_demo example job with --batch, and the desktop window under Xvfb.
#   bash packaging/test_clean_root.sh build/packages/lmstation_0.1.0_amd64.deb [ROOT_DIR]
set -euo pipefail
deb="$(readlink -f "$1")"
root="${2:-$(mktemp -d /tmp/lms-root.XXXXXX)}"
command -v debootstrap >/dev/null || { echo "needs debootstrap (apt-get install debootstrap)" >&2; exit 2; }
if [ ! -x "$root/usr/bin/apt-get" ]; then
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
fi
cp "$deb" "$root/tmp/lmstation.deb"
mount -t proc proc "$root/proc"
trap 'umount "$root/proc" 2>/dev/null || true' EXIT
chroot "$root" /bin/sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /tmp/lmstation.deb xvfb xauth >/dev/null'
chroot "$root" /usr/bin/lmstation --version
chroot "$root" /bin/sh -c 'mkdir -p /tmp/job && cd /tmp/job && lmstation --batch /usr/share/lmstation/assets/examples/ratings_demo.toml >summary.json && grep -q "\"status\": \"done\"" summary.json && echo "batch job: done"'
chroot "$root" /bin/sh -c 'cd /tmp/job && HOME=/tmp xvfb-run -a -s "-screen 0 1280x800x24" lmstation --screenshot /tmp/job/history.png --panel history --frames 5 --db /tmp/job/lmstation-ratings-demo/ratings.db && grep -q ratings-demo /tmp/job/history.png.json && echo "desktop app: opened, history shows the job"'
echo "clean root: $root"

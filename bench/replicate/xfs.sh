#!/usr/bin/env bash
# The 10%-changed delta into a directory target on XFS with reflinks (a loop-mounted image) and on
# an ext4 folder in the same run, each beside `cp` of the whole checkpoint into the same
# filesystem (bench/replicate/run.ts --cases ten --target-dir XFS,EXT4).
#
# Usage (as root; needs xfsprogs for mkfs.xfs and a loop device):
#   apt-get install -y xfsprogs
#   npm run build && bash bench/replicate/xfs.sh [--gib 2] [--ranks 1,2] [--rounds 3]
# Environment: HW_XFS_IMAGE_SIZE (default 12G, a sparse file in /tmp), HW_EXT4_DIR (a folder on
# ext4; default a new one under /tmp). The image is unmounted and deleted however the run ends.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" -ne 0 ]; then
  echo "bench/replicate/xfs.sh mounts a loop device: run it as root" >&2
  exit 1
fi
command -v mkfs.xfs >/dev/null || {
  echo "mkfs.xfs is missing: apt-get install -y xfsprogs" >&2
  exit 1
}
img=$(mktemp /tmp/hw-bench-xfs-XXXXXX.img)
mnt=$(mktemp -d /tmp/hw-bench-xfs-mnt-XXXXXX)
ext=${HW_EXT4_DIR:-}
own_ext=0
if [ -z "$ext" ]; then
  ext=$(mktemp -d /tmp/hw-bench-ext4-XXXXXX)
  own_ext=1
fi
cleanup() {
  if mountpoint -q "$mnt"; then umount "$mnt" || { sleep 2; umount "$mnt"; } || umount -l "$mnt"; fi
  rmdir "$mnt" 2>/dev/null || true
  rm -f "$img"
  if [ "$own_ext" = 1 ]; then rm -rf "$ext"; fi
}
trap cleanup EXIT
truncate -s "${HW_XFS_IMAGE_SIZE:-12G}" "$img"
mkfs.xfs -q -m reflink=1 "$img"
mount -o loop "$img" "$mnt"
echo "XFS (reflink=1) on a loop device at $mnt; ext4 at $ext; $(uptime)" >&2
npx tsx --conditions=@hotweights/source bench/replicate/run.ts --cases ten --target-dir "$mnt,$ext" "$@"

#!/usr/bin/env bash
# Runs the README's two set-up commands as a new user would: in a fresh Debian 12 root filesystem
# (debootstrap --variant=minbase from Debian's mirror, nothing else installed), on a clean clone
# of the committed tree. It shows what CI cannot on a machine where packages were installed by
# hand (scripts/check-deps.py, run by every CI, is the quick form of the same check). Needs root,
# network access to Debian's mirror, about 4 GB of disk and, for command 2, about as long as CI.
#
#   scripts/fresh-debian-check.sh [ROOT]       both commands (default ROOT: build/fresh-debian)
#   ONLY=1 scripts/fresh-debian-check.sh       command 1 only (install, build, draw a picture)
#   KEEP=1 ...                                 reuse ROOT's packages from an earlier run (the
#                                              clone is always fresh)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
root="$(realpath -m "${1:-$repo/build/fresh-debian}")"
mirror=http://deb.debian.org/debian

if [ "$(id -u)" -ne 0 ]; then
  echo "fresh-debian-check: needs root (debootstrap, chroot)" >&2
  exit 2
fi
command -v debootstrap >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap

# The README's first code block: its two commands, in order (comment lines skipped).
mapfile -t cmds < <(awk '/^```sh/{on=1; next} /^```/{if (on) exit} on && !/^#/ && NF' \
  "$repo/README.md")
if [ ${#cmds[@]} -ne 2 ]; then
  echo "fresh-debian-check: README's first sh block should hold exactly two commands, found" \
    "${#cmds[@]}" >&2
  exit 2
fi

cleanup() {
  for m in dev/pts dev proc sys; do
    mountpoint -q "$root/$m" && umount -l "$root/$m"
  done
  return 0
}
trap cleanup EXIT

if [ "${KEEP:-0}" != 1 ] || [ ! -f "$root/etc/debian_version" ]; then
  cleanup
  rm -rf "$root"
  echo "== debootstrap bookworm (minbase) into $root"
  debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
  cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"

# git is not in minbase: clone on the host, from the committed tree only.
rm -rf "$root/work"
mkdir -p "$root/work"
git clone -q --no-hardlinks "$repo" "$root/work/mindiesd"
echo "== clean clone of $(git -C "$repo" rev-parse --short HEAD)"

run_in_root() {
  chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    bash -c "cd /work/mindiesd && $1"
}

n=${#cmds[@]}
[ "${ONLY:-0}" = 1 ] && n=1
for ((i = 0; i < n; ++i)); do
  echo "== README command $((i + 1)): ${cmds[$i]}"
  start=$(date +%s)
  run_in_root "${cmds[$i]}"
  echo "== README command $((i + 1)) passed in $(($(date +%s) - start)) s"
done

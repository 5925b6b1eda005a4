#!/usr/bin/env bash
# Makes a Debian 12 (bookworm) base image with python3, numpy and pandas, from Debian's packages:
# debootstrap into a scratch directory, then `barge import` of that root file system.
#
#   sudo examples/stages/python/make-base-image.sh [NAME[:TAG]]      (default python-pandas:12)
#
# Environment:
#   BARGE       the barge program (default: barge on PATH); BARGE_ROOT chooses its repository
#   MIRROR      the Debian mirror (default: the first bookworm source configured for apt in
#               /etc/apt/sources.list and /etc/apt/sources.list.d, else http://deb.debian.org/debian)
#   CACHE_DIR   when set, the root file system's tarball is kept there, named after this script's
#               SHA-256, and reused: debootstrap runs once per machine and version of this script
#
# Needs root (debootstrap chroots and makes device nodes) and debootstrap (scripts/setup installs it).
set -euo pipefail

name="${1:-python-pandas:12}"
barge="${BARGE:-barge}"
suite=bookworm
packages=python3,python3-numpy,python3-pandas

# The first "deb" source of `suite` (not -updates or -security) that apt is configured with, in
# one-line (.list) or deb822 (.sources) form.
host_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v suite="$suite" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }   # [ options ]
        if ($(i + 1) == suite) { print $i; exit }
      }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v suite="$suite" '
      function flush() {
        if (deb && uri != "" && has_suite && !enabled_no) { print uri; exit }
        deb = 0; uri = ""; has_suite = 0; enabled_no = 0
      }
      /^[ \t]*$/ { flush(); next }
      /^#/ { next }
      tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
      tolower($1) == "uris:" { uri = $2 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) has_suite = 1 }
      tolower($1) == "enabled:" && tolower($2) == "no" { enabled_no = 1 }
      END { flush() }' "$f"
  done
}

mirror="${MIRROR:-$(host_mirror | head -n 1)}"
mirror="${mirror:-http://deb.debian.org/debian}"

work="$(mktemp -d "${TMPDIR:-/tmp}/barge-python-base.XXXXXX")"
cleanup() {
  # debootstrap may leave /proc or /sys mounted in the target when it fails.
  for m in proc sys dev/pts dev; do
    mountpoint -q "$work/rootfs/$m" 2>/dev/null && umount -l "$work/rootfs/$m" || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

tarball="$work/rootfs.tar"
if [ -n "${CACHE_DIR:-}" ]; then
  mkdir -p "$CACHE_DIR"
  key="$(sha256sum "$0" | cut -c1-16)"
  tarball="$CACHE_DIR/python-base-$key.tar"
fi

if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || {
    echo "make-base-image.sh: debootstrap is not installed (scripts/setup installs it)" >&2
    exit 1
  }
  echo "make-base-image.sh: debootstrap $suite from $mirror with $packages" >&2
  start=$(date +%s.%N)
  debootstrap --variant=minbase --include="$packages" "$suite" "$work/rootfs" "$mirror" \
    >"$work/debootstrap.log" 2>&1 || {
    tail -n 20 "$work/debootstrap.log" >&2
    echo "make-base-image.sh: debootstrap failed (log above)" >&2
    exit 1
  }
  end=$(date +%s.%N)
  echo "make-base-image.sh: debootstrap took $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s" >&2
  # What an image does not need: package lists and archives, documentation, translations.
  rm -rf "$work/rootfs"/var/lib/apt/lists/* "$work/rootfs"/var/cache/apt/* \
    "$work/rootfs"/usr/share/doc/* "$work/rootfs"/usr/share/man/* \
    "$work/rootfs"/usr/share/locale/* "$work/rootfs"/var/log/*
  tar -C "$work/rootfs" --numeric-owner -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
fi

"$barge" import "$tarball" "$name" >/dev/null
echo "$name"

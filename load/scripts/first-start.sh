#!/usr/bin/env bash
# Wall time of README.md's build path on a fresh clone, cold (a target
# directory of its own): the relay's run command, the test command (its
# build only), the walkthrough's command-line build and the example's.
#
#   load/scripts/first-start.sh [REV]     # default: HEAD
#
# Needs the package registry cache only; run nothing else meanwhile (it
# measures compile time on a 2-core machine).
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
rev=${1:-HEAD}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/convene" && git -C "$work/convene" checkout -q "$rev"
cd "$work/convene"
timed() {
  local start rc
  start=$(date +%s)
  "$@" >/dev/null 2>&1
  rc=$?
  echo "  $(($(date +%s) - start)) s (exit $rc): $*"
}
echo "README build path at $(git rev-parse --short HEAD), cold:"
total=$(date +%s)
timed cargo build -p convene-server
timed cargo test --workspace --locked --no-run
timed cargo build --workspace --bins
timed cargo build --workspace --examples
echo "  total $(($(date +%s) - total)) s"

#!/usr/bin/env bash
# CLI command latency, in the same run: `convene groups` opening the state
# directory itself (derive the key from the passphrase, open the store,
# start the client, catch up with the relay) against the same command
# answered by `convene daemon`. Prints p50 and p90 over N calls each, in
# milliseconds, and the ratio of the p50s. Needs only loopback.
#
#   load/scripts/cli-latency.sh            # N=100, release build
#   N=20 PROFILE=debug load/scripts/cli-latency.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-100}
PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then
  cargo build --release --quiet -p convene-server -p convene-cli
else
  cargo build --quiet -p convene-server -p convene-cli
fi
bin="target/$PROFILE"
work=$(mktemp -d)
relay_pid=""
daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
  [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port=$((20000 + RANDOM % 20000))
"$bin/convene-server" --listen "127.0.0.1:$port" --data-dir "$work/relay" >"$work/relay.out" 2>"$work/relay.log" &
relay_pid=$!
for _ in $(seq 100); do
  grep -q "listening on" "$work/relay.out" 2>/dev/null && break
  sleep 0.1
done
invite=$(grep -o 'cvn2_[A-Za-z0-9_-]*' "$work/relay.out" | head -1)

export CONVENE_PASSPHRASE="a passphrase for the latency run"
state="$work/sam"
convene() { "$bin/convene" --state-dir "$state" "$@"; }
convene enrol "$invite" --user-id sam --name "Sam" >/dev/null
convene group create "Bench cohort" >/dev/null

# Milliseconds of each of N runs of `convene groups`, sorted.
times() {
  for _ in $(seq "$N"); do
    start=$(date +%s%N)
    convene groups >/dev/null
    end=$(date +%s%N)
    echo $(((end - start) / 1000))
  done | sort -n
}
percentile() { # sorted microseconds on stdin, percentile as $1
  awk -v p="$1" '{ v[NR] = $1 } END { i = int((NR * p + 99) / 100); if (i < 1) i = 1; printf "%.1f", v[i] / 1000 }'
}

direct=$(times)
# The binary itself, not the shell function, so that $! is the daemon.
"$bin/convene" --state-dir "$state" daemon >"$work/daemon.out" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
  [ -S "$state/daemon.sock" ] && break
  sleep 0.1
done
through=$(times)

d50=$(percentile 50 <<<"$direct"); d90=$(percentile 90 <<<"$direct")
t50=$(percentile 50 <<<"$through"); t90=$(percentile 90 <<<"$through")
echo "convene groups, $N calls each ($PROFILE build):"
echo "  opening the state directly: p50 ${d50} ms, p90 ${d90} ms"
echo "  through convene daemon:     p50 ${t50} ms, p90 ${t90} ms"
awk -v d="$d50" -v t="$t50" 'BEGIN { printf "  p50 ratio (direct / daemon): %.1fx\n", d / t }'

#!/usr/bin/env bash
# Instructions per request of the gateway proxy path, this build against a baseline build, counted
# by valgrind's callgrind (instruction counts do not move with the machine's load, unlike CPU time).
#
#   npm run build && loadtests/instructions-ab.sh ../old/dist/gateway/cli/main.js [requests] [runs]
#   npm run build && loadtests/instructions-ab.sh --kill-switch [requests] [runs]
#
# The second form compares this build with itself under two configurations, as the bench's (k0) and
# (k): the model has two versions (both the same backend, stable 1) and `killSwitch.rollbackTo: "2"`;
# the baseline runs with `killSwitch.enabled: false`, this build with `killSwitch.enabled: true`
# (nothing killed). The figure is what a configured kill switch costs a request, in instructions.
# It includes the kill switch's timers (fleet heartbeat, kill-state reconcile and staleness check,
# each about once a second), which under callgrind (tens of times slower) fall on far fewer requests
# than at full speed; to count the request path alone, slow them on the (k) side:
#   KILL_SWITCH_FIELDS='reconcileMs: 60000, staleAfterMs: 3600000' \
#   THIS_EXTRA='fleet: { heartbeatMs: 60000, expireAfterMs: 600000 }' loadtests/instructions-ab.sh --kill-switch
# More generally, BASELINE_EXTRA and THIS_EXTRA add top-level YAML lines to each side's gateway
# configuration (e.g. BASELINE_EXTRA='logging: { accessLog: true }').
#
# One backend (this build, iris in-process) on 127.0.0.1:$IAB_PORT (18099); each gateway in turn on the
# next port under callgrind with instrumentation off, warmed with 3,000 requests, then counted over
# `requests` (2,000) sent one at a time (one connection: each request is one event-loop cycle, so the
# count per request does not depend on how requests happen to batch), `runs` (2) times each,
# alternating. Prints each run, then the median of each side and their ratio. Needs valgrind.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd); THIS="$HERE/dist/gateway/cli/main.js"
MODEL="versions: { '1': { backend: { kind: oip-http, url: 'http://127.0.0.1:BPORT', model: iris } } }"
BASE_EXTRA=${BASELINE_EXTRA:-}; THIS_EXTRA=${THIS_EXTRA:-}
if [ "${1:-}" = --kill-switch ]; then
  shift; BASELINE="$THIS"
  MODEL="versions: { '1': { backend: { kind: oip-http, url: 'http://127.0.0.1:BPORT', model: iris } }, '2': { backend: { kind: oip-http, url: 'http://127.0.0.1:BPORT', model: iris } } }, stable: '1', killSwitch: { rollbackTo: '2' }"
  BASE_EXTRA="killSwitch: { enabled: false }"$'\n'"$BASE_EXTRA"
  THIS_EXTRA="killSwitch: { enabled: true${KILL_SWITCH_FIELDS:+, $KILL_SWITCH_FIELDS} }"$'\n'"$THIS_EXTRA"
else
  BASELINE=$(realpath "$1"); shift
fi
N=${1:-2000}; RUNS=${2:-2}
BPORT=${IAB_PORT:-18099}; GPORT=$((BPORT + 1)); MODEL=${MODEL//BPORT/$BPORT}
DIR=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$DIR"' EXIT
cat > "$DIR/b.yaml" <<YAML
auth: { insecureNoAuth: true }
server: { host: 127.0.0.1, port: $BPORT, workers: 1 }
models: { iris: { versions: { '1': { backend: { kind: onnx, path: $HERE/demo/models/iris.onnx } } } } }
YAML
for side in baseline this-build; do
  if [ "$side" = baseline ]; then extra=$BASE_EXTRA; else extra=$THIS_EXTRA; fi
  cat > "$DIR/g-$side.yaml" <<YAML
auth: { insecureNoAuth: true }
server: { host: 127.0.0.1, port: $GPORT, workers: 1 }
models: { iris: { $MODEL } }
$extra
YAML
done
cat > "$DIR/load.mjs" <<JS
import autocannon from '$HERE/node_modules/autocannon/autocannon.js';
const body = JSON.stringify({ id: 'bench', inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [5.1, 3.5, 1.4, 0.2] }] });
const r = await autocannon({ url: 'http://127.0.0.1:$GPORT/v2/models/iris/infer', method: 'POST', body, headers: { 'content-type': 'application/json' }, connections: Number(process.argv[3]), amount: Number(process.argv[2]), timeout: 60 });
if (r['2xx'] !== Number(process.argv[2])) { console.error('not every request answered 200', r['2xx'], r.non2xx, r.errors); process.exit(1); }
JS
ready() { for _ in $(seq 1 240); do curl -s -m 1 "127.0.0.1:$1/v2/health/ready" | grep -q true && return 0; sleep 1; done; echo "no gateway ready on :$1" >&2; return 1; }
node "$THIS" serve --config "$DIR/b.yaml" > "$DIR/b.log" 2>&1 & ready "$BPORT"
count() { # $1 CLI, $2 label (baseline-N or this-build-N: its side's configuration)
  valgrind --tool=callgrind --smc-check=all-non-file --instr-atstart=no --callgrind-out-file="$DIR/$2.out" node "$1" serve --config "$DIR/g-${2%-*}.yaml" > "$DIR/$2.log" 2>&1 &
  local vp=$!; ready "$GPORT" || { cat "$DIR/$2.log" >&2; return 1; }
  node "$DIR/load.mjs" 3000 4
  callgrind_control -i on $vp > /dev/null 2>&1; node "$DIR/load.mjs" "$N" 1; callgrind_control -i off $vp > /dev/null 2>&1
  kill -TERM $vp; wait $vp 2>/dev/null || true
  local total; total=$(grep -h '^totals' "$DIR/$2.out"* | awk '{s+=$2} END {print s}')
  echo "$2: $((total / N)) instructions per request" | tee -a "$DIR/counts"
}
for i in $(seq 1 "$RUNS"); do count "$BASELINE" "baseline-$i"; count "$THIS" "this-build-$i"; done
median() { grep "^$1-" "$DIR/counts" | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mb=$(median baseline); mt=$(median this-build)
echo "median: baseline $mb, this build $mt instructions per request; this/baseline $(awk -v t="$mt" -v b="$mb" 'BEGIN {printf "%.4f", t / b}')"

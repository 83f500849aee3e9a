#!/usr/bin/env bash
# Instructions per request of the gateway proxy path, this build against a baseline build, counted
# by valgrind's callgrind (instruction counts do not move with the machine's load, unlike CPU time).
#
#   npm run build && loadtests/instructions-ab.sh ../old/dist/gateway/cli/main.js [requests] [runs]
#
# One backend (this build, iris in-process) on 127.0.0.1:18099; each gateway in turn on :18100 under
# callgrind with instrumentation off, warmed with 3,000 requests, then counted over `requests` (2,000)
# sent one at a time (one connection: each request is one event-loop cycle, so the count per request
# does not depend on how requests happen to batch), `runs` (2) times each, alternating. Needs valgrind.
#
# BASELINE_EXTRA and THIS_EXTRA add top-level YAML lines to each side's gateway configuration, so one
# build can be compared with itself under two configurations, e.g. what the kill switch costs:
#   BASELINE_EXTRA='killSwitch: { enabled: false }' loadtests/instructions-ab.sh dist/gateway/cli/main.js
set -euo pipefail
BASELINE=$(realpath "$1"); N=${2:-2000}; RUNS=${3:-2}
HERE=$(cd "$(dirname "$0")/.." && pwd); THIS="$HERE/dist/gateway/cli/main.js"
DIR=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$DIR"' EXIT
cat > "$DIR/b.yaml" <<YAML
auth: { insecureNoAuth: true }
server: { host: 127.0.0.1, port: 18099, workers: 1 }
models: { iris: { versions: { '1': { backend: { kind: onnx, path: $HERE/demo/models/iris.onnx } } } } }
YAML
for side in baseline this-build; do
  if [ "$side" = baseline ]; then extra=${BASELINE_EXTRA:-}; else extra=${THIS_EXTRA:-}; fi
  cat > "$DIR/g-$side.yaml" <<YAML
auth: { insecureNoAuth: true }
server: { host: 127.0.0.1, port: 18100, workers: 1 }
models: { iris: { versions: { '1': { backend: { kind: oip-http, url: 'http://127.0.0.1:18099', model: iris } } } } }
$extra
YAML
done
cat > "$DIR/load.mjs" <<JS
import autocannon from '$HERE/node_modules/autocannon/autocannon.js';
const body = JSON.stringify({ id: 'bench', inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [5.1, 3.5, 1.4, 0.2] }] });
const r = await autocannon({ url: 'http://127.0.0.1:18100/v2/models/iris/infer', method: 'POST', body, headers: { 'content-type': 'application/json' }, connections: Number(process.argv[3]), amount: Number(process.argv[2]), timeout: 60 });
if (r['2xx'] !== Number(process.argv[2])) { console.error('not every request answered 200', r['2xx'], r.non2xx, r.errors); process.exit(1); }
JS
ready() { for _ in $(seq 1 240); do curl -s -m 1 "127.0.0.1:$1/v2/health/ready" | grep -q true && return 0; sleep 1; done; return 1; }
node "$THIS" serve --config "$DIR/b.yaml" > "$DIR/b.log" 2>&1 & ready 18099
count() { # $1 CLI, $2 label (baseline-N or this-build-N: its side's configuration)
  valgrind --tool=callgrind --smc-check=all-non-file --instr-atstart=no --callgrind-out-file="$DIR/$2.out" node "$1" serve --config "$DIR/g-${2%-*}.yaml" > "$DIR/$2.log" 2>&1 &
  local vp=$!; ready 18100
  node "$DIR/load.mjs" 3000 4
  callgrind_control -i on $vp > /dev/null 2>&1; node "$DIR/load.mjs" "$N" 1; callgrind_control -i off $vp > /dev/null 2>&1
  kill -TERM $vp; wait $vp 2>/dev/null || true
  local total; total=$(grep -h '^totals' "$DIR/$2.out"* | awk '{s+=$2} END {print s}')
  echo "$2: $((total / N)) instructions per request"
}
for i in $(seq 1 "$RUNS"); do count "$BASELINE" "baseline-$i"; count "$THIS" "this-build-$i"; done

#!/usr/bin/env bash
# Every figure of issues 15 and 16, each beside its baseline, in one table:
#
#   bash bench/run_all.sh
#
# Runs each figure's script (each starts its own servers, ours and the baseline, and writes
# its figures with --json), one after another, with sizes chosen so the whole run takes
# about 10-12 minutes on 2 idle cores (28 min measured on 2 cores shared at load average
# 8-10; P6's 10,000 connections are the longest part). A script that fails or overruns its time limit is reported
# as FAILED in the table and the run goes on. At the end it prints one table and writes it
# to bench/results/latest.md; every script's full output is in bench/results/logs/.
# See bench/README.md ("Method") for what each figure measures.
#
# Needs PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379, wrk, node and npm (the
# Node driver's packages are installed by `npm ci` on first use). Sizes can be changed
# through the environment, e.g. P6_CONNECTIONS=2000 bash bench/run_all.sh for a quick run.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY="${PYTHON:-.venv/bin/python}"
[[ -x "$PY" ]] || PY="$(command -v python3)"
OUT="${BENCH_RESULTS:-bench/results}"

# Sizes (see bench/README.md, "Method"). The issue's sizes where it names one (1,000 clients,
# 10,000 idle connections, 200/s); durations and message counts kept short.
WRK_SECONDS="${WRK_SECONDS:-4}"            # P1, #15 row 1: seconds per wrk round, 2 rounds a side
AUTH_REQUESTS="${AUTH_REQUESTS:-2000}"     # P5: sequential requests per route
WEBHOOKS="${WEBHOOKS:-1000}"               # P4: webhook deliveries
EMAILS="${EMAILS:-2000}"                   # #21 e-mail: e-mail deliveries
LATENCY_SECONDS="${LATENCY_SECONDS:-3}"    # P3: seconds at 200/s, per mode
STEADY_SECONDS="${STEADY_SECONDS:-10}"     # #21 steady: seconds at 500/s (redis), 300/s (embedded)
FANOUT_CLIENTS="${FANOUT_CLIENTS:-1000}"   # P2, #15 rows 3, 5, 7: clients in the room
FANOUT_MESSAGES="${FANOUT_MESSAGES:-50}"   # P2, #15 row 7: messages in the burst
PACED_SECONDS="${PACED_SECONDS:-4}"        # #15 row 5: seconds at 5,000 deliveries/s
P6_CONNECTIONS="${P6_CONNECTIONS:-10000}"  # P6: idle connections per server
# Each script's time limit is about 3 times what it takes on 2 quiet cores, so a busy shared
# machine still finishes it; LIMIT_FACTOR scales them all (e.g. 0.5 on a quiet machine).
LIMIT_FACTOR="${LIMIT_FACTOR:-1}"

# Scratch databases of this run are named after it, so any a stopped script could not drop
# are found and dropped at the end (other runs on the same server use other names).
export BENCH_DB_PREFIX="chatapi_bench_runall$$"

mkdir -p "$OUT/logs"
rm -f "$OUT"/*.json "$OUT/manifest.tsv" "$OUT"/logs/*.log
MANIFEST="$OUT/manifest.tsv"
: >"$MANIFEST"

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
STARTED="$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
LOAD_START="$(loadavg)"
RUN_T0=$SECONDS
echo "bench/run_all.sh: started $STARTED on $(nproc) CPUs, load average $LOAD_START"

# run LABEL LIMIT_SECONDS SCRIPT ARGS...: one figure script, bounded, never fatal.
run() {
  local label="$1" limit="$2" script="$3"
  shift 3
  local slug="${label//[^A-Za-z0-9]/_}"
  local json="$OUT/$slug.json" log="$OUT/logs/$slug.log"
  local cmd="python bench/$script $*"
  local load t0 code
  limit="$(awk -v s="$limit" -v f="$LIMIT_FACTOR" 'BEGIN { printf "%d", s * f }')"
  load="$(loadavg)"
  t0=$SECONDS
  printf '%-12s %-58s ' "$label" "$script $*"
  # SIGINT first, so the script's cleanup (servers stopped, scratch databases dropped)
  # runs; SIGKILL 30 s later if it does not exit.
  timeout -k 30 -s INT "$limit" "$PY" "bench/$script" "$@" --json "$json" >"$log" 2>&1
  code=$?
  local spent=$((SECONDS - t0))
  if [[ $code -eq 0 ]]; then echo "ok (${spent}s)"; else echo "FAILED, exit $code (${spent}s): $log"; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$label" "$script" "$code" "$spent" "$load" "$json" "$log" "$cmd" >>"$MANIFEST"
}

run "P1" 150 notification_send.py --duration "$WRK_SECONDS" --rounds 2 --warmup 2
run "#15 row 1" 150 message_send_wrk.py --db postgresql --rooms 64 \
  --duration "$WRK_SECONDS" --rounds 2 --warmup 2 --log-level WARNING
run "P5" 120 auth_overhead.py --requests "$AUTH_REQUESTS" --cold-keys 3 --log-level WARNING
run "P4" 240 webhook_throughput.py --deliveries "$WEBHOOKS"
run "#21 e-mail" 240 email_throughput.py --deliveries "$EMAILS"
run "#22 bulk e-mail" 300 email_mailgun.py --emails 10000
run "P3" 240 notification_latency.py --rate 200 --seconds "$LATENCY_SECONDS" --grace 10
run "#21 steady" 480 notification_steady.py --modes redis,embedded --seconds "$STEADY_SECONDS" \
  --grace 20
# P2 (= #15 row 4, the burst) and #15 row 5 (paced) on one set-up and connect per target.
run "P2, #15 rows 4-5" 480 fanout_paced.py --clients "$FANOUT_CLIENTS" \
  --burst "$FANOUT_MESSAGES" --post-concurrency 4 --rates 5000d --seconds "$PACED_SECONDS"
run "#15 row 3" 240 connect_1000.py --clients "$FANOUT_CLIENTS" --targets bare,node,chatapi
run "P6" 900 idle_memory.py --connections "$P6_CONNECTIONS" --procs 2 \
  --targets bare,chatapi,chatapi-ws
run "#15 row 7" 360 scaleout.py --clients "$FANOUT_CLIENTS" --messages "$FANOUT_MESSAGES"
# #25 "Also measure": churn on one process; Redis restarted under it with two processes.
run "#25 churn" 300 churn.py --clients "$FANOUT_CLIENTS"
run "#25 broker restart" 420 broker_restart.py --clients "$FANOUT_CLIENTS"

"$PY" - "$BENCH_DB_PREFIX" <<'PY'
import asyncio, sys
from bench._support import DEFAULT_PG_SERVER, drop_leftover_databases
left = asyncio.run(drop_leftover_databases(DEFAULT_PG_SERVER, sys.argv[1]))
if left:
    print(f"dropped {len(left)} scratch database(s) a stopped script left: {', '.join(left)}")
PY

echo
"$PY" bench/figures_table.py "$MANIFEST" --out "$OUT/latest.md" \
  --started "$STARTED" --load-start "$LOAD_START" --wall "$((SECONDS - RUN_T0))"
echo
echo "(table written to $OUT/latest.md; each script's output in $OUT/logs/)"

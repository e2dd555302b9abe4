#!/usr/bin/env bash
# What tracing costs, end to end: `orderly dev` with tracing off, on without export, and on with
# OTLP export to `otlp_sink` (a counting OTLP/gRPC receiver), each measured with `saga_bench`.
# Modes alternate within each round so that a noisy neighbour hits all of them alike.
#
#     bash scripts/tracing_overhead.sh [ROUNDS] [ORDERS]        (default 3 rounds of 2000 orders)
#
# Prints, per run, orders/s end to end and the CPU time per order of `orderly dev` and of the
# receiver (read from /proc around the bench). Needs the ports of `orderly dev` and 4317 free.
set -euo pipefail

rounds=${1:-3}
orders=${2:-2000}
cd "$(dirname "$0")/.."
# Two builds: built beside the examples, `orderly` would get the test-only features (crash
# points) that the dev-dependencies turn on; measured is the binary `cargo build` ships.
cargo build --release --quiet --example saga_bench --example otlp_sink
cargo build --release --quiet --bin orderly
bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

started() { # pid, what: fails if the process has exited (e.g. its port was taken)
    kill -0 "$1" 2>/dev/null || { echo "$2 did not start; see its log" >&2; cat "$3" >&2; exit 1; }
}

cpu_seconds() { # utime + stime of a process, in seconds
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"
}

wait_for_port() {
    for _ in $(seq 1 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.2
    done
    echo "nothing listens on port $1 after 60 s" >&2
    return 1
}

"$bin/examples/otlp_sink" >"$work/sink.log" &
sink=$!
pids+=("$sink")
wait_for_port 4317
started "$sink" otlp_sink "$work/sink.log"

run_mode() { # mode, round
    local mode=$1 dir="$work/$1-$2"
    local -a env=(env -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_SDK_DISABLED -u RUST_LOG)
    case $mode in
        off) env+=(OTEL_SDK_DISABLED=true) ;;
        on) ;;
        export) env+=(OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317) ;;
    esac
    "${env[@]}" "$bin/orderly" dev --data-dir "$dir" --metrics-addr off --no-seed >"$dir.log" 2>&1 &
    local dev=$!
    pids+=("$dev")
    for port in 50051 50052 50053 50054 50055; do wait_for_port "$port"; done
    started "$dev" "orderly dev" "$dir.log"

    local dev_before sink_before
    dev_before=$(cpu_seconds "$dev")
    sink_before=$(cpu_seconds "$sink")
    local result
    result=$("$bin/examples/saga_bench" 0 32 "$orders" | tail -1)
    local dev_after sink_after
    dev_after=$(cpu_seconds "$dev")
    sink_after=$(cpu_seconds "$sink")
    kill -TERM "$dev"
    wait "$dev" || true

    # "32 concurrent clients, 1984 orders: placed in ... (283 orders/s end to end)"
    local placed rate
    placed=$(sed -E 's/.* clients, ([0-9]+) orders:.*/\1/' <<<"$result")
    rate=$(sed -E 's/.*\(([0-9]+) orders\/s end to end\).*/\1/' <<<"$result")
    awk -v mode="$mode" -v round="$2" -v rate="$rate" -v n="$placed" \
        -v dev0="$dev_before" -v dev1="$dev_after" -v sink0="$sink_before" -v sink1="$sink_after" \
        'BEGIN { printf "%-6s %5d %10d %14.2f %15.2f\n", mode, round, rate,
                        (dev1 - dev0) * 1000 / n, (sink1 - sink0) * 1000 / n }'
}

printf "%-6s %5s %10s %14s %15s\n" mode round "orders/s" "dev CPU ms/ord" "sink CPU ms/ord"
for round in $(seq 1 "$rounds"); do
    for mode in off on export; do
        # Not in a pipeline: run_mode must record its `orderly dev` in this shell's pids.
        run_mode "$mode" "$round" >>"$work/runs"
        tail -1 "$work/runs"
    done
done

# Medians per mode, and each against tracing off (CPU counts the receiver's share too).
echo
python3 - "$work/runs" <<'SUMMARY'
import statistics, sys
runs = [line.split() for line in open(sys.argv[1])]
median = {
    mode: (
        statistics.median(int(r[2]) for r in runs if r[0] == mode),
        statistics.median(float(r[3]) + float(r[4]) for r in runs if r[0] == mode),
    )
    for mode in ("off", "on", "export")
}
base_rate, base_cpu = median["off"]
print(f"{'median':<8}{'orders/s':>10}{'vs off':>9}{'CPU ms/ord':>12}{'vs off':>9}")
for mode, (rate, cpu) in median.items():
    print(f"{mode:<8}{rate:>10.0f}{rate / base_rate - 1:>+9.1%}{cpu:>12.2f}{cpu / base_cpu - 1:>+9.1%}")
SUMMARY

# What the orders cost in spans: the sink's counts by service and span name.
kill -TERM "$sink" && wait "$sink" || true
echo
echo "spans received over the export runs, by service and name:"
grep -v "spans received\|listening" "$work/sink.log" | head -20

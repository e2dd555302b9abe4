#!/usr/bin/env bash
# The load benchmark (examples/load_bench) against a fresh Orderly: `orderly dev` on SQLite, or
# every component as its own process on a throwaway PostgreSQL 15 (fsync on, as in production)
# with the embedded broker. Everything listens on 127.0.0.1 on free ports, in temp directories
# removed at the end; every wait is bounded.
#
#     bash scripts/bench.sh [sqlite|postgres] [load_bench flags...]
#     bash scripts/bench.sh sqlite --clients 1,8 --rates 50 --secs 20 --markdown
#     ORDERLY_BIN=/path/to/old/orderly bash scripts/bench.sh    # the same bench, another build
#     ORDERLY_REPLICAS=3 bash scripts/bench.sh postgres          # three processes per component
#     ORDERLY_SECURE=1 bash scripts/bench.sh sqlite              # orderly dev --secure: TLS, tokens
#
# With ORDERLY_REPLICAS (PostgreSQL only), order and the orchestrator call every inventory and
# payment replica (balanced) and the load enters through the first order replica.
#
# Builds the release example and binary in CARGO_TARGET_DIR (default ~/.cache/orderly-target).
# CPU figures count the processes started here and their children (PostgreSQL's backends), not
# other `orderly` processes on the machine; still, a busy neighbour skews every figure.
set -euo pipefail

mode=sqlite
if [[ ${1:-} == sqlite || ${1:-} == postgres ]]; then
    mode=$1
    shift
fi
replicas=${ORDERLY_REPLICAS:-1}
if ! [[ $replicas =~ ^[1-9]$ ]]; then
    echo "ORDERLY_REPLICAS must be 1-9, not $replicas" >&2
    exit 2
fi
if [[ $mode == sqlite && $replicas != 1 ]]; then
    echo "ORDERLY_REPLICAS needs postgres: orderly dev runs one of each" >&2
    exit 2
fi
secure=${ORDERLY_SECURE:-}
if [[ -n $secure && $mode != sqlite ]]; then
    echo "ORDERLY_SECURE needs sqlite: it runs orderly dev --secure" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/orderly-target}
# Two builds: built beside an example, `orderly` would get the test-only crash points that the
# dev-dependencies turn on (feature unification); measured is the binary `cargo build` ships.
cargo build --release --example load_bench
if [[ -z ${ORDERLY_BIN:-} ]]; then
    cargo build --release --bin orderly
fi
orderly=${ORDERLY_BIN:-$CARGO_TARGET_DIR/release/orderly}
bench=$CARGO_TARGET_DIR/release/examples/load_bench
[[ -x $orderly ]] || { echo "no orderly binary at $orderly" >&2; exit 1; }
# Every component the binary has: the query side too, when it has one (an older ORDERLY_BIN
# may not), so its projection's CPU is counted with the rest.
components=(inventory payment order notification orchestrator)
if "$orderly" components 2>/dev/null | grep -qw query; then components+=(query); fi

pg_bin=/usr/lib/postgresql/15/bin
work=$(mktemp -d -t orderly-bench.XXXXXX)
pg_dir=
pids=()
keep_logs=false

as_postgres() { # PostgreSQL refuses to run as root
    if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stop_pid() { # SIGTERM, then SIGKILL after 30 s: components drain in-flight work first
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    echo "pid $pid ignored SIGTERM for 30 s: killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    # Services before the broker (they publish while draining), the broker before the database.
    local i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop_pid "${pids[i]}"; done
    if [[ -n $pg_dir ]]; then
        as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
        if $keep_logs; then cp "$pg_dir/postgres.log" "$work/" 2>/dev/null || true; fi
        rm -rf "$pg_dir"
    fi
    if $keep_logs; then
        echo "the processes' logs are kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_ports() { # N distinct loopback ports nobody listens on now
    python3 - "$1" <<'PORTS'
import socket, sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in sockets))
PORTS
}

wait_for_port() { # port, pid, log: until something accepts there (bounded), or the process died
    for _ in $(seq 1 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        if ! kill -0 "$2" 2>/dev/null; then
            echo "process $2 exited before listening on $1; its log:" >&2
            tail -30 "$3" >&2
            exit 1
        fi
        sleep 0.2
    done
    echo "nothing listens on port $1 after 120 s; log $3:" >&2
    tail -30 "$3" >&2
    exit 1
}

# Replicas beyond the first listen on the extra ports (one set of free ports, so all differ).
read -r p_order p_inventory p_payment p_notification p_orchestrator p_query p_kafka p_pg \
    extra_ports <<<"$(free_ports $((8 + 6 * replicas)))"
endpoints=(--order "127.0.0.1:$p_order" --inventory "127.0.0.1:$p_inventory"
    --payment "127.0.0.1:$p_payment" --orchestrator "127.0.0.1:$p_orchestrator")

start_sqlite() {
    local secure_flags=()
    if [[ -n $secure ]]; then
        # The bench's setup imports its catalogue and accounts as one subject: no rate limit.
        secure_flags=(--secure --rate-limit-per-sec 0)
        bench_flags+=(--secure-dir "$work/data/secure")
    fi
    # In the environment, so that an older ORDERLY_BIN without a query side still starts.
    export ORDERLY_QUERY_PORT=$p_query
    "$orderly" --metrics-addr off dev --data-dir "$work/data" --no-seed --host 127.0.0.1 \
        "${secure_flags[@]}" \
        --order-port "$p_order" --inventory-port "$p_inventory" --payment-port "$p_payment" \
        --notification-port "$p_notification" --orchestrator-port "$p_orchestrator" \
        --broker-port "$p_kafka" >"$work/dev.log" 2>&1 &
    pids+=("$!")
    local name port
    for name in "${components[@]}"; do
        port=p_$name
        wait_for_port "${!port}" "${pids[-1]}" "$work/dev.log"
    done
}

start_postgres_cluster() { # default settings: fsync and synchronous_commit on
    pg_dir=$(mktemp -d -t orderly-bench-pg.XXXXXX)
    if [[ $(id -u) == 0 ]]; then chown -R postgres:postgres "$pg_dir"; fi
    as_postgres "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust -E UTF8 >/dev/null
    as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/postgres.log" -w -t 60 \
        -o "-p $p_pg -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
    for component in "${components[@]}"; do
        as_postgres "$pg_bin/createdb" -h 127.0.0.1 -p "$p_pg" -U postgres "orderly_$component"
    done
}

start_component() { # name, replica, port, extra flags...
    local name=$1 replica=$2 port=$3
    shift 3
    mkdir -p "$work/$name-$replica"
    "$orderly" --metrics-addr off "$name" --listen-addr "127.0.0.1:$port" \
        --data-dir "$work/$name-$replica" --kafka-bootstrap "127.0.0.1:$p_kafka" \
        --database-url "postgres://postgres@127.0.0.1:$p_pg/orderly_$name" "$@" \
        >"$work/$name-$replica.log" 2>&1 &
    pids+=("$!")
}

start_postgres() {
    start_postgres_cluster
    "$orderly" broker --listen-addr "127.0.0.1:$p_kafka" --data-dir "$work/broker" \
        >"$work/broker.log" 2>&1 &
    pids+=("$!")
    wait_for_port "$p_kafka" "${pids[-1]}" "$work/broker.log"
    # Replica 1 of each component listens on the ports load_bench is given; the others on
    # ports of their own.
    local name replica port i=1 k=0 extra
    declare -A ports=()
    read -r -a extra <<<"$extra_ports"
    for name in "${components[@]}"; do
        port=p_$name
        ports[$name-1]=${!port}
        for ((replica = 2; replica <= replicas; replica++)); do
            ports[$name-$replica]=${extra[k]}
            k=$((k + 1))
        done
    done
    local inventory=() payment=() orchestrator=()
    for ((replica = 1; replica <= replicas; replica++)); do
        inventory+=("http://127.0.0.1:${ports[inventory-$replica]}")
        payment+=("http://127.0.0.1:${ports[payment-$replica]}")
        orchestrator+=("http://127.0.0.1:${ports[orchestrator-$replica]}")
    done
    # Inventory and payment ask the orchestrator before undoing a step (in the environment, so
    # an older ORDERLY_BIN without the setting still starts).
    export ORDERLY_ORCHESTRATOR_ENDPOINT
    ORDERLY_ORCHESTRATOR_ENDPOINT=$(IFS=,; echo "${orchestrator[*]}")
    # As a deployment does (the chart's migration job), before any replica starts.
    for name in "${components[@]}"; do
        "$orderly" migrate "$name" --database-url "postgres://postgres@127.0.0.1:$p_pg/orderly_$name" \
            >>"$work/migrate.log" 2>&1 || { tail -20 "$work/migrate.log" >&2; exit 1; }
    done
    local deps=(--inventory-endpoint "$(IFS=,; echo "${inventory[*]}")"
        --payment-endpoint "$(IFS=,; echo "${payment[*]}")")
    local started=()
    for name in "${components[@]}"; do
        for ((replica = 1; replica <= replicas; replica++)); do
            case $name in
                order | orchestrator) start_component "$name" "$replica" "${ports[$name-$replica]}" "${deps[@]}" ;;
                *) start_component "$name" "$replica" "${ports[$name-$replica]}" ;;
            esac
            started+=("$name-$replica")
        done
    done
    for name in "${started[@]}"; do
        wait_for_port "${ports[$name]}" "${pids[i]}" "$work/$name.log"
        i=$((i + 1))
    done
}

bench_flags=()
echo "orderly: $orderly ($mode, $replicas of each component${secure:+, TLS and tokens})"
if [[ $mode == sqlite ]]; then
    start_sqlite
    measured=("${pids[@]}")
else
    start_postgres
    # The postmaster: its backends, one per connection, are its children.
    measured=("${pids[@]}" "$(head -1 "$pg_dir/data/postmaster.pid")")
fi
# load_bench waits for grpc.health SERVING on every endpoint itself (bounded).
rc=0
"$bench" "${endpoints[@]}" "${bench_flags[@]}" --pids "$(IFS=,; echo "${measured[*]}")" "$@" || rc=$?
if ((rc != 0)); then keep_logs=true; fi
exit "$rc"

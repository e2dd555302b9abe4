#!/usr/bin/env bash
# Checks the Helm chart with Helm's own Go SDK (helm-python-sdk) and Kubernetes' OpenAPI
# schemas (kubernetes-validate), and against the `orderly` binary's --help (set ORDERLY_BIN
# or build it first). Installs its tools into a cached venv, reused while
# requirements.txt is unchanged. Extra arguments go to pytest. Ends with "N passed, M failed".
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
venv="${ORDERLY_HELM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/orderly/helm-venv}"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"

if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  echo "helm checks: installing $(grep -c '==' "$here/requirements.txt") pinned packages into $venv" >&2
  # Built aside and moved in whole, so an interrupted install is never mistaken for a good one.
  tmp="$venv.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$tmp" || { echo "helm checks: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
  "$tmp/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  echo "$want" > "$tmp/.requirements.sha256"
  rm -rf "$venv"
  mv "$tmp" "$venv"
fi

cd "$repo"
# -rs: say why anything was skipped. No cache dir: the tree stays clean.
exec "$venv/bin/python" -m pytest deploy/helm/tests -q -rs -p no:cacheprovider "$@"

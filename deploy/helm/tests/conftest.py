"""Shared fixtures for the Helm chart checks: rendering through Helm's Go SDK
(helm-python-sdk), the values files, and the `orderly` binary for drift checks."""

from __future__ import annotations

import os
import re
import subprocess
from functools import lru_cache
from pathlib import Path

import helm_python as helm
import pytest
import yaml

HELM_DIR = Path(__file__).resolve().parent.parent
CHART_DIR = HELM_DIR / "orderly"
VALUES_DIR = Path(__file__).resolve().parent / "values"
REPO = HELM_DIR.parent.parent
RELEASE, NAMESPACE = "shop", "shop"
# The one value the chart cannot default: "default values" means this and nothing else.
REQUIRED = {"kafka": {"bootstrapServers": "kafka:9092"}}


def load_values(name: str) -> dict:
    path = HELM_DIR / "examples" / name if name.startswith("production") else VALUES_DIR / name
    return yaml.safe_load(path.read_text()) or {}


# Good values sets every structural check runs against.
GOOD_VALUES = {
    "defaults": lambda: dict(REQUIRED),
    "all-on": lambda: load_values("all-on.yaml"),
    "minimal": lambda: load_values("minimal.yaml"),
    "production-example": lambda: load_values("production-values.yaml"),
    "webhook": lambda: load_values("webhook.yaml"),
    "jwks-url": lambda: load_values("jwks-url.yaml"),
}


@lru_cache(maxsize=None)
def chart() -> helm.Chart:
    return helm.Chart.load(str(CHART_DIR))


def render(values: dict) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` would produce (hooks included)."""
    return chart().render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def manifests(rendered: dict[str, str]) -> list[dict]:
    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


@lru_cache(maxsize=None)
def rendered_set(name: str) -> tuple[dict, ...]:
    return tuple(manifests(render(GOOD_VALUES[name]())))


def of_kind(docs, kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def services(docs) -> list[dict]:
    """The Service clients use, one per component (not the headless ones callers resolve)."""
    return [s for s in of_kind(docs, "Service") if s["spec"].get("clusterIP") != "None"]


def headless_services(docs) -> list[dict]:
    """The headless Service of each component: every ready pod in DNS."""
    return [s for s in of_kind(docs, "Service") if s["spec"].get("clusterIP") == "None"]


def settings_configmap(docs) -> dict:
    """The ConfigMap of settings every component reads (not the saga's definitions)."""
    (cm,) = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-config")]
    return cm


def schema_error(values: dict) -> str:
    """The message of the schema's refusal of `values` (fails if they are accepted)."""
    with pytest.raises(helm.HelmValuesError) as err:
        chart().validate_schema(values)
    return str(err.value)


def component_of(doc) -> str:
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


def pods(docs) -> dict[str, tuple[dict, dict]]:
    """component -> (pod spec, its one container) of every Deployment."""
    out = {}
    for d in of_kind(docs, "Deployment"):
        spec = d["spec"]["template"]["spec"]
        (c,) = spec["containers"]
        out[component_of(d)] = (spec, c)
    return out


def volume(spec, name: str) -> dict | None:
    """The pod's volume called `name`, if any."""
    found = [v for v in spec["volumes"] if v["name"] == name]
    return found[0] if found else None


def env_values(container) -> dict[str, str | None]:
    """name -> value of the container's env (None for one taken from a Secret or ConfigMap)."""
    return {e["name"]: e.get("value") for e in container["env"]}


def network_policies(docs) -> dict[str, dict]:
    """component -> spec of its NetworkPolicy."""
    return {component_of(p): p["spec"] for p in of_kind(docs, "NetworkPolicy")}


def ingress_to(spec, port: str) -> list[dict]:
    """The ingress rules of a NetworkPolicy spec that open the named port (grpc, metrics)."""
    return [r for r in spec.get("ingress", []) if any(p["port"] == port for p in r["ports"])]


def install_notes(values: dict) -> str:
    """The notes `helm install` prints for `values` (NOTES.txt, rendered)."""
    cfg = helm.Config(storage_driver="memory", namespace=NAMESPACE)
    try:
        return cfg.install(chart(), RELEASE, values, dry_run="client", namespace=NAMESPACE)["notes"]
    finally:
        cfg.close()


def pod_specs(docs) -> list[tuple[str, dict]]:
    """(Kind/name, pod spec) of every workload: Deployments and the migration Job."""
    return [
        (f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in ("Deployment", "Job")
    ]


@pytest.fixture(params=sorted(GOOD_VALUES), scope="module")
def good(request) -> tuple[str, tuple[dict, ...]]:
    return request.param, rendered_set(request.param)


# --- the orderly binary ---------------------------------------------------------------

def find_binary() -> Path | None:
    """ORDERLY_BIN, else the newest debug/release build in the usual target directories."""
    if os.environ.get("ORDERLY_BIN"):
        return Path(os.environ["ORDERLY_BIN"])
    dirs = [Path.home() / ".cache/orderly-target", REPO / "target"]
    if os.environ.get("CARGO_TARGET_DIR"):
        dirs.insert(0, Path(os.environ["CARGO_TARGET_DIR"]))
    found = [d / p / "orderly" for d in dirs for p in ("debug", "release")]
    found = [f for f in found if f.is_file() and os.access(f, os.X_OK)]
    return max(found, key=lambda f: f.stat().st_mtime) if found else None


@lru_cache(maxsize=None)
def components_table() -> tuple[tuple[str, ...], ...]:
    """`orderly components` (the binary's registry), one row per component: name, default
    port, API and, if any, the components it calls; empty when there is no binary, which the
    drift checks then report."""
    binary = find_binary()
    if binary is None:
        return ()
    out = subprocess.run([str(binary), "components"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"`orderly components` failed: {out.stderr}"
    return tuple(tuple(line.split(None, 3)) for line in out.stdout.splitlines()[1:] if line.strip())


def registry() -> tuple[str, ...]:
    """The components the binary runs, from `orderly components`."""
    return tuple(row[0] for row in components_table())


def registry_ports() -> dict[str, int]:
    """component -> its default port, from `orderly components`."""
    return {row[0]: int(row[1]) for row in components_table()}


# Every component the chart must deploy: what the binary's registry lists.
COMPONENTS = registry()


@lru_cache(maxsize=None)
def help_text(*command: str) -> str:
    binary = find_binary()
    if binary is None or not binary.is_file():
        pytest.fail(
            "the orderly binary was not found (set ORDERLY_BIN or run "
            "`cargo build --bin orderly` first): the chart/binary drift checks need it",
            pytrace=False,
        )
    # Without our ORDERLY_* settings, and wide, so help lines are not wrapped mid-token.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLY_")}
    env["COLUMNS"] = "1000"
    out = subprocess.run(
        [str(binary), *command, "--help"], capture_output=True, text=True, env=env, timeout=30
    )
    assert out.returncode == 0, f"`orderly {' '.join(command)} --help` failed: {out.stderr}"
    return " ".join(out.stdout.split())


def accepted_env(*command: str) -> dict[str, bool]:
    """Env var names `orderly <command>` reads -> whether clap hides their values (secrets)."""
    found = re.findall(r"\[env: ([A-Z0-9_]+)(=?)", help_text(*command))
    assert found, f"no [env: ...] entries in `orderly {' '.join(command)} --help`"
    return {name: eq == "" for name, eq in found}


# --- one closing line for the project's test command ------------------------------------

_counts = {"passed": 0, "failed": 0, "skipped": 0}


def pytest_runtest_logreport(report):
    if report.failed:
        _counts["failed"] += 1
    elif report.skipped:
        _counts["skipped"] += 1
    elif report.when == "call" and report.passed:
        _counts["passed"] += 1


def pytest_collectreport(report):
    if report.failed:  # an unimportable test file is a failure, not silence
        _counts["failed"] += 1


def pytest_unconfigure(config):
    line = f"{_counts['passed']} passed, {_counts['failed']} failed"
    if _counts["skipped"]:
        line += f", {_counts['skipped']} skipped"
    print("\n" + line)

"""A saga declared in the values reaches the orchestrator, and only it: the definitions as
files of a ConfigMap mounted read-only, their paths and the participants' endpoints in its
environment, and the binary accepts those very files."""

from __future__ import annotations

import subprocess

import yaml

from conftest import RELEASE, find_binary, load_values, of_kind, rendered_set

SAGA_DIR = "/etc/orderly/saga"


def env_of(deployment: dict) -> dict[str, str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def deployment(docs, component: str) -> dict:
    (found,) = [d for d in of_kind(docs, "Deployment")
                if d["metadata"]["labels"]["app.kubernetes.io/component"] == component]
    return found


def test_declared_definitions_are_mounted_into_the_orchestrator_only():
    docs = rendered_set("all-on")
    declared = load_values("all-on.yaml")["saga"]["definitions"]
    (config,) = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"] == f"{RELEASE}-orderly-saga"]
    assert config["data"] == declared
    orchestrator = deployment(docs, "orchestrator")
    env = env_of(orchestrator)
    assert env["ORDERLY_SAGA_DEFINITIONS"] == ",".join(f"{SAGA_DIR}/{f}" for f in sorted(declared))
    assert env["ORDERLY_PARTICIPANTS"] == "shipping=http://shipping.shop:50060"
    spec = orchestrator["spec"]["template"]["spec"]
    (mount,) = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "saga"]
    assert (mount["mountPath"], mount["readOnly"]) == (SAGA_DIR, True)
    (volume,) = [v for v in spec["volumes"] if v["name"] == "saga"]
    assert volume["configMap"]["name"] == config["metadata"]["name"]
    assert "checksum/saga" in orchestrator["spec"]["template"]["metadata"]["annotations"]
    for other in ("order", "inventory", "payment", "notification", "query"):
        assert "ORDERLY_SAGA_DEFINITIONS" not in env_of(deployment(rendered_set("all-on"), other))


def test_without_definitions_the_shipped_saga_runs():
    docs = rendered_set("defaults")
    assert not [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"].endswith("-saga")]
    env = env_of(deployment(docs, "orchestrator"))
    assert "ORDERLY_SAGA_DEFINITIONS" not in env and "ORDERLY_PARTICIPANTS" not in env


def test_the_binary_accepts_the_declared_definitions(tmp_path):
    declared = load_values("all-on.yaml")["saga"]["definitions"]
    files = []
    for name, text in sorted(declared.items()):
        (tmp_path / name).write_text(text)
        files.append(str(tmp_path / name))
    binary = str(find_binary())
    checked = subprocess.run([binary, "saga", *files], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    assert "book_shipment by shipping" in checked.stdout
    # And it refuses a broken one, naming the step and the rule.
    broken = tmp_path / "broken.toml"
    broken.write_text(declared["order-v2.toml"].replace('starts_on = "PaymentAuthorized"', 'starts_on = "Nope"'))
    refused = subprocess.run([binary, "saga", str(broken)], capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0
    assert "step book_shipment" in refused.stderr and "chain is broken" in refused.stderr, refused.stderr

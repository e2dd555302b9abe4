"""order and orchestrator reach inventory and payment at this release's own Services, inventory
and payment reach the orchestrator (before undoing a step), and the NetworkPolicies allow exactly
those calls. Who calls whom comes from the binary: a component
calls X when `orderly <component> --help` lists ORDERLY_X_ENDPOINT."""

from __future__ import annotations

import re

import helm_python as helm
import pytest

from conftest import (
    COMPONENTS, REQUIRED, accepted_env, headless_services, load_values, manifests, of_kind, render,
)

# Another release name, other ports and egress on: nothing may be hard-coded to the defaults.
MOVED = {
    **REQUIRED,
    "fullnameOverride": "acme",
    "services": {"inventory": {"port": 6052}, "payment": {"port": 6053}, "order": {"port": 6051}},
    "networkPolicy": {"enabled": True, "egress": {"enabled": True}},
}
VALUE_SETS = {
    "defaults": lambda: dict(REQUIRED),
    "all-on": lambda: load_values("all-on.yaml"),
    "production-example": lambda: load_values("production-values.yaml"),
    "moved": lambda: MOVED,
}


def calls() -> dict[str, set[str]]:
    """caller -> the components it calls, from each component's --help."""
    out = {}
    for component in COMPONENTS:
        found = {m.group(1).lower() for v in accepted_env(component)
                 if (m := re.fullmatch(r"ORDERLY_([A-Z]+)_ENDPOINT", v))}
        if found:
            out[component] = found
    return out


def test_the_binary_says_who_calls_whom():
    """Guards the --help parsing: an empty map would make the checks below vacuous."""
    assert calls() == {
        "order": {"inventory", "payment"},
        "orchestrator": {"inventory", "payment"},
        "inventory": {"orchestrator"},
        "payment": {"orchestrator"},
    }


def _component(doc) -> str:
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


def _grpc_port(container) -> int:
    return next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")


@pytest.fixture(params=sorted(VALUE_SETS))
def docs(request):
    return manifests(render(VALUE_SETS[request.param]()))


POLICY_SETS = {
    "defaults": VALUE_SETS["defaults"],  # NetworkPolicies are on by default
    "all-on": VALUE_SETS["all-on"],
    "production-example": VALUE_SETS["production-example"],
    "moved": VALUE_SETS["moved"],
}


@pytest.fixture(params=sorted(POLICY_SETS))
def policy_docs(request):
    return manifests(render(POLICY_SETS[request.param]()))


def test_callers_get_their_callees_service_urls(docs):
    services = {_component(s): s for s in headless_services(docs)}
    deployments = {_component(d): d for d in of_kind(docs, "Deployment")}
    assert set(services) == set(deployments) == set(COMPONENTS)
    for caller, d in deployments.items():
        (c,) = d["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in c["env"]}
        got = {n: e.get("value") for n, e in env.items() if re.fullmatch(r"ORDERLY_[A-Z]+_ENDPOINT", n)}
        want = {}
        for callee in calls().get(caller, ()):
            svc = services[callee]
            (port,) = [p for p in svc["spec"]["ports"] if p["name"] == "grpc"]
            # Every pod of the callee, resolved again and again: calls are balanced per request.
            want[f"ORDERLY_{callee.upper()}_ENDPOINT"] = f"dns:///{svc['metadata']['name']}:{port['port']}"
            # ...and that Service really lists the callee's pods and leads to their gRPC port.
            assert svc["spec"]["clusterIP"] == "None", callee
            assert len(svc["metadata"]["name"]) <= 63, callee
            pod = deployments[callee]["spec"]["template"]
            assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items(), callee
            assert port["targetPort"] == "grpc", callee
        assert got == want, f"{caller}: endpoints {got}, expected {want}"
        if want:
            assert int(env["ORDERLY_DEPENDENCY_TIMEOUT_MS"]["value"]) >= 1, caller


def test_network_policies_allow_exactly_those_calls(policy_docs):
    docs = policy_docs
    policies = {_component(p): p["spec"] for p in of_kind(docs, "NetworkPolicy")}
    assert set(policies) == set(COMPONENTS)
    deployments = {_component(d): d for d in of_kind(docs, "Deployment")}
    pod_labels = {n: d["spec"]["template"]["metadata"]["labels"] for n, d in deployments.items()}
    ports = {n: _grpc_port(d["spec"]["template"]["spec"]["containers"][0]) for n, d in deployments.items()}
    called_by = {n: {caller for caller, callees in calls().items() if n in callees} for n in COMPONENTS}

    def components(peers) -> set[str]:
        """The chart's own components a list of peers selects (by pod labels)."""
        hit = set()
        for p in peers or []:
            sel = p.get("podSelector", {}).get("matchLabels")
            if sel is None or "namespaceSelector" in p:
                continue  # extraIngressFrom, dnsTo and egress.rules: not component pods
            hit |= {n for n, labels in pod_labels.items() if sel.items() <= labels.items()}
        return hit

    for name, spec in policies.items():
        grpc_rules = [r for r in spec["ingress"] if r["ports"][0]["port"] == "grpc"]
        if called_by[name]:
            (rule,) = grpc_rules
            assert "from" in rule, f"{name} is called by {called_by[name]} yet open to every pod"
            assert components(rule["from"]) == called_by[name], name
        else:  # client-facing: no component is singled out
            assert not any(components(r.get("from")) for r in grpc_rules), name
        if "Egress" in spec["policyTypes"]:
            reached = {}
            for rule in spec["egress"]:
                for n in components(rule.get("to")):
                    reached[n] = {p["port"] for p in rule.get("ports", [])}
            want = {callee: {ports[callee]} for callee in calls().get(name, ())}
            assert reached == want, f"{name} may reach {reached}, it calls {want}"


@pytest.mark.parametrize(
    "values, message",
    [
        ({"services": {"inventory": {"callers": ["orchestrator"]}}},
         "services.inventory.callers must include order"),
        ({"dependencies": {"timeoutMs": 10000}}, "dependencies.timeoutMs must be below grpc.requestTimeoutMs"),
        ({"saga": {"deadlineMs": 2000}}, "saga.deadlineMs must be above dependencies.timeoutMs"),
        ({"notifications": {"file": "/tmp/notifications.jsonl"}}, "put it in a directory of its own"),
    ],
)
def test_settings_that_cannot_work_together_are_refused(values, message):
    with pytest.raises(helm.HelmError, match=re.escape(message)):
        render({**REQUIRED, **values})


def test_notifications_file_is_on_its_own_writable_volume():
    docs = manifests(render(load_values("all-on.yaml")))
    for d in of_kind(docs, "Deployment"):
        spec = d["spec"]["template"]["spec"]
        (c,) = spec["containers"]
        env = {e["name"]: e.get("value") for e in c["env"]}
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        if _component(d) != "notification":
            assert "ORDERLY_NOTIFICATIONS_FILE" not in env and "notifications" not in mounts.values()
            continue
        assert env["ORDERLY_NOTIFICATIONS_FILE"] == "/var/lib/orderly/outbox/sent.jsonl"
        assert mounts["/var/lib/orderly/outbox"] == "notifications"
        (vol,) = [v for v in spec["volumes"] if v["name"] == "notifications"]
        assert vol["emptyDir"]["sizeLimit"] == "1Gi"

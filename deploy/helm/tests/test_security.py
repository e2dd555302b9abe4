"""No secret value is rendered; every container is non-root, read-only, capability-free,
probed over gRPC and has resources; shutdown timing holds together; NetworkPolicies are on by
default, each component reachable only by its callers, the metrics port only by the peers
configured for it."""

from __future__ import annotations

from conftest import (
    COMPONENTS, GOOD_VALUES, REQUIRED, chart, ingress_to, load_values, manifests, network_policies, of_kind,
    pod_specs, registry_ports, render, rendered_set, services, settings_configmap,
)

# Env vars that carry credentials (test_drift also derives these from the binary's --help).
# The webhook URL is not hidden by the binary, but URLs often carry tokens; OTLP headers too.
SECRET_ENV = {"ORDERLY_DATABASE_URL", "ORDERLY_KAFKA_SASL_PASSWORD", "ORDERLY_NOTIFICATIONS_WEBHOOK",
              "OTEL_EXPORTER_OTLP_HEADERS"}


def test_nothing_secret_is_rendered(good):
    name, docs = good
    assert not of_kind(docs, "Secret"), "the chart must only reference Secrets, never create them"
    for cm in of_kind(docs, "ConfigMap"):
        assert not SECRET_ENV & set(cm["data"]), f"secret settings in ConfigMap {cm['metadata']['name']}"
    seen = set()
    for where, spec in pod_specs(docs):
        for c in spec["containers"]:
            for env in c.get("env", []):
                if env["name"] in SECRET_ENV:
                    seen.add(env["name"])
                    assert "value" not in env, f"{where}: {env['name']} has a literal value"
                    assert set(env["valueFrom"]) == {"secretKeyRef"}, f"{where}: {env['name']}"
    assert "ORDERLY_DATABASE_URL" in seen


def test_every_container_is_locked_down(good):
    name, docs = good
    specs = pod_specs(docs)
    assert len(specs) >= len(COMPONENTS)
    for where, spec in specs:
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] != 0, where
        assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec["automountServiceAccountToken"] is False, where
        assert spec["enableServiceLinks"] is False, f"{where}: service links pollute ORDERLY_* env"
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], where
            res = c["resources"]
            assert res["requests"]["cpu"] and res["requests"]["memory"], where
            assert res["limits"]["memory"], where
            mounts = {m["mountPath"] for m in c["volumeMounts"]}
            assert "/tmp" in mounts, f"{where}: a read-only root needs a writable /tmp"


def test_probes_use_grpc_health_on_the_served_port(good):
    """The gRPC port, or with TLS (which the kubelet's probes cannot speak) the plaintext
    health port the binary serves beside it."""
    name, docs = good
    for d in of_kind(docs, "Deployment"):
        (c,) = d["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in c["env"]}
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert env["ORDERLY_LISTEN_ADDR"] == f"0.0.0.0:{ports['grpc']}", "the server must listen where it is called"
        probed = ports["grpc"]
        if "ORDERLY_TLS_CERT" in env:
            probed = ports["health"]
            assert env["ORDERLY_HEALTH_LISTEN_ADDR"] == f"0.0.0.0:{probed}", "health must listen where it is probed"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["grpc"]["port"] == probed, f"{d['metadata']['name']} {probe}"
            assert c[probe]["grpc"].get("service", "") == ""  # overall health


def test_termination_outlasts_the_drain(good):
    name, docs = good
    cm = settings_configmap(docs)
    grace = int(cm["data"]["ORDERLY_SHUTDOWN_GRACE_SECS"])
    for d in of_kind(docs, "Deployment"):
        spec = d["spec"]["template"]["spec"]
        (c,) = spec["containers"]
        sleep = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        assert spec["terminationGracePeriodSeconds"] > sleep + grace, d["metadata"]["name"]


def test_default_ports_match_the_binary():
    ports = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d["spec"]["ports"][0]["port"]
             for d in services(rendered_set("defaults"))}
    assert ports == {"order": 50051, "inventory": 50052, "payment": 50053,
                     "notification": 50054, "orchestrator": 50055, "query": 50056}
    assert ports == registry_ports(), "services.<name>.port differs from `orderly components`"


def _policies(values) -> dict[str, dict]:
    return network_policies(manifests(render(values)))


def _grpc_sources(spec) -> list:
    """The `from` peers of the gRPC rule; None means any source."""
    rules = ingress_to(spec, "grpc")
    if not rules:
        return []
    (rule,) = rules
    return rule.get("from")


def test_each_component_takes_calls_only_from_its_callers():
    pols = _policies(load_values("all-on.yaml"))
    assert set(pols) == set(COMPONENTS)
    ops = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ops"}}}
    for callee in ("payment", "inventory"):
        peers = _grpc_sources(pols[callee])
        assert peers is not None, f"{callee} is open to every pod"
        callers = sorted(p["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
                         for p in peers if "podSelector" in p)
        assert callers == ["orchestrator", "order"]
        assert ops in peers
    for caller in ("order", "orchestrator"):
        egress_ports = {r["ports"][0]["port"] for r in pols[caller]["egress"] if "to" in r}
        assert {50052, 50053} <= egress_ports, f"{caller} cannot reach its callees"
    peers = _grpc_sources(pols["orchestrator"])
    assert peers is not None, "the orchestrator is open to every pod"
    callers = sorted(p["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
                     for p in peers if "podSelector" in p)
    assert callers == ["inventory", "payment"]
    for participant in ("inventory", "payment"):
        egress_ports = {r["ports"][0]["port"] for r in pols[participant]["egress"] if "to" in r}
        assert 50055 in egress_ports, f"{participant} cannot ask the orchestrator"
    assert all(any(p["port"] == 53 for r in s["egress"] for p in r["ports"]) for s in pols.values())


METRICS_PORT = [{"port": "metrics", "protocol": "TCP"}]
MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}


def test_closed_client_facing_components_admit_only_extra_sources():
    values = {**REQUIRED, "networkPolicy": {"allowAllToClientFacing": False},
              "metrics": {"enabled": False}}
    pols = _policies(values)
    assert pols["order"]["ingress"] == [], "no peers means no ingress, never an open rule"
    # With metrics on (the default), the metrics port, from the monitoring namespace, is the only way in.
    with_metrics = _policies({**values, "metrics": {"enabled": True}})["order"]["ingress"]
    assert with_metrics == [{"ports": METRICS_PORT, "from": [MONITORING]}]
    values["networkPolicy"]["extraIngressFrom"] = [{"podSelector": {"matchLabels": {"app": "gw"}}}]
    assert _grpc_sources(_policies(values)["order"]) == [{"podSelector": {"matchLabels": {"app": "gw"}}}]
    assert "Egress" not in pols["order"]["policyTypes"], "egress stays open unless asked"


def test_network_policies_are_on_by_default():
    assert chart().values["networkPolicy"]["enabled"] is True
    assert set(network_policies(rendered_set("defaults"))) == set(COMPONENTS)


def test_network_policies_can_be_turned_off():
    assert not of_kind(manifests(render({**REQUIRED, "networkPolicy": {"enabled": False}})), "NetworkPolicy")
    assert not of_kind(rendered_set("minimal"), "NetworkPolicy")


def test_metrics_port_admits_the_monitoring_namespace_by_default():
    assert chart().values["networkPolicy"]["metricsFrom"] == [MONITORING]
    pols = network_policies(rendered_set("defaults"))
    for component, spec in pols.items():
        assert ingress_to(spec, "metrics") == [{"ports": METRICS_PORT, "from": [MONITORING]}], component


def test_metrics_port_admits_the_configured_peers_and_no_other():
    """Only metricsFrom reaches the metrics port, and metricsFrom reaches nothing else: gRPC
    peers (callers, extraIngressFrom, anyone for client-facing) are not let in on it."""
    prometheus = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}},
                  "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    ops = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ops"}}}
    pols = _policies({**REQUIRED, "networkPolicy": {"metricsFrom": [prometheus], "extraIngressFrom": [ops]}})
    assert set(pols) == set(COMPONENTS)
    for component, spec in pols.items():
        (rule,) = ingress_to(spec, "metrics")
        assert rule == {"ports": METRICS_PORT, "from": [prometheus]}, component
        for other in spec["ingress"]:
            if other is not rule:
                assert other["ports"] == [{"port": "grpc", "protocol": "TCP"}], component
                assert prometheus not in other.get("from", []), component


def test_no_metrics_peers_admit_no_pod_to_the_metrics_port():
    """[] means nobody: never a rule without `from`, which would admit every pod."""
    pols = _policies({**REQUIRED, "networkPolicy": {"metricsFrom": []}})
    for component, spec in pols.items():
        assert not ingress_to(spec, "metrics"), component
    closed = {**REQUIRED, "networkPolicy": {"metricsFrom": [], "allowAllToClientFacing": False}}
    assert _policies(closed)["order"]["ingress"] == []


def test_only_client_facing_grpc_is_open_to_every_pod(good):
    """A rule without `from` admits every pod: only the gRPC port of a component with no callers
    (allowAllToClientFacing) may have one; never metrics, never a called component."""
    name, docs = good
    overrides = GOOD_VALUES[name]().get("services", {})
    client_facing = {component for component, svc in chart().values["services"].items()
                     if not overrides.get(component, {}).get("callers", svc["callers"])}
    assert client_facing == {"order", "notification", "query"}
    for component, spec in network_policies(docs).items():
        for rule in spec["ingress"]:
            if "from" in rule:
                assert rule["from"], f"{name}: {component} has an empty from"
                continue
            assert rule["ports"] == [{"port": "grpc", "protocol": "TCP"}], f"{name}: {component}"
            assert component in client_facing, f"{name}: {component} is open to every pod"


def _container_env(docs) -> dict[str, dict[str, dict]]:
    """component -> {env name: env entry} of its Deployment's container."""
    out = {}
    for d in of_kind(docs, "Deployment"):
        (c,) = d["spec"]["template"]["spec"]["containers"]
        out[d["metadata"]["labels"]["app.kubernetes.io/component"]] = {e["name"]: e for e in c["env"]}
    return out


def test_webhook_url_comes_only_from_a_secret_and_only_to_notification():
    docs = rendered_set("webhook")
    env = _container_env(docs)
    assert set(env) == set(COMPONENTS)
    for component, e in env.items():
        if component != "notification":
            assert "ORDERLY_NOTIFICATIONS_WEBHOOK" not in e, component
            continue
        hook = e["ORDERLY_NOTIFICATIONS_WEBHOOK"]
        assert hook["valueFrom"] == {"secretKeyRef": {"name": "orderly-notify", "key": "webhook-url"}}
        assert "value" not in hook
        # The webhook replaces the file: no file setting, no file volume.
        assert "ORDERLY_NOTIFICATIONS_FILE" not in e
    for where, spec in pod_specs(docs):
        assert "notifications" not in {v["name"] for v in spec["volumes"]}, where
        for c in spec["containers"]:
            assert "ORDERLY_NOTIFICATIONS_WEBHOOK" not in str(c.get("envFrom", [])), where
    cm = settings_configmap(docs)
    assert not any("WEBHOOK" in k for k in cm["data"]), "the webhook in the shared ConfigMap"


def test_without_a_webhook_notifications_go_to_the_file(good):
    name, docs = good
    if name == "webhook":
        return
    for component, e in _container_env(docs).items():
        assert "ORDERLY_NOTIFICATIONS_WEBHOOK" not in e, f"{name}: {component}"
        assert ("ORDERLY_NOTIFICATIONS_FILE" in e) == (component == "notification"), f"{name}: {component}"
    for where, spec in pod_specs(docs):
        has_volume = "notifications" in {v["name"] for v in spec["volumes"]}
        assert has_volume == where.endswith("-notification"), f"{name}: {where}"


def test_only_notification_may_reach_the_webhook():
    pols = _policies(load_values("webhook.yaml"))
    hook_peer = {"ipBlock": {"cidr": "10.40.0.0/24"}}
    for component, spec in pols.items():
        to_hook = [r for r in spec["egress"] if hook_peer in r.get("to", [])]
        if component != "notification":
            assert not to_hook, f"{component} may reach the webhook"
            continue
        (rule,) = to_hook
        assert rule == {"to": [hook_peer], "ports": [{"port": 8080, "protocol": "TCP"}]}
    # Without egress restrictions there is nothing to open.
    values = {**load_values("webhook.yaml"), "networkPolicy": {"enabled": True}}
    assert "egress" not in _policies(values)["notification"]

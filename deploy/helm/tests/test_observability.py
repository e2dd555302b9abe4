"""Metrics, traces and stuck-pod health: the settings reach every component with the values
the binary expects, the ports line up from container to Service to ServiceMonitor and
NetworkPolicy, secrets stay in Secrets, and bad values are refused."""

from __future__ import annotations

import re

import helm_python as helm
import pytest

from conftest import (
    COMPONENTS, NAMESPACE, RELEASE, REQUIRED, accepted_env, chart, help_text, ingress_to,
    load_values, manifests, network_policies, of_kind, render, rendered_set, services,
    settings_configmap,
)

OTEL_FROM_VALUES = {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
                    "OTEL_EXPORTER_OTLP_HEADERS"}


def _component(doc) -> str:
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


def component_env(docs) -> dict[str, dict[str, dict]]:
    """component -> {name: env entry} as its container sees it (ConfigMap, then env wins)."""
    configmaps = {cm["metadata"]["name"]: cm.get("data", {}) for cm in of_kind(docs, "ConfigMap")}
    out = {}
    for d in of_kind(docs, "Deployment"):
        (c,) = d["spec"]["template"]["spec"]["containers"]
        env = {}
        for src in c.get("envFrom", []):
            env.update({k: {"name": k, "value": v} for k, v in configmaps[src["configMapRef"]["name"]].items()})
        env.update({e["name"]: e for e in c.get("env", [])})
        out[_component(d)] = env
    return out


def _value(env: dict, name: str) -> str | None:
    return env[name].get("value") if name in env else None


# --- metrics ------------------------------------------------------------------------------

@pytest.mark.parametrize("name, port", [("defaults", 9464), ("all-on", 9100), ("production-example", 9464)])
def test_metrics_port_lines_up_from_process_to_service(name, port):
    docs = rendered_set(name)
    by_component = {_component(s): s for s in services(docs)}
    for d in of_kind(docs, "Deployment"):
        component = _component(d)
        (c,) = d["spec"]["template"]["spec"]["containers"]
        env = component_env(docs)[component]
        assert _value(env, "ORDERLY_METRICS_ADDR") == f"0.0.0.0:{port}", component
        (cport,) = [p for p in c["ports"] if p["name"] == "metrics"]
        assert cport["containerPort"] == port, component
        (sport,) = [p for p in by_component[component]["spec"]["ports"] if p["name"] == "metrics"]
        assert sport == {"name": "metrics", "port": port, "targetPort": "metrics", "protocol": "TCP"}


def test_metrics_off_means_nothing_listens():
    docs = manifests(render({**REQUIRED, "metrics": {"enabled": False},
                             "networkPolicy": {"enabled": True}}))
    for component, env in component_env(docs).items():
        assert _value(env, "ORDERLY_METRICS_ADDR") == "off", component
    for d in of_kind(docs, "Deployment"):
        (c,) = d["spec"]["template"]["spec"]["containers"]
        assert [p["name"] for p in c["ports"]] == ["grpc"]
    for s in services(docs):
        assert [p["name"] for p in s["spec"]["ports"]] == ["grpc"]
    for p in of_kind(docs, "NetworkPolicy"):
        assert all(port["port"] != "metrics" for r in p["spec"]["ingress"] for port in r["ports"])
    assert not of_kind(docs, "ServiceMonitor")
    # The minimal example says the same.
    assert all(_value(e, "ORDERLY_METRICS_ADDR") == "off" for e in component_env(rendered_set("minimal")).values())


def test_service_monitor_scrapes_the_metrics_port_of_every_component():
    docs = rendered_set("all-on")
    (sm,) = of_kind(docs, "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"  # where the binary serves them
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    selected = [s for s in services(docs)
                if sm["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    assert sorted(_component(s) for s in selected) == sorted(COMPONENTS)
    assert all(any(p["name"] == "metrics" for p in s["spec"]["ports"]) for s in selected)
    assert not of_kind(rendered_set("defaults"), "ServiceMonitor"), "needs the operator's CRD: opt-in"


def test_network_policy_admits_scrapes_from_the_configured_peers_only():
    scrapers = load_values("all-on.yaml")["networkPolicy"]["metricsFrom"]
    policies = network_policies(rendered_set("all-on"))
    assert set(policies) == set(COMPONENTS)
    for component, spec in policies.items():
        (rule,) = ingress_to(spec, "metrics")
        assert rule == {"ports": [{"port": "metrics", "protocol": "TCP"}], "from": scrapers}, component


def test_metrics_path_is_the_binarys():
    assert "(`/metrics`)" in help_text()
    with pytest.raises(helm.HelmValuesError, match="/metrics/path"):
        chart().validate_schema({**REQUIRED, "metrics": {"path": "/stats"}})


# --- tracing -------------------------------------------------------------------------------

def test_no_tracing_settings_by_default():
    for component, env in component_env(rendered_set("defaults")).items():
        assert not {n for n in env if n.startswith("OTEL_")}, component


def test_tracing_settings_reach_every_component():
    docs = rendered_set("all-on")
    envs = component_env(docs)
    assert set(envs) == set(COMPONENTS)
    for component, env in envs.items():
        assert _value(env, "OTEL_EXPORTER_OTLP_ENDPOINT") == "http://otel-collector.observability:4317"
        assert _value(env, "OTEL_TRACES_SAMPLER") == "parentbased_traceidratio"
        assert _value(env, "OTEL_TRACES_SAMPLER_ARG") == "0.1"
        headers = env["OTEL_EXPORTER_OTLP_HEADERS"]
        assert headers == {"name": "OTEL_EXPORTER_OTLP_HEADERS",
                           "valueFrom": {"secretKeyRef": {"name": "otel", "key": "otlp-headers"}}}
        assert _value(env, "OTEL_BSP_SCHEDULE_DELAY") == "2000"  # extraEnv still reaches it
    cm = settings_configmap(docs)
    assert "OTEL_EXPORTER_OTLP_HEADERS" not in cm["data"], "headers in the shared ConfigMap"


def test_the_binary_names_the_services():
    """service.name is per component and set by the binary: the chart never sets it."""
    for name in ("defaults", "all-on", "production-example"):
        docs = rendered_set(name)
        for component, env in component_env(docs).items():
            assert "OTEL_SERVICE_NAME" not in env, f"{name}: {component}"
        assert "OTEL_SERVICE_NAME" not in str(docs)
    with pytest.raises(helm.HelmError, match="drop OTEL_SERVICE_NAME"):
        render({**REQUIRED, "extraEnv": [{"name": "OTEL_SERVICE_NAME", "value": "orderly"}]})


def test_tracing_headers_only_from_a_secret_and_only_once():
    values = {**REQUIRED, "tracing": {"otlpEndpoint": "http://c:4317", "headers": {"existingSecret": "otel"}}}
    for component, env in component_env(manifests(render(values))).items():
        assert env["OTEL_EXPORTER_OTLP_HEADERS"]["valueFrom"] == {
            "secretKeyRef": {"name": "otel", "key": "headers"}}, component
    twice = {**values, "extraEnv": [{"name": "OTEL_EXPORTER_OTLP_HEADERS", "value": "x=y"}]}
    with pytest.raises(helm.HelmError, match="set from tracing.headers already"):
        render(twice)


def test_endpoint_credentials_are_refused_without_repeating_them():
    with pytest.raises(helm.HelmError, match="no credentials in the URL") as err:
        render({**REQUIRED, "tracing": {"otlpEndpoint": "http://u:S3NTINEL@otel:4317"}})
    assert "S3NTINEL" not in str(err.value)


def test_sampler_arg_needs_a_ratio_sampler():
    with pytest.raises(helm.HelmError, match="tracing.samplerArg is only read by the traceidratio"):
        render({**REQUIRED, "tracing": {"sampler": "always_on", "samplerArg": 0.5}})
    env = component_env(manifests(render({**REQUIRED, "tracing": {"sampler": "traceidratio", "samplerArg": 0}})))
    assert _value(env["order"], "OTEL_TRACES_SAMPLER_ARG") == "0", "0 is a ratio, not unset"
    quoted = {**REQUIRED, "tracing": {"sampler": "traceidratio", "samplerArg": "0.05"}}
    chart().validate_schema(quoted)
    assert _value(component_env(manifests(render(quoted)))["order"], "OTEL_TRACES_SAMPLER_ARG") == "0.05"


def test_collector_egress_in_the_production_example():
    """Egress is locked down there: the collector must be one of the allowed destinations."""
    values = load_values("production-values.yaml")
    assert values["tracing"]["otlpEndpoint"] and values["networkPolicy"]["egress"]["enabled"]
    port = int(values["tracing"]["otlpEndpoint"].rsplit(":", 1)[1])
    assert any(p["port"] == port for r in values["networkPolicy"]["egress"]["rules"] for p in r["ports"])


# --- stuck-pod health ------------------------------------------------------------------------

@pytest.mark.parametrize("name, ms", [("defaults", "60000"), ("all-on", "120000")])
def test_stuck_after_reaches_every_component(name, ms):
    envs = component_env(rendered_set(name))
    assert {c: _value(e, "ORDERLY_STUCK_AFTER_MS") for c, e in envs.items()} == {c: ms for c in COMPONENTS}


def _window(probe) -> int:
    return probe["periodSeconds"] * probe["failureThreshold"]


def test_probes_suit_stuck_detection(good):
    """A stuck pod leaves its Service before liveness restarts it; a normal start has the
    startup probe's budget (liveness and readiness wait for it) rather than liveness'."""
    name, docs = good
    for d in of_kind(docs, "Deployment"):
        (c,) = d["spec"]["template"]["spec"]["containers"]
        start, ready, live = c["startupProbe"], c["readinessProbe"], c["livenessProbe"]
        assert _window(start) >= 60, "room for topic creation, migrations' tail and a group join"
        assert _window(start) >= _window(live)
        assert _window(ready) < _window(live), "restarted before taken out of the Service"
        for probe in (ready, live):
            assert probe["timeoutSeconds"] < probe["periodSeconds"]


def test_chart_defaults_are_the_binarys():
    m = re.search(r"ORDERLY_METRICS_ADDR=\] \[default: [0-9.]+:([0-9]+)\]", help_text("order"))
    assert m, "no metrics address default in `orderly order --help`"
    values = chart().values
    assert values["metrics"]["port"] == int(m.group(1))
    m = re.search(r"ORDERLY_STUCK_AFTER_MS=\] \[default: ([0-9]+)\]", help_text("order"))
    assert m and values["health"]["stuckAfterMs"] == int(m.group(1))


def test_new_settings_are_flags_of_every_component():
    """ORDERLY_METRICS_ADDR is a global flag, so each subcommand's --help lists it too."""
    assert "ORDERLY_METRICS_ADDR" in accepted_env()
    for component in COMPONENTS:
        assert {"ORDERLY_METRICS_ADDR", "ORDERLY_STUCK_AFTER_MS"} <= set(accepted_env(component)), component


# --- guards and the schema -----------------------------------------------------------------

def test_metrics_port_cannot_be_a_grpc_port():
    with pytest.raises(helm.HelmError, match="metrics.port 50053 is services.payment.port too"):
        render({**REQUIRED, "metrics": {"port": 50053}})
    render({**REQUIRED, "metrics": {"enabled": False, "port": 50053}})  # unused then


BAD = {
    # name: (values, fragments of the error)
    "metrics-port-zero": ({"metrics": {"port": 0}}, ["/metrics/port", "minimum"]),
    "metrics-port-too-big": ({"metrics": {"port": 70000}}, ["/metrics/port", "maximum"]),
    "metrics-port-string": ({"metrics": {"port": "9464"}}, ["/metrics/port", "want integer"]),
    "endpoint-without-scheme": ({"tracing": {"otlpEndpoint": "otel-collector:4317"}},
                                ["/tracing/otlpEndpoint", "does not match pattern"]),
    "endpoint-grpc-scheme": ({"tracing": {"otlpEndpoint": "grpc://otel:4317"}}, ["/tracing/otlpEndpoint"]),
    # The exporter speaks plain gRPC: a TLS endpoint would drop every span without a word.
    "endpoint-tls": ({"tracing": {"otlpEndpoint": "https://otel:443"}}, ["/tracing/otlpEndpoint"]),
    "sampler-unknown": ({"tracing": {"sampler": "ratio"}}, ["/tracing/sampler"]),
    "sampler-arg-above-one": ({"tracing": {"sampler": "traceidratio", "samplerArg": 1.5}},
                              ["/tracing/samplerArg", "want 1"]),
    "sampler-arg-word": ({"tracing": {"sampler": "traceidratio", "samplerArg": "half"}},
                         ["/tracing/samplerArg"]),
    "headers-inline": ({"tracing": {"headers": "authorization=Bearer S3NTINEL"}},
                       ["/tracing/headers", "got string, want object"]),
    "headers-value": ({"tracing": {"headers": {"value": "authorization=Bearer S3NTINEL"}}},
                      ["/tracing/headers", "'value' not allowed"]),
    "service-name": ({"tracing": {"serviceName": "orderly"}}, ["/tracing", "'serviceName' not allowed"]),
    "stuck-too-short": ({"health": {"stuckAfterMs": 500}}, ["/health/stuckAfterMs", "minimum"]),
    "stuck-typo": ({"health": {"stuckAfterSecs": 60}}, ["/health", "'stuckAfterSecs' not allowed"]),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_observability_values_are_rejected_clearly(name):
    overrides, fragments = BAD[name]
    values = {**REQUIRED, **overrides}
    with pytest.raises(helm.HelmValuesError) as schema_err:
        chart().validate_schema(values)
    with pytest.raises(helm.HelmError) as install_err:  # the path `helm install` takes
        cfg = helm.Config(storage_driver="memory", namespace=NAMESPACE)
        try:
            cfg.install(chart(), RELEASE, values, dry_run="client", namespace=NAMESPACE)
        finally:
            cfg.close()
    for err in (schema_err, install_err):
        message = str(err.value)
        for fragment in fragments:
            assert fragment in message, f"{fragment!r} not in: {message}"
        assert "S3NTINEL" not in message, "an error message echoed a secret value"


@pytest.mark.parametrize("endpoint", ["", "http://otel-collector.observability:4317",
                                      "http://otel.example.com:4317/", "http://10.0.0.7:4317"])
def test_good_endpoints_pass(endpoint):
    chart().validate_schema({**REQUIRED, "tracing": {"otlpEndpoint": endpoint}})

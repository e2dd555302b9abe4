"""Helm's own code lints, renders and dry-run installs the chart; bad values are
rejected with a message that names the problem."""

from __future__ import annotations

import copy

import helm_python as helm
import pytest
import yaml

from conftest import (
    CHART_DIR, COMPONENTS, GOOD_VALUES, NAMESPACE, RELEASE, REQUIRED, chart, load_values,
    headless_services, manifests, of_kind, render, rendered_set, services, settings_configmap,
)


@pytest.mark.parametrize("kube", ["v1.30.0", None])  # the chart's floor, and Helm's default
@pytest.mark.parametrize("name", sorted(GOOD_VALUES))
def test_lint_is_clean(name, kube):
    report = helm.lint(str(CHART_DIR), GOOD_VALUES[name](), strict=True, namespace=NAMESPACE,
                       kube_version=kube)
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # warnings and errors
    # "icon is recommended" is info (severity 1): an internal chart has no icon to show.
    assert report["total_charts_linted"] == 1
    assert not problems and not report["errors"], problems or report["errors"]


@pytest.mark.parametrize("name", sorted(GOOD_VALUES))
def test_renders_every_component(name):
    docs = rendered_set(name)
    for kind, found in [("Deployment", of_kind(docs, "Deployment")), ("Service", services(docs)),
                        ("headless Service", headless_services(docs))]:
        got = sorted(d["metadata"]["labels"]["app.kubernetes.io/component"] for d in found)
        assert got == sorted(COMPONENTS), f"{kind}s rendered for {got}"
    # The shared settings, and the saga's definitions where the values declare them.
    saga = 1 if GOOD_VALUES[name]().get("saga", {}).get("definitions") else 0
    assert len(of_kind(docs, "ConfigMap")) == 1 + saga


def test_optional_parts_follow_their_switches():
    kinds = lambda name: sorted({d["kind"] for d in rendered_set(name)})
    assert kinds("all-on") == [
        "Certificate", "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Job", "NetworkPolicy",
        "PodDisruptionBudget", "Service", "ServiceMonitor",
    ]  # serviceAccount.create is false there: an existing account is used
    assert kinds("minimal") == ["ConfigMap", "Deployment", "Service", "ServiceAccount"]
    assert kinds("defaults") == ["ConfigMap", "Deployment", "Job", "NetworkPolicy", "PodDisruptionBudget",
                                 "Service", "ServiceAccount"]
    hpas = {d["spec"]["scaleTargetRef"]["name"] for d in of_kind(rendered_set("all-on"), "HorizontalPodAutoscaler")}
    assert hpas == {f"{RELEASE}-orderly-order", f"{RELEASE}-orderly-payment"}
    for d in of_kind(rendered_set("all-on"), "Deployment"):
        scaled = d["metadata"]["name"] in hpas
        assert ("replicas" in d["spec"]) != scaled, "an HPA-managed Deployment must not pin replicas"


def test_migration_hook_runs_before_install_and_upgrade():
    (job,) = of_kind(rendered_set("defaults"), "Job")
    ann = job["metadata"]["annotations"]
    assert ann["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in ann["helm.sh/hook-delete-policy"]
    containers = job["spec"]["template"]["spec"]["containers"]
    assert sorted(c["args"][1] for c in containers) == sorted(COMPONENTS)
    assert all(c["args"][0] == "migrate" for c in containers)


def test_client_side_dry_run_install():
    cfg = helm.Config(storage_driver="memory", namespace=NAMESPACE)
    try:
        release = cfg.install(chart(), RELEASE, load_values("production-values.yaml"),
                              dry_run="client", namespace=NAMESPACE)
    finally:
        cfg.close()
    assert release["status"] == "pending-install"
    docs = [d for d in yaml.safe_load_all(release["manifest"]) if d]
    assert len(of_kind(docs, "Deployment")) == len(COMPONENTS)
    notes = release["notes"]
    for name in COMPONENTS:
        assert f"port-forward svc/{RELEASE}-orderly-{name}" in notes
    assert "grpcurl -plaintext localhost:50051 grpc.health.v1.Health/Check" in notes
    assert "created by each component at start-up" in notes


BAD = {
    # file: fragments the error must contain (the offending key, and why)
    "bad-typo.yaml": ["/kafka", "'securityProtocl' not allowed"],
    "bad-type.yaml": ["/services/order/replicas", "got string, want integer"],
    "bad-missing-kafka.yaml": ["/kafka", "missing property 'bootstrapServers'"],
    "bad-enum.yaml": ["/kafka/securityProtocol", "'sasl-ssl'"],
    "bad-sasl-without-secret.yaml": ["/kafka/sasl/existingSecret"],
    "bad-inline-password.yaml": ["'password' not allowed", "'url' not allowed"],
    "bad-notifications-file.yaml": ["/notifications/file", "does not match pattern"],
    "bad-webhook-url.yaml": ["/notifications/webhook", "'url' not allowed"],
    "bad-webhook-string.yaml": ["/notifications/webhook", "got string, want object"],
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_values_are_rejected_clearly(name):
    values = load_values(name)
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
        for fragment in BAD[name]:
            assert fragment in message, f"{fragment!r} not in: {message}"
        assert "S3NTINEL" not in message, "an error message echoed a secret value"


def test_template_guards_catch_what_the_schema_cannot():
    both_cas = {"kafka": {**REQUIRED["kafka"], "tls": {"caSecret": "a", "caConfigMap": "b"}}}
    with pytest.raises(helm.HelmError, match="set caSecret or caConfigMap, not both"):
        render(both_cas)
    monitor_without_port = {**REQUIRED, "metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}}
    with pytest.raises(helm.HelmError, match="needs metrics.enabled"):
        render(monitor_without_port)
    webhook_behind_closed_egress = {
        **REQUIRED,
        "notifications": {"webhook": {"existingSecret": "hook"}},
        "networkPolicy": {"enabled": True, "egress": {"enabled": True}},
    }
    with pytest.raises(helm.HelmError, match="notifications.webhook.egress.to"):
        render(webhook_behind_closed_egress)


def test_topic_settings_reach_the_components():
    """Per-topic partitions go out as the TOPIC=N list the binary parses; retention in hours."""
    data = settings_configmap(rendered_set("defaults"))["data"]
    assert data["ORDERLY_KAFKA_PARTITIONS"] == "6"
    assert data["ORDERLY_KAFKA_TOPIC_PARTITIONS"] == "orderly.orders.v1=12"
    assert data["ORDERLY_KAFKA_RETENTION_HOURS"] == "0"
    assert data["ORDERLY_KAFKA_DEAD_LETTER_RETENTION_HOURS"] == "720"
    values = copy.deepcopy(GOOD_VALUES["defaults"]())
    values["kafka"]["topicPartitions"] = {"orderly.sagas.v1": 4, "orderly.orders.v1": 24}
    data = settings_configmap(manifests(render(values)))["data"]
    assert data["ORDERLY_KAFKA_TOPIC_PARTITIONS"] == "orderly.orders.v1=24,orderly.sagas.v1=4"
    values["kafka"]["topicPartitions"] = {"orders v1": 12}  # not a Kafka topic name
    with pytest.raises(helm.HelmValuesError) as err:
        chart().validate_schema(values)
    assert "orders v1" in str(err.value)


def test_default_pools_fit_postgres_and_lanes_divide_partitions():
    """Every default pod's pool, and the listening connection of order and orchestrator pods,
    fit in PostgreSQL's default max_connections (100, of which 3 are kept for superusers): a pod
    turned away does not start. And
    the consumer lanes divide every topic's partitions, so one order's events share a lane."""
    docs = rendered_set("defaults")
    data = settings_configmap(docs)["data"]
    pool = int(data["ORDERLY_DATABASE_MAX_CONNECTIONS"])
    pods = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d["spec"]["replicas"]
        for d in of_kind(docs, "Deployment")
    }
    listening = pods["order"] + pods["orchestrator"]
    assert sum(pods.values()) * pool + listening <= 100 - 3, (pods, pool)
    lanes = int(data["ORDERLY_CONSUMER_LANES"])
    partitions = [int(data["ORDERLY_KAFKA_PARTITIONS"])] + [
        int(entry.split("=")[1]) for entry in data["ORDERLY_KAFKA_TOPIC_PARTITIONS"].split(",")
    ]
    assert all(count % lanes == 0 for count in partitions), (lanes, partitions)

"""gRPC over TLS (tls.*): each component mounts its own Secret in cert-manager's layout and
gets the binary's ORDERLY_TLS_* settings, probes move to the plaintext health port, the
optional cert-manager Certificates carry each component's identity (DNS:orderly-<component>)
into the Secret its pods mount, and settings that cannot work are refused."""

from __future__ import annotations

import copy
import re

import helm_python as helm
import pytest

from conftest import (
    component_of, schema_error, env_values, pods, volume,
    COMPONENTS, GOOD_VALUES, NAMESPACE, RELEASE, REQUIRED, chart, headless_services,
    help_text, install_notes, load_values, manifests, of_kind, render, rendered_set, services,
)

TLS_DIR = "/etc/orderly/tls"
TLS_ENV = {
    "ORDERLY_TLS_CERT": f"{TLS_DIR}/tls.crt",
    "ORDERLY_TLS_KEY": f"{TLS_DIR}/tls.key",
    "ORDERLY_TLS_CA": f"{TLS_DIR}/ca.crt",
}
ISSUER = {"name": "orderly-ca"}
TLS_ON = {**REQUIRED, "tls": {"enabled": True}}
CERT_MANAGER = {**REQUIRED, "tls": {"enabled": True, "certManager": {"enabled": True, "issuerRef": ISSUER}}}


def _uses_tls(name: str) -> bool:
    return bool(GOOD_VALUES[name]().get("tls", {}).get("enabled"))


# --- off by default ---------------------------------------------------------------------------

def test_tls_is_off_by_default():
    assert chart().values["tls"]["enabled"] is False
    assert chart().values["tls"]["certManager"]["enabled"] is False
    assert not _uses_tls("defaults")


def test_without_tls_nothing_of_it_renders(good):
    name, docs = good
    if _uses_tls(name):
        return
    assert not of_kind(docs, "Certificate"), name
    for component, (spec, c) in pods(docs).items():
        where = f"{name}: {component}"
        env = env_values(c)
        assert not [n for n in env if n.startswith("ORDERLY_TLS_")], where
        assert "ORDERLY_HEALTH_LISTEN_ADDR" not in env, where
        assert volume(spec, "tls") is None, where
        assert TLS_DIR not in {m["mountPath"] for m in c["volumeMounts"]}, where
        assert "health" not in {p["name"] for p in c["ports"]}, where
        grpc_port = next(p["containerPort"] for p in c["ports"] if p["name"] == "grpc")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["grpc"]["port"] == grpc_port, f"{where} {probe}"


# --- on: mounts, settings, probes ----------------------------------------------------------------

@pytest.mark.parametrize("values", ["own Secrets", "one existing Secret"])
def test_every_component_mounts_its_own_secret(values):
    """<release>-orderly-<component>-tls unless tls.existingSecrets names another, mounted
    whole (a subPath would never see a renewal) and read-only, with the three keys named."""
    overrides = {"payment": "payment-certs"} if values == "one existing Secret" else {}
    docs = manifests(render({**REQUIRED, "tls": {"enabled": True, "existingSecrets": overrides}}))
    by_component = pods(docs)
    assert set(by_component) == set(COMPONENTS)
    for component, (spec, c) in by_component.items():
        mounted = volume(spec, "tls")
        assert mounted, component
        want = overrides.get(component, f"{RELEASE}-orderly-{component}-tls")
        assert mounted["secret"]["secretName"] == want, component
        assert {i["key"]: i["path"] for i in mounted["secret"]["items"]} == {
            "tls.crt": "tls.crt", "tls.key": "tls.key", "ca.crt": "ca.crt"}, component
        assert mounted["secret"]["defaultMode"] == 0o440, "the key readable by the pod's group only"
        (mount,) = [m for m in c["volumeMounts"] if m["name"] == "tls"]
        assert mount == {"name": "tls", "mountPath": TLS_DIR, "readOnly": True}, component
    assert not of_kind(docs, "Certificate"), "no Certificate without certManager.enabled"


@pytest.mark.parametrize("name, health_port, reload", [("tls-on", 8086, "10"), ("all-on", 8087, "30")])
def test_components_get_the_tls_settings_and_probes_ask_the_health_port(name, health_port, reload):
    docs = manifests(render(TLS_ON)) if name == "tls-on" else rendered_set(name)
    by_component = pods(docs)
    assert set(by_component) == set(COMPONENTS)
    for component, (spec, c) in by_component.items():
        env = env_values(c)
        assert {n: env.get(n) for n in TLS_ENV} == TLS_ENV, component
        assert env["ORDERLY_TLS_RELOAD_SECS"] == reload, component
        # Every file the binary is pointed at is one the Secret mounted projects.
        items = {f"{TLS_DIR}/{i['path']}" for i in volume(spec, "tls")["secret"]["items"]}
        assert set(TLS_ENV.values()) == items, component
        listen = env["ORDERLY_HEALTH_LISTEN_ADDR"]
        assert listen == f"0.0.0.0:{health_port}", component
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports["health"] == health_port == int(listen.rsplit(":", 1)[1]), component
        assert ports["grpc"] != health_port
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            # Still gRPC probes (grpc.health.v1), on the port that speaks plaintext.
            assert c[probe] and set(c[probe]) >= {"grpc"}, f"{component} {probe}"
            assert c[probe]["grpc"]["port"] == health_port, f"{component} {probe}"
    # Only the kubelet asks there: no Service exposes the plaintext health port.
    for s in services(docs) + headless_services(docs):
        assert health_port not in {p["port"] for p in s["spec"]["ports"]}, s["metadata"]["name"]


def test_migrations_get_no_tls():
    """`orderly migrate` serves no gRPC and reads no TLS settings (the drift test holds it to
    its --help); its Job is unchanged by tls."""
    for docs in (manifests(render(TLS_ON)), rendered_set("all-on")):
        (job,) = of_kind(docs, "Job")
        for c in job["spec"]["template"]["spec"]["containers"]:
            assert not [e for e in c["env"] if e["name"].startswith("ORDERLY_TLS_")]


def test_network_policies_are_the_same_with_tls():
    """The probes come from the pod's node, which a NetworkPolicy never blocks (as for the
    gRPC probes of the callers-only components today): no pod is admitted to plaintext health,
    and the gRPC rules do not change with the protocol."""
    plain = {**REQUIRED, "networkPolicy": {"enabled": True, "egress": {"enabled": True}}}
    with_tls = {**plain, "tls": {"enabled": True}}
    policies = lambda v: sorted((of_kind(manifests(render(v)), "NetworkPolicy")),
                                key=lambda p: p["metadata"]["name"])
    assert policies(with_tls) == policies(plain)
    for p in of_kind(rendered_set("all-on"), "NetworkPolicy"):
        ports = {port["port"] for r in p["spec"]["ingress"] for port in r["ports"]}
        assert ports <= {"grpc", "metrics"}, f"{component_of(p)} opens {ports}"


def test_chart_defaults_are_the_binarys():
    m = re.search(r"ORDERLY_TLS_RELOAD_SECS=\] \[default: ([0-9]+)\]", help_text("payment"))
    assert m, "no TLS reload default in `orderly payment --help`"
    assert chart().values["tls"]["reloadSeconds"] == int(m.group(1))


def test_notes_show_grpcurl_over_tls():
    """The install notes' grpcurl commands must work against a TLS-only server."""
    notes = install_notes(TLS_ON)
    assert "-plaintext" not in notes
    assert "grpcurl -cacert ca.crt -authority orderly-order localhost:50051 grpc.health.v1.Health/Check" in notes
    assert f"get secret {RELEASE}-orderly-order-tls" in notes


# --- cert-manager --------------------------------------------------------------------------------

def test_cert_manager_issues_one_certificate_per_component():
    docs = rendered_set("all-on")
    certs = {component_of(c): c for c in of_kind(docs, "Certificate")}
    assert set(certs) == set(COMPONENTS)
    mounted = {component: volume(spec, "tls")["secret"]["secretName"]
               for component, (spec, _) in pods(docs).items()}
    by_component = lambda found: {component_of(s): s["metadata"]["name"] for s in found}
    svc, headless = by_component(services(docs)), by_component(headless_services(docs))
    for component, cert in certs.items():
        assert cert["apiVersion"] == "cert-manager.io/v1"
        spec = cert["spec"]
        names = spec["dnsNames"]
        assert names[0] == f"orderly-{component}", "the identity callers check comes first"
        assert names[1:] == [svc[component], f"{svc[component]}.{NAMESPACE}.svc",
                             headless[component], f"{headless[component]}.{NAMESPACE}.svc"]
        assert {"server auth", "client auth"} <= set(spec["usages"]), "one certificate, both sides"
        assert spec["secretName"] == mounted[component] == f"{RELEASE}-orderly-{component}-tls"
        assert spec["issuerRef"] == {"name": "orderly-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
        assert (spec["duration"], spec["renewBefore"]) == ("720h", "240h")


def test_certificate_defaults():
    (cert, *_) = of_kind(manifests(render(CERT_MANAGER)), "Certificate")
    spec = cert["spec"]
    assert spec["issuerRef"] == {"name": "orderly-ca", "kind": "Issuer", "group": "cert-manager.io"}
    assert (spec["duration"], spec["renewBefore"]) == ("2160h", "360h")
    assert spec["usages"] == ["server auth", "client auth", "digital signature", "key encipherment"]


def test_dns_names_are_not_repeated_when_the_release_is_named_orderly():
    """Release `orderly`: its Services are orderly-<component>, the identity itself."""
    rendered = chart().render(CERT_MANAGER, name="orderly", namespace="orderly", is_install=True)
    certs = of_kind(manifests(rendered), "Certificate")
    assert len(certs) == len(COMPONENTS)
    for cert in certs:
        component = component_of(cert)
        assert cert["spec"]["dnsNames"] == [
            f"orderly-{component}", f"orderly-{component}.orderly.svc",
            f"orderly-{component}-headless", f"orderly-{component}-headless.orderly.svc",
        ]


# --- refused ---------------------------------------------------------------------------------

def _with_tls(**tls) -> dict:
    values = copy.deepcopy(REQUIRED)
    values["tls"] = {"enabled": True, **tls}
    return values


@pytest.mark.parametrize(
    "values, message",
    [
        (_with_tls(certManager={"enabled": True}), "tls.certManager.issuerRef.name: name the cert-manager Issuer"),
        (_with_tls(certManager={"enabled": True, "issuerRef": ISSUER}, existingSecrets={"payment": "pay"}),
         f"tls.existingSecrets.payment: with tls.certManager.enabled the chart's Certificates write "
         f"every component's Secret ({RELEASE}-orderly-payment-tls here)"),
        ({**REQUIRED, "tls": {"certManager": {"enabled": True, "issuerRef": ISSUER}}},
         "tls.certManager.enabled needs tls.enabled"),
        (_with_tls(certManager={"enabled": True, "issuerRef": ISSUER, "duration": "24h", "renewBefore": "1440m"}),
         "tls.certManager.renewBefore (1440m) must be below duration (24h)"),
        (_with_tls(healthPort=50053), "tls.healthPort 50053 is services.payment.port too"),
        (_with_tls(healthPort=9464), "tls.healthPort 9464 is metrics.port too"),
    ],
    ids=["no-issuer", "cert-manager-and-existing-secrets", "cert-manager-without-tls",
         "renew-before-not-below-duration", "health-on-a-grpc-port", "health-on-the-metrics-port"],
)
def test_tls_settings_that_cannot_work_are_refused(values, message):
    chart().validate_schema(values)  # well-formed: only the chart's own checks catch these
    with pytest.raises(helm.HelmError, match=re.escape(message)):
        render(values)


def test_what_is_refused_with_tls_on_is_fine_without_it():
    # tls off: the health port is not listened on, existingSecrets are not read.
    manifests(render({**REQUIRED, "tls": {"healthPort": 50053, "existingSecrets": {"payment": "pay"}}}))
    # The metrics port is free when metrics are off.
    manifests(render({**_with_tls(healthPort=9464), "metrics": {"enabled": False}}))
    # renewBefore just below duration, in other units.
    manifests(render(_with_tls(certManager={"enabled": True, "issuerRef": ISSUER,
                                            "duration": "1h30m", "renewBefore": "89m59s"})))


BAD = {
    # name: (tls values, fragments of the schema's error)
    "unknown-component": ({"existingSecrets": {"shipping": "certs"}},
                          ["/tls/existingSecrets", "'shipping' not allowed"]),
    # A key pasted where a Secret's name goes is refused without being repeated.
    "inline-key": ({"existingSecrets": {"payment": "-----BEGIN PRIVATE KEY-----\n" + "S3NTINEL" * 40}},
                   ["/tls/existingSecrets/payment", "maxLength"]),
    "empty-secret-name": ({"existingSecrets": {"payment": ""}}, ["/tls/existingSecrets/payment", "minLength"]),
    "typo": ({"certManger": {"enabled": True}}, ["/tls", "'certManger' not allowed"]),
    "issuer-typo": ({"certManager": {"issuerRef": {"nam": "ca"}}},
                    ["/tls/certManager/issuerRef", "'nam' not allowed"]),
    "reload-zero": ({"reloadSeconds": 0}, ["/tls/reloadSeconds", "minimum"]),
    "health-port-too-big": ({"healthPort": 70000}, ["/tls/healthPort", "maximum"]),
    "duration-in-days": ({"certManager": {"duration": "90d"}}, ["/tls/certManager/duration"]),
    "enabled-string": ({"enabled": "true"}, ["/tls/enabled", "want boolean"]),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_tls_values_are_rejected_clearly(name):
    tls, fragments = BAD[name]
    message = schema_error({**REQUIRED, "tls": tls})
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"
    assert "S3NTINEL" not in message, "an error message echoed what may be a secret"


def test_all_on_covers_tls():
    """Every structural check over the good values sets (kube schemas, drift against the
    binary's --help, lint, security) sees TLS and cert-manager through all-on."""
    tls = load_values("all-on.yaml")["tls"]
    assert tls["enabled"] and tls["certManager"]["enabled"] and tls["certManager"]["issuerRef"]["name"]
    assert _uses_tls("all-on")

"""Who may call what (auth.*): every component mounts the JWKS from one Secret or ConfigMap as a
directory (so a rotated key reaches it), or fetches it from an identity provider's https URL
(nothing mounted, egress opened to it where egress is locked down), and gets the binary's
ORDERLY_AUTH_* settings and its per-caller rate limits, only ever together with TLS; settings
that cannot work are refused, and without auth nothing changes."""

from __future__ import annotations

import copy
import re

import helm_python as helm
import pytest

from conftest import (
    component_of, schema_error, env_values, network_policies, pod_specs, pods, volume,
    COMPONENTS, GOOD_VALUES, REQUIRED, chart, help_text, install_notes, load_values,
    manifests, of_kind, render, rendered_set,
)

AUTH_DIR = "/etc/orderly/auth"
AUTH_ENV = ("ORDERLY_AUTH_JWKS", "ORDERLY_AUTH_ISSUER", "ORDERLY_AUTH_AUDIENCE",
            "ORDERLY_AUTH_LEEWAY_SECS", "ORDERLY_REFLECTION")
RATE_ENV = ("ORDERLY_RATE_LIMIT_PER_SEC", "ORDERLY_RATE_LIMIT_BURST")
TLS_ON = {**REQUIRED, "tls": {"enabled": True}}


def _with_auth(**auth) -> dict:
    values = copy.deepcopy(TLS_ON)
    values["auth"] = {"enabled": True, **auth}
    return values


SECRET_JWKS = _with_auth(jwks={"existingSecret": "orderly-jwks"})
JWKS_URL = "https://id.example.com/.well-known/jwks.json"
URL_JWKS = _with_auth(jwks={"url": JWKS_URL})
REFRESH = "ORDERLY_AUTH_JWKS_REFRESH_SECS"
IDP = {"ipBlock": {"cidr": "203.0.113.0/24"}}


def _uses_auth(name: str) -> bool:
    return bool(GOOD_VALUES[name]().get("auth", {}).get("enabled"))


def _rate_limits(docs) -> dict[str, dict]:
    """component -> its ORDERLY_RATE_LIMIT_* settings (None where unset)."""
    return {component: {n: env_values(c).get(n) for n in RATE_ENV}
            for component, (_, c) in pods(docs).items()}


# --- off by default ---------------------------------------------------------------------------

def test_auth_is_off_by_default():
    auth = chart().values["auth"]
    assert auth["enabled"] is False
    assert auth["jwks"] == {"existingSecret": "", "configMap": "", "key": "jwks.json", "url": "",
                            "refreshSeconds": 300, "egress": {"to": [], "port": 443}}
    assert auth["rateLimit"] == {"perSecond": 50, "burst": 100}
    assert not _uses_auth("defaults")


def test_without_auth_nothing_of_it_renders(good):
    name, docs = good
    if _uses_auth(name):
        return
    for component, (spec, c) in pods(docs).items():
        where = f"{name}: {component}"
        env = env_values(c)
        assert not [n for n in env if n.startswith(("ORDERLY_AUTH_", "ORDERLY_RATE_LIMIT_"))], where
        assert "ORDERLY_REFLECTION" not in env, where
        assert volume(spec, "auth") is None, where
        assert AUTH_DIR not in {m["mountPath"] for m in c["volumeMounts"]}, where


def test_only_a_jwks_url_gets_a_refresh_setting(good):
    """The refresh is the URL's: a file is re-read when it changes."""
    name, docs = good
    for component, (_, c) in pods(docs).items():
        env = env_values(c)
        fetched = str(env.get("ORDERLY_AUTH_JWKS", "")).startswith("https://")
        assert (REFRESH in env) == fetched, f"{name}: {component}"
    for component, (_, c) in pods(manifests(render(SECRET_JWKS))).items():
        assert REFRESH not in env_values(c), component


# --- on: the JWKS mount and the settings ----------------------------------------------------------

@pytest.mark.parametrize(
    "jwks, source",
    [
        ({"existingSecret": "orderly-jwks"},
         {"secret": {"secretName": "orderly-jwks", "items": [{"key": "jwks.json", "path": "jwks.json"}]}}),
        ({"configMap": "orderly-jwks", "key": "keys.json"},
         {"configMap": {"name": "orderly-jwks", "items": [{"key": "keys.json", "path": "keys.json"}]}}),
    ],
    ids=["secret", "configmap"],
)
def test_every_component_mounts_the_jwks_and_gets_the_settings(jwks, source):
    """The whole directory, read-only (a subPath would never see a rotated key), holding the one
    key the binary is pointed at, and the settings at the chart's defaults, which are the
    binary's."""
    docs = manifests(render(_with_auth(jwks=jwks)))
    by_component = pods(docs)
    assert set(by_component) == set(COMPONENTS)
    key = jwks.get("key", "jwks.json")
    for component, (spec, c) in by_component.items():
        assert volume(spec, "auth") == {"name": "auth", **source}, component
        (mount,) = [m for m in c["volumeMounts"] if m["name"] == "auth"]
        assert mount == {"name": "auth", "mountPath": AUTH_DIR, "readOnly": True}, component
        env = env_values(c)
        assert {n: env.get(n) for n in AUTH_ENV} == {
            "ORDERLY_AUTH_JWKS": f"{AUTH_DIR}/{key}",
            "ORDERLY_AUTH_ISSUER": "orderly",
            "ORDERLY_AUTH_AUDIENCE": "orderly",
            "ORDERLY_AUTH_LEEWAY_SECS": "60",
            "ORDERLY_REFLECTION": "open",
        }, component
        # The file the binary reads is the one the volume projects.
        (item,) = volume(spec, "auth")[next(iter(source))]["items"]
        assert env["ORDERLY_AUTH_JWKS"] == f"{mount['mountPath']}/{item['path']}", component
        assert "ORDERLY_TLS_CERT" in env, f"{component}: auth without TLS"


def test_all_on_sets_its_own_auth_settings():
    for component, (spec, c) in pods(rendered_set("all-on")).items():
        env = env_values(c)
        assert {n: env.get(n) for n in AUTH_ENV} == {
            "ORDERLY_AUTH_JWKS": f"{AUTH_DIR}/keys.json",
            "ORDERLY_AUTH_ISSUER": "https://id.example.com",
            "ORDERLY_AUTH_AUDIENCE": "orderly-shop",
            "ORDERLY_AUTH_LEEWAY_SECS": "30",
            "ORDERLY_REFLECTION": "authenticated",
        }, component
        assert volume(spec, "auth")["secret"]["secretName"] == "orderly-jwks", component
        assert {n: env.get(n) for n in RATE_ENV} == {
            "ORDERLY_RATE_LIMIT_PER_SEC": "20", "ORDERLY_RATE_LIMIT_BURST": "40"}, component


# --- rate limits ------------------------------------------------------------------------------

def test_rate_limits_reach_every_component_at_the_defaults():
    limits = _rate_limits(manifests(render(SECRET_JWKS)))
    assert set(limits) == set(COMPONENTS)
    for component, env in limits.items():
        assert env == {"ORDERLY_RATE_LIMIT_PER_SEC": "50", "ORDERLY_RATE_LIMIT_BURST": "100"}, component


@pytest.mark.parametrize(
    "rate_limit, want",
    [({"perSecond": 5, "burst": 20}, ("5", "20")),
     ({"burst": 1000}, ("50", "1000")),
     ({"perSecond": 0}, ("0", "100"))],  # 0 (off) is a value, not an absence
    ids=["both", "burst-alone", "off"],
)
def test_rate_limits_take_the_values(rate_limit, want):
    limits = _rate_limits(manifests(render(_with_auth(jwks={"configMap": "orderly-jwks"},
                                                      rateLimit=rate_limit))))
    for component, env in limits.items():
        assert env == dict(zip(RATE_ENV, want)), component


def test_rate_limits_are_not_set_without_auth():
    """The binary only limits token subjects, and there are none without auth."""
    values = {**TLS_ON, "auth": {"rateLimit": {"perSecond": 5, "burst": 20}}}
    for component, env in _rate_limits(manifests(render(values))).items():
        assert env == dict.fromkeys(RATE_ENV), component


def test_migrations_get_no_auth():
    """`orderly migrate` serves no gRPC and reads no auth settings (the drift test holds it to
    its --help); its Job is unchanged by auth."""
    for docs in (manifests(render(SECRET_JWKS)), rendered_set("all-on")):
        (job,) = of_kind(docs, "Job")
        spec = job["spec"]["template"]["spec"]
        assert volume(spec, "auth") is None
        for c in spec["containers"]:
            assert not [e for e in c["env"] if e["name"].startswith("ORDERLY_AUTH_")]


def test_network_policies_are_the_same_with_auth():
    """Complementary, not either-or: the NetworkPolicies still decide who reaches a port, auth
    who may call what once there."""
    plain = {**TLS_ON, "networkPolicy": {"enabled": True, "egress": {"enabled": True}}}
    with_auth = {**plain, "auth": SECRET_JWKS["auth"]}
    policies = lambda v: sorted(of_kind(manifests(render(v)), "NetworkPolicy"),
                                key=lambda p: p["metadata"]["name"])
    assert policies(with_auth) == policies(plain)


def test_chart_defaults_are_the_binarys():
    text = help_text("payment")
    auth = chart().values["auth"]
    for env, value in [("ORDERLY_AUTH_ISSUER", auth["issuer"]), ("ORDERLY_AUTH_AUDIENCE", auth["audience"]),
                       ("ORDERLY_AUTH_LEEWAY_SECS", str(auth["leewaySeconds"])),
                       ("ORDERLY_REFLECTION", auth["reflection"]),
                       ("ORDERLY_RATE_LIMIT_PER_SEC", str(auth["rateLimit"]["perSecond"])),
                       ("ORDERLY_RATE_LIMIT_BURST", str(auth["rateLimit"]["burst"]))]:
        m = re.search(rf"\[env: {env}=\] \[default: ([^\]]+)\]", text)
        assert m, f"no default for {env} in `orderly payment --help`"
        assert m.group(1) == value, env


def test_reflection_choices_are_the_binarys():
    m = re.search(r"--reflection <REFLECTION>(.*?)\[env: ORDERLY_REFLECTION", help_text("payment"))
    assert m, "no --reflection in `orderly payment --help`"
    choices = re.findall(r"- ([a-z-]+):", m.group(1))
    schema = chart().schema["properties"]["auth"]["properties"]["reflection"]["enum"]
    assert sorted(choices) == sorted(schema) == ["authenticated", "open"]


def test_notes_show_grpcurl_with_a_token():
    """Health needs no token; reflection needs one only when authenticated; every RPC does."""
    for reflection in ("open", "authenticated"):
        notes = install_notes(_with_auth(jwks={"existingSecret": "orderly-jwks"}, reflection=reflection))
        bearer = ' -H "authorization: Bearer $TOKEN"'
        assert "grpcurl -cacert ca.crt -authority orderly-order localhost:50051 grpc.health.v1.Health/Check" in notes
        list_line = f"grpcurl -cacert ca.crt -authority orderly-order{bearer} localhost:50051 list"
        assert (list_line in notes) == (reflection == "authenticated"), reflection
        assert f"-authority orderly-order{bearer} -d '{{}}' localhost:50051 orderly.order.v1.OrderService/ListOrders" in notes
        assert "export TOKEN=" in notes
    assert "Bearer" not in install_notes(TLS_ON)


# --- a JWKS URL: fetched by every pod, nothing mounted ----------------------------------------------

def test_a_jwks_url_is_fetched_by_every_component_and_nothing_is_mounted():
    """ORDERLY_AUTH_JWKS is the URL itself, with the refresh at the chart's default (the
    binary's); no auth volume or mount, and TLS on (the fetch trusts its CA too)."""
    docs = manifests(render(URL_JWKS))
    by_component = pods(docs)
    assert set(by_component) == set(COMPONENTS)
    for component, (spec, c) in by_component.items():
        env = env_values(c)
        assert {n: env.get(n) for n in (*AUTH_ENV, REFRESH)} == {
            "ORDERLY_AUTH_JWKS": JWKS_URL,
            REFRESH: "300",
            "ORDERLY_AUTH_ISSUER": "orderly",
            "ORDERLY_AUTH_AUDIENCE": "orderly",
            "ORDERLY_AUTH_LEEWAY_SECS": "60",
            "ORDERLY_REFLECTION": "open",
        }, component
        assert volume(spec, "auth") is None, component
        assert AUTH_DIR not in {m["mountPath"] for m in c["volumeMounts"]}, component
        assert "auth" not in {m["name"] for m in c["volumeMounts"]}, component
        assert env["ORDERLY_TLS_CA"] == "/etc/orderly/tls/ca.crt", component
    # The key names a file in the Secret or ConfigMap; with a URL it is not read.
    keyed = _with_auth(jwks={"url": JWKS_URL, "key": "keys.json"})
    for component, (_, c) in pods(manifests(render(keyed))).items():
        assert env_values(c)["ORDERLY_AUTH_JWKS"] == JWKS_URL, component


@pytest.mark.parametrize("seconds", [1, 60, 3600])
def test_refresh_seconds_reach_every_component(seconds):
    docs = manifests(render(_with_auth(jwks={"url": JWKS_URL, "refreshSeconds": seconds})))
    for component, (_, c) in pods(docs).items():
        assert env_values(c)[REFRESH] == str(seconds), component


def test_jwks_url_values_set():
    """The jwks-url values set carries a URL through every check over the good sets (kube
    schemas, drift against the binary's --help, lint, security)."""
    auth = load_values("jwks-url.yaml")["auth"]
    assert auth["enabled"] and auth["jwks"]["url"].startswith("https://")
    assert not auth["jwks"].get("existingSecret") and not auth["jwks"].get("configMap")
    for component, (spec, c) in pods(rendered_set("jwks-url")).items():
        env = env_values(c)
        assert env["ORDERLY_AUTH_JWKS"] == auth["jwks"]["url"], component
        assert env[REFRESH] == "600", component
        assert volume(spec, "auth") is None, component


def test_migrations_get_no_jwks_url():
    for where, spec in pod_specs(manifests(render(URL_JWKS))):
        if not where.startswith("Job/"):
            continue
        for c in spec["containers"]:
            assert not [e for e in c["env"] if e["name"].startswith("ORDERLY_AUTH_")], where


def test_every_component_may_reach_the_identity_provider_when_egress_is_locked_down():
    """Every component fetches the JWKS itself, so each policy opens the provider's peers on
    its port (443 by default), and nothing else changes."""
    locked = {"networkPolicy": {"enabled": True, "egress": {"enabled": True}}}
    with_url = _with_auth(jwks={"url": JWKS_URL, "egress": {"to": [IDP]}})
    with_file = _with_auth(jwks={"existingSecret": "orderly-jwks", "egress": {"to": [IDP]}})
    url_policies = network_policies(manifests(render({**with_url, **locked})))
    file_policies = network_policies(manifests(render({**with_file, **locked})))
    assert set(url_policies) == set(COMPONENTS)
    for component, spec in url_policies.items():
        to_idp = [r for r in spec["egress"] if IDP in r.get("to", [])]
        assert to_idp == [{"to": [IDP], "ports": [{"port": 443, "protocol": "TCP"}]}], component
        others = [r for r in spec["egress"] if r not in to_idp]
        assert others == file_policies[component]["egress"], component
        # A mounted JWKS is fetched from nowhere: its egress settings open nothing.
        assert not [r for r in file_policies[component]["egress"] if IDP in r.get("to", [])], component
    port = _with_auth(jwks={"url": JWKS_URL, "egress": {"to": [IDP], "port": 8443}})
    for component, spec in network_policies(manifests(render({**port, **locked}))).items():
        (rule,) = [r for r in spec["egress"] if IDP in r.get("to", [])]
        assert rule["ports"] == [{"port": 8443, "protocol": "TCP"}], component


def test_without_egress_restrictions_there_is_nothing_to_open():
    values = {**_with_auth(jwks={"url": JWKS_URL}), "networkPolicy": {"enabled": True}}
    for component, spec in network_policies(manifests(render(values))).items():
        assert "egress" not in spec and "Egress" not in spec["policyTypes"], component


def test_a_jwks_url_behind_closed_egress_is_refused():
    values = {**URL_JWKS, "networkPolicy": {"enabled": True, "egress": {"enabled": True}}}
    chart().validate_schema(values)
    with pytest.raises(helm.HelmError, match=re.escape(
            "auth.jwks.egress.to: with networkPolicy.egress.enabled, list the identity provider's hosts")):
        render(values)


def test_refresh_default_is_the_binarys():
    m = re.search(rf"\[env: {REFRESH}=\] \[default: ([0-9]+)\]", help_text("payment"))
    assert m, f"no default for {REFRESH} in `orderly payment --help`"
    assert int(m.group(1)) == chart().values["auth"]["jwks"]["refreshSeconds"]


def test_every_component_takes_a_jwks_url():
    for component in COMPONENTS:
        m = re.search(r"--auth-jwks <FILE\|URL>", help_text(component))
        assert m, f"`orderly {component} --help` takes no JWKS URL"


# --- refused ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "values, message",
    [
        ({**REQUIRED, "auth": {"enabled": True, "jwks": {"existingSecret": "orderly-jwks"}}},
         "auth needs tls.enabled: tokens must not cross the network in plaintext, and components "
         "prove who they are with their certificates"),
        ({**REQUIRED, "auth": {"enabled": True, "jwks": {"url": JWKS_URL}}},
         "auth needs tls.enabled"),
        (_with_auth(),
         "auth.enabled needs the JWKS that verifies callers' tokens: set auth.jwks.existingSecret "
         "or auth.jwks.configMap (and auth.jwks.key, default jwks.json), or auth.jwks.url"),
        (_with_auth(jwks={"existingSecret": "jwks-a", "configMap": "jwks-b"}),
         "auth.jwks: set one of existingSecret, configMap and url, not existingSecret (jwks-a) and "
         "configMap (jwks-b): the components read one JWKS"),
        (_with_auth(jwks={"existingSecret": "jwks-a", "url": JWKS_URL}),
         "auth.jwks: set one of existingSecret, configMap and url, not existingSecret (jwks-a) and url"),
        (_with_auth(jwks={"configMap": "jwks-b", "url": JWKS_URL}),
         "auth.jwks: set one of existingSecret, configMap and url, not configMap (jwks-b) and url"),
        (_with_auth(jwks={"existingSecret": "jwks-a", "configMap": "jwks-b", "url": JWKS_URL}),
         "not existingSecret (jwks-a) and configMap (jwks-b) and url"),
        # Plain http is the binary's for loopback alone, and nothing a pod fetches is on it.
        (_with_auth(jwks={"url": "http://id.example.com/.well-known/jwks.json"}),
         "auth.jwks.url: use https"),
        (_with_auth(jwks={"url": "http://127.0.0.1:8080/jwks.json"}), "auth.jwks.url: use https"),
        (_with_auth(jwks={"url": "https://reader:S3NTINEL@id.example.com/jwks.json"}),
         "auth.jwks.url: no credentials in the URL"),
    ],
    ids=["without-tls", "url-without-tls", "no-jwks", "secret-and-configmap", "secret-and-url",
         "configmap-and-url", "all-three", "http-url", "http-loopback-url", "url-credentials"],
)
def test_auth_settings_that_cannot_work_are_refused(values, message):
    chart().validate_schema(values)  # well-formed: only the chart's own checks catch these
    with pytest.raises(helm.HelmError, match=re.escape(message)) as err:
        render(values)
    # The URL is never repeated: it is the one place a credential could have been typed.
    assert "S3NTINEL" not in str(err.value) and "example.com" not in str(err.value)


def test_what_is_refused_with_auth_on_is_fine_without_it():
    # auth off: its JWKS sources are not read, and TLS is not needed.
    for jwks in ({"existingSecret": "a", "configMap": "b"},
                 {"existingSecret": "a", "url": "http://id.example.com/jwks.json"}):
        docs = manifests(render({**REQUIRED, "auth": {"jwks": jwks}}))
        for component, (spec, c) in pods(docs).items():
            assert volume(spec, "auth") is None, component
            assert not [n for n in env_values(c) if n.startswith("ORDERLY_AUTH_")], component


BAD = {
    # name: (auth values, fragments of the schema's error)
    "reflection-closed": ({"reflection": "closed"}, ["/auth/reflection", "open", "authenticated"]),
    "typo": ({"jwk": {"existingSecret": "jwks"}}, ["/auth", "'jwk' not allowed"]),
    "jwks-typo": ({"jwks": {"secret": "jwks"}}, ["/auth/jwks", "'secret' not allowed"]),
    "key-with-a-slash": ({"jwks": {"key": "keys/jwks.json"}}, ["/auth/jwks/key", "does not match pattern"]),
    "empty-key": ({"jwks": {"key": ""}}, ["/auth/jwks/key", "minLength"]),
    # A key set pasted where the ConfigMap's name goes.
    "inline-jwks": ({"jwks": {"configMap": '{"keys": [{"kty": "RSA", "n": "' + "A" * 300 + '"}]}'}},
                    ["/auth/jwks/configMap", "maxLength"]),
    "empty-issuer": ({"issuer": ""}, ["/auth/issuer", "minLength"]),
    "negative-leeway": ({"leewaySeconds": -1}, ["/auth/leewaySeconds", "minimum"]),
    "leeway-string": ({"leewaySeconds": "60s"}, ["/auth/leewaySeconds", "want integer"]),
    "enabled-string": ({"enabled": "true"}, ["/auth/enabled", "want boolean"]),
    "negative-rate": ({"rateLimit": {"perSecond": -1}}, ["/auth/rateLimit/perSecond", "minimum"]),
    "rate-string": ({"rateLimit": {"perSecond": "50/s"}}, ["/auth/rateLimit/perSecond", "want integer"]),
    "rate-fraction": ({"rateLimit": {"perSecond": 0.5}}, ["/auth/rateLimit/perSecond", "want integer"]),
    # The binary reads a u32: beyond it, a pod that would not start.
    "rate-above-u32": ({"rateLimit": {"perSecond": 2**32}}, ["/auth/rateLimit/perSecond", "maximum"]),
    "negative-burst": ({"rateLimit": {"burst": -100}}, ["/auth/rateLimit/burst", "minimum"]),
    "burst-string": ({"rateLimit": {"burst": "100"}}, ["/auth/rateLimit/burst", "want integer"]),
    "rate-limit-typo": ({"rateLimit": {"perSec": 10}}, ["/auth/rateLimit", "'perSec' not allowed"]),
    # The binary takes anything not starting with https:// or http:// for a file's path.
    "url-without-scheme": ({"jwks": {"url": "id.example.com/jwks.json"}},
                           ["/auth/jwks/url", "does not match pattern"]),
    "url-upper-case-scheme": ({"jwks": {"url": "HTTPS://id.example.com/jwks.json"}},
                              ["/auth/jwks/url", "does not match pattern"]),
    "url-other-scheme": ({"jwks": {"url": "file:///etc/jwks.json"}}, ["/auth/jwks/url", "does not match pattern"]),
    "url-with-space": ({"jwks": {"url": "https://id.example.com/jw ks"}}, ["/auth/jwks/url", "does not match pattern"]),
    "url-list": ({"jwks": {"url": [JWKS_URL]}}, ["/auth/jwks/url", "want string"]),
    "refresh-zero": ({"jwks": {"refreshSeconds": 0}}, ["/auth/jwks/refreshSeconds", "minimum"]),
    "refresh-string": ({"jwks": {"refreshSeconds": "5m"}}, ["/auth/jwks/refreshSeconds", "want integer"]),
    "refresh-fraction": ({"jwks": {"refreshSeconds": 0.5}}, ["/auth/jwks/refreshSeconds", "want integer"]),
    "refresh-typo": ({"jwks": {"refreshSecs": 60}}, ["/auth/jwks", "'refreshSecs' not allowed"]),
    "egress-port-zero": ({"jwks": {"egress": {"port": 0}}}, ["/auth/jwks/egress/port", "minimum"]),
    "egress-peer-typo": ({"jwks": {"egress": {"to": [{"cidr": "10.0.0.0/8"}]}}},
                         ["/auth/jwks/egress/to/0", "'cidr' not allowed"]),
    "egress-typo": ({"jwks": {"egress": {"ports": [443]}}}, ["/auth/jwks/egress", "'ports' not allowed"]),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_auth_values_are_rejected_clearly(name):
    auth, fragments = BAD[name]
    message = schema_error({**REQUIRED, "auth": auth})
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"


@pytest.mark.parametrize("url", ["", JWKS_URL, "https://login.example.com:8443/realms/shop/protocol/openid-connect/certs",
                                 "https://10.0.0.7/jwks?tenant=shop", "https://idp.identity.svc/keys"])
def test_good_jwks_urls_pass(url):
    chart().validate_schema(_with_auth(jwks={"url": url}))


def test_all_on_covers_auth():
    """Every structural check over the good values sets (kube schemas, drift against the
    binary's --help, lint, security) sees auth through all-on, with a Secret."""
    auth = load_values("all-on.yaml")["auth"]
    assert auth["enabled"] and auth["jwks"]["existingSecret"] and not auth["jwks"].get("configMap")
    assert auth["rateLimit"] != chart().values["auth"]["rateLimit"], "all-on sets its own limits"
    assert _uses_auth("all-on")

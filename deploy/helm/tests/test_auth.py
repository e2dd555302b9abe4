"""Who may call what (auth.*): every component mounts the JWKS from one Secret or ConfigMap as a
directory (so a rotated key reaches it) and gets the binary's ORDERLY_AUTH_* settings and its
per-caller rate limits, only ever together with TLS; settings that cannot work are refused, and
without auth nothing changes."""

from __future__ import annotations

import copy
import re

import helm_python as helm
import pytest

from conftest import (
    component_of, schema_error, env_values, pods, volume,
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
    assert auth["jwks"] == {"existingSecret": "", "configMap": "", "key": "jwks.json"}
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


# --- refused ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "values, message",
    [
        ({**REQUIRED, "auth": {"enabled": True, "jwks": {"existingSecret": "orderly-jwks"}}},
         "auth needs tls.enabled: tokens must not cross the network in plaintext, and components "
         "prove who they are with their certificates"),
        (_with_auth(),
         "auth.enabled needs the JWKS that verifies callers' tokens: set auth.jwks.existingSecret "
         "or auth.jwks.configMap"),
        (_with_auth(jwks={"existingSecret": "jwks-a", "configMap": "jwks-b"}),
         "auth.jwks: set existingSecret (jwks-a) or configMap (jwks-b), not both"),
    ],
    ids=["without-tls", "no-jwks", "secret-and-configmap"],
)
def test_auth_settings_that_cannot_work_are_refused(values, message):
    chart().validate_schema(values)  # well-formed: only the chart's own checks catch these
    with pytest.raises(helm.HelmError, match=re.escape(message)):
        render(values)


def test_what_is_refused_with_auth_on_is_fine_without_it():
    # auth off: its JWKS sources are not read, and TLS is not needed.
    docs = manifests(render({**REQUIRED, "auth": {"jwks": {"existingSecret": "a", "configMap": "b"}}}))
    for component, (spec, c) in pods(docs).items():
        assert volume(spec, "auth") is None, component


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
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_auth_values_are_rejected_clearly(name):
    auth, fragments = BAD[name]
    message = schema_error({**REQUIRED, "auth": auth})
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"


def test_all_on_covers_auth():
    """Every structural check over the good values sets (kube schemas, drift against the
    binary's --help, lint, security) sees auth through all-on, with a Secret."""
    auth = load_values("all-on.yaml")["auth"]
    assert auth["enabled"] and auth["jwks"]["existingSecret"] and not auth["jwks"].get("configMap")
    assert auth["rateLimit"] != chart().values["auth"]["rateLimit"], "all-on sets its own limits"
    assert _uses_auth("all-on")

"""Signed events (events.signing.*): with a Secret of keys named, every component mounts it as a
read-only directory (not a subPath, so a pod started after a rotation reads the new keys) and
gets ORDERLY_EVENT_KEYS pointing into it; without one nothing of it renders, and with TLS on the
install notes warn that events are unsigned. Bad values are refused."""

from __future__ import annotations

import helm_python as helm
import pytest

from conftest import (
    env_values, pods, schema_error, volume,
    COMPONENTS, GOOD_VALUES, REQUIRED, accepted_env, chart, install_notes, load_values, manifests,
    of_kind, render,
)

EVENTS_DIR = "/etc/orderly/events"
SIGNED = {**REQUIRED, "events": {"signing": {"existingSecret": "orderly-event-keys"}}}
TLS_ON = {**REQUIRED, "tls": {"enabled": True}}
UNSIGNED_WARNING = "Warning: events are unsigned"


def _signs(name: str) -> bool:
    return bool(GOOD_VALUES[name]().get("events", {}).get("signing", {}).get("existingSecret"))


def _mounts(container) -> list[dict]:
    """The container's mounts of the event keys' volume."""
    return [m for m in container["volumeMounts"] if m["name"] == "event-keys"]


# --- off by default ---------------------------------------------------------------------------

def test_signing_is_off_by_default():
    assert chart().values["events"] == {"signing": {"existingSecret": "", "key": "event-keys"}}
    assert not _signs("defaults")


def test_without_signing_nothing_of_it_renders(good):
    name, docs = good
    if _signs(name):
        return
    for component, (spec, c) in pods(docs).items():
        where = f"{name}: {component}"
        assert "ORDERLY_EVENT_KEYS" not in env_values(c), where
        assert volume(spec, "event-keys") is None, where
        assert not _mounts(c), where
        assert EVENTS_DIR not in {m["mountPath"] for m in c["volumeMounts"]}, where


# --- on: the keys' mount and the setting --------------------------------------------------------

@pytest.mark.parametrize(
    "signing, key",
    [({"existingSecret": "orderly-event-keys"}, "event-keys"),
     ({"existingSecret": "shop-event-keys", "key": "keys.hex"}, "keys.hex")],
    ids=["default-key", "own-key"],
)
def test_every_component_mounts_the_keys_and_is_pointed_at_them(signing, key):
    """One Secret for all six (they share the keys), its one key projected, readable by the
    pod's group alone like the TLS key, and the file the binary reads is the one projected."""
    by_component = pods(manifests(render({**REQUIRED, "events": {"signing": signing}})))
    assert set(by_component) == set(COMPONENTS)
    for component, (spec, c) in by_component.items():
        assert volume(spec, "event-keys") == {"name": "event-keys", "secret": {
            "secretName": signing["existingSecret"], "defaultMode": 0o440,
            "items": [{"key": key, "path": key}]}}, component
        assert env_values(c)["ORDERLY_EVENT_KEYS"] == f"{EVENTS_DIR}/{key}", component


def test_the_keys_are_mounted_as_a_read_only_directory():
    """Read-only, and the whole directory: a subPath mount would pin the file it saw first."""
    for component, (_, c) in pods(manifests(render(SIGNED))).items():
        (mount,) = _mounts(c)
        assert mount["readOnly"] is True, component
        assert "subPath" not in mount and "subPathExpr" not in mount, component
        assert mount == {"name": "event-keys", "mountPath": EVENTS_DIR, "readOnly": True}, component


def test_signing_needs_neither_tls_nor_auth_and_changes_nothing_else():
    plain, signed = pods(manifests(render(REQUIRED))), pods(manifests(render(SIGNED)))
    for component, (spec, c) in signed.items():
        env = env_values(c)
        del env["ORDERLY_EVENT_KEYS"]
        assert env == env_values(plain[component][1]), component
        mounts = [m for m in c["volumeMounts"] if m["name"] != "event-keys"]
        assert mounts == plain[component][1]["volumeMounts"], component


def test_migrations_get_no_event_keys():
    """`orderly migrate` publishes and consumes nothing, and does not take --event-keys."""
    assert "ORDERLY_EVENT_KEYS" not in accepted_env("migrate")
    for docs in (manifests(render(SIGNED)), manifests(render(load_values("all-on.yaml")))):
        (job,) = of_kind(docs, "Job")
        spec = job["spec"]["template"]["spec"]
        assert volume(spec, "event-keys") is None
        for c in spec["containers"]:
            assert "ORDERLY_EVENT_KEYS" not in env_values(c), c["name"]


def test_every_component_takes_the_keys():
    for component in COMPONENTS:
        assert "ORDERLY_EVENT_KEYS" in accepted_env(component), component


# --- the install notes --------------------------------------------------------------------------

def test_notes_warn_that_events_are_unsigned_when_tls_is_on():
    """TLS on says the operator cares who talks to whom; unsigned events are then the way
    around it, and worth a line."""
    assert UNSIGNED_WARNING in install_notes(TLS_ON)
    assert UNSIGNED_WARNING not in install_notes({**TLS_ON, "events": SIGNED["events"]})
    assert UNSIGNED_WARNING not in install_notes(REQUIRED)


# --- refused ------------------------------------------------------------------------------------

def test_a_key_in_place_of_the_secret_name_is_refused_without_repeating_it():
    key = "5e" * 32  # what `openssl rand -hex 32` prints
    with pytest.raises(helm.HelmError, match="events.signing.existingSecret is the name of the Secret") as err:
        render({**REQUIRED, "events": {"signing": {"existingSecret": key}}})
    assert key not in str(err.value)


BAD = {
    # name: (events values, fragments of the schema's error)
    "typo": ({"signed": {"existingSecret": "keys"}}, ["/events", "'signed' not allowed"]),
    "signing-typo": ({"signing": {"secret": "keys"}}, ["/events/signing", "'secret' not allowed"]),
    "inline-keys": ({"signing": {"keys": ["5e" * 32]}}, ["/events/signing", "'keys' not allowed"]),
    "secret-not-a-string": ({"signing": {"existingSecret": True}},
                            ["/events/signing/existingSecret", "want string"]),
    "secret-name-too-long": ({"signing": {"existingSecret": "k" * 254}},
                             ["/events/signing/existingSecret", "maxLength"]),
    "key-with-a-slash": ({"signing": {"key": "keys/event-keys"}},
                         ["/events/signing/key", "does not match pattern"]),
    "empty-key": ({"signing": {"key": ""}}, ["/events/signing/key", "minLength"]),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_events_values_are_rejected_clearly(name):
    events, fragments = BAD[name]
    message = schema_error({**REQUIRED, "events": events})
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"


def test_all_on_covers_event_signing():
    """Every structural check over the good values sets (kube schemas, drift against the
    binary's --help, lint, security) sees signed events through all-on."""
    assert _signs("all-on")

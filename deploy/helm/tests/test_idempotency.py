"""How long idempotency keys are kept (idempotency.ttlSeconds): order, payment and inventory,
whose requests take keys (PlaceOrder, Deposit, Restock), get ORDERLY_IDEMPOTENCY_TTL_SECS, and
no other workload does; which components those are, and the default, are the binary's."""

from __future__ import annotations

import copy
import re

import pytest

from conftest import (
    COMPONENTS, GOOD_VALUES, REQUIRED, accepted_env, chart, env_values, help_text, manifests,
    pod_specs, pods, render, rendered_set, schema_error, settings_configmap,
)

TTL = "ORDERLY_IDEMPOTENCY_TTL_SECS"
KEEPERS = {"order", "payment", "inventory"}


def _ttls(docs) -> dict[str, str | None]:
    """component -> its ORDERLY_IDEMPOTENCY_TTL_SECS (None where unset)."""
    return {component: env_values(c).get(TTL) for component, (_, c) in pods(docs).items()}


def test_default_is_a_day():
    assert chart().values["idempotency"] == {"ttlSeconds": 86400}


def test_the_binary_says_who_keeps_keys():
    """The components whose --help lists the setting: the chart gives it to these alone."""
    assert {c for c in COMPONENTS if TTL in accepted_env(c)} == KEEPERS


def test_default_is_the_binarys():
    m = re.search(rf"\[env: {TTL}=\] \[default: ([0-9]+)\]", help_text("payment"))
    assert m, f"no default for {TTL} in `orderly payment --help`"
    assert int(m.group(1)) == chart().values["idempotency"]["ttlSeconds"]


@pytest.mark.parametrize("name", sorted(GOOD_VALUES))
def test_only_order_payment_and_inventory_get_the_ttl(name):
    docs = rendered_set(name)
    want = str(GOOD_VALUES[name]().get("idempotency", {}).get("ttlSeconds", 86400))
    assert _ttls(docs) == {c: (want if c in KEEPERS else None) for c in COMPONENTS}, name
    # Not a shared setting, and nothing for the migrations.
    assert TTL not in settings_configmap(docs)["data"]
    for where, spec in pod_specs(docs):
        if where.startswith("Job/"):
            for c in spec["containers"]:
                assert TTL not in env_values(c), where


@pytest.mark.parametrize("seconds", [1, 3600, 31536000])
def test_the_configured_ttl_reaches_the_keepers(seconds):
    values = {**REQUIRED, "idempotency": {"ttlSeconds": seconds}}
    chart().validate_schema(values)
    ttls = _ttls(manifests(render(values)))
    assert ttls == {c: (str(seconds) if c in KEEPERS else None) for c in COMPONENTS}


def test_all_on_sets_its_own_ttl():
    values = GOOD_VALUES["all-on"]()
    assert values["idempotency"]["ttlSeconds"] != chart().values["idempotency"]["ttlSeconds"]


BAD = {
    # name: (idempotency values, fragments of the schema's error)
    "zero": ({"ttlSeconds": 0}, ["/idempotency/ttlSeconds", "minimum"]),
    "negative": ({"ttlSeconds": -1}, ["/idempotency/ttlSeconds", "minimum"]),
    # The binary takes at most a year: beyond it, pods that would not start.
    "above-a-year": ({"ttlSeconds": 31536001}, ["/idempotency/ttlSeconds", "maximum"]),
    "duration-string": ({"ttlSeconds": "24h"}, ["/idempotency/ttlSeconds", "want integer"]),
    "fraction": ({"ttlSeconds": 0.5}, ["/idempotency/ttlSeconds", "want integer"]),
    "typo": ({"ttlSecs": 3600}, ["/idempotency", "'ttlSecs' not allowed"]),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_idempotency_values_are_rejected_clearly(name):
    idempotency, fragments = BAD[name]
    message = schema_error({**copy.deepcopy(REQUIRED), "idempotency": idempotency})
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"

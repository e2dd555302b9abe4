"""values.schema.json is strict everywhere and leaves no place to type a secret."""

from __future__ import annotations

import json
import re

from conftest import CHART_DIR

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())


def _objects(node, path="$"):
    """Every (path, schema) that describes an object."""
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node:
            yield path, node
        for key, child in node.items():
            yield from _objects(child, f"{path}.{key}")
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _objects(child, f"{path}[{i}]")


def test_every_object_is_closed():
    """Closed (additionalProperties false), a typed map (labels), or a Kubernetes type
    passed through to the API server with a $comment saying so."""
    loose = []
    for path, node in _objects(SCHEMA):
        extra = node.get("additionalProperties", True)
        if re.search(r"\.(if|then|else)(\.|$)", path):
            continue  # conditionals refine closed objects, they don't define them
        if extra is False or isinstance(extra, dict):
            continue
        if str(node.get("$comment", "")).startswith("pass-through Kubernetes"):
            continue
        loose.append(path)
    assert not loose, f"objects accepting unknown keys: {loose}"
    passthrough = [p for p, n in _objects(SCHEMA) if "$comment" in n]
    assert len(passthrough) < 12, passthrough  # the exception stays an exception


# Keys that look risky but hold no secret: auth.jwks.url is where public keys are published (the
# chart refuses credentials in it without repeating them; test_auth checks that).
PUBLIC = {("$.properties.auth.properties.jwks", "url")}


def test_no_key_can_hold_a_secret_value():
    names = set()
    for path, node in _objects(SCHEMA):
        names |= {n for n in node.get("properties", {}) if (path, n) not in PUBLIC}
    risky = {n for n in names if re.search(r"pass|secret|token|url|credential|dsn", n, re.I)}
    # Only references: a Secret's name (or a map of names), or the key inside it.
    assert risky <= {"existingSecret", "existingSecrets", "passwordKey", "caSecret", "imagePullSecrets"}, risky
    for path, name in PUBLIC:  # the exception stays where it is
        node = SCHEMA
        for part in path.split(".")[1:]:
            node = node[part]
        assert name in node["properties"], (path, name)


def test_kafka_bootstrap_is_required():
    kafka = SCHEMA["properties"]["kafka"]
    assert "kafka" in SCHEMA["required"] and "bootstrapServers" in kafka["required"]

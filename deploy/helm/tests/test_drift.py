"""The chart and the `orderly` binary cannot drift apart: every ORDERLY_* variable a
workload receives (env and envFrom ConfigMaps) is one `orderly <cmd> --help` lists, and
variables the binary marks secret (hidden values) only ever come from Secrets."""

from __future__ import annotations

import re


from conftest import COMPONENTS, accepted_env, help_text, of_kind, pod_specs


def workload_env(docs) -> list[tuple[str, list[str], dict[str, dict]]]:
    """(where, args, {ORDERLY_* name: how it is set}) per container of every workload."""
    configmaps = {cm["metadata"]["name"]: cm.get("data", {}) for cm in of_kind(docs, "ConfigMap")}
    out = []
    for where, spec in pod_specs(docs):
        for c in spec["containers"]:
            env: dict[str, dict] = {}
            for src in c.get("envFrom", []):
                ref = src["configMapRef"]["name"]
                assert ref in configmaps, f"{where} reads ConfigMap {ref} the chart does not render"
                env.update({k: {"value": v} for k, v in configmaps[ref].items()})
            env.update({e["name"]: e for e in c.get("env", [])})
            names = {k: v for k, v in env.items() if k.startswith("ORDERLY_")}
            out.append((f"{where}/{c['name']}", c["args"], names))
    return out


def unknown_env(args: list[str], env: dict) -> list[str]:
    command = args[:1]  # `order`, ..., or `migrate` (its positional args are components)
    return sorted(set(env) - set(accepted_env(*command)))


def test_every_orderly_variable_is_accepted_by_the_binary(good):
    name, docs = good
    checked = 0
    for where, args, env in workload_env(docs):
        assert env, f"{where} gets no ORDERLY_* settings at all"
        bad = unknown_env(args, env)
        assert not bad, f"{where} sets {bad}, which `orderly {args[0]} --help` does not list"
        checked += 1
    assert checked >= len(COMPONENTS)


def test_deployments_get_their_essentials(good):
    name, docs = good
    for where, args, env in workload_env(docs):
        needed = {"ORDERLY_DATABASE_URL", "ORDERLY_LOG_FORMAT"}
        if args[0] != "migrate":
            needed |= {"ORDERLY_LISTEN_ADDR", "ORDERLY_KAFKA_BOOTSTRAP", "ORDERLY_SHUTDOWN_GRACE_SECS"}
            assert args == [args[0]] and args[0] in COMPONENTS, f"{where}: {args}"
        assert needed <= set(env), f"{where} lacks {sorted(needed - set(env))}"


def test_migrate_arguments_are_components_the_binary_knows(good):
    name, docs = good
    m = re.search(r"\[COMPONENTS\].*?\[possible values: ([^\]]+)\]", help_text("migrate"))
    assert m, "`orderly migrate --help` lists no possible components"
    known = {v.strip() for v in m.group(1).split(",")}
    for where, args, _ in workload_env(docs):
        if args[0] == "migrate":
            assert len(args) == 2 and args[1] in known, f"{where}: {args} (binary knows {known})"


def test_variables_the_binary_hides_come_from_secrets(good):
    name, docs = good
    for where, args, env in workload_env(docs):
        hidden = {n for n, secret in accepted_env(args[0]).items() if secret}
        assert "ORDERLY_DATABASE_URL" in hidden  # guards the --help parsing itself
        for n in hidden & set(env):
            assert "secretKeyRef" in env[n].get("valueFrom", {}), f"{where}: {n} not from a Secret"


def test_the_drift_check_catches_drift():
    """A misspelt or retired variable is reported, so a green run means something."""
    assert unknown_env(["order"], {"ORDERLY_KAFKA_BOOTSTRAPS": {}, "ORDERLY_LISTEN_ADDR": {}}) == [
        "ORDERLY_KAFKA_BOOTSTRAPS"
    ]
    assert unknown_env(["migrate"], {"ORDERLY_KAFKA_BOOTSTRAP": {}}) == ["ORDERLY_KAFKA_BOOTSTRAP"]

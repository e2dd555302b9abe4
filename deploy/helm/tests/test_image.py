"""The Dockerfile (not buildable here: no Docker engine) agrees with the chart: the same
non-root uid, the multi-call binary as entrypoint, built by the one documented command."""

from __future__ import annotations

import re

from conftest import REPO, pod_specs, rendered_set

DOCKERFILE = (REPO / "Dockerfile").read_text()
# Logical lines: backslash continuations joined.
LINES = [l.strip() for l in re.sub(r"\\\n", " ", DOCKERFILE).splitlines() if l.strip() and not l.startswith("#")]


def _final_stage() -> list[str]:
    starts = [i for i, l in enumerate(LINES) if l.upper().startswith("FROM ")]
    assert len(starts) >= 2, "a multi-stage build: build tools stay out of the runtime image"
    return LINES[starts[-1]:]


def test_binary_is_built_by_the_one_command():
    assert re.search(r"cargo build --release --locked --bin orderly\b", DOCKERFILE)
    assert any(l.startswith("FROM rust:") for l in LINES)


def test_runtime_is_the_multi_call_binary_as_the_pods_user():
    final = _final_stage()
    assert 'ENTRYPOINT ["/usr/local/bin/orderly"]' in final
    (user,) = [l.split()[1] for l in final if l.startswith("USER ")]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and uid != "0", "numeric non-root uid, checkable by runAsNonRoot"
    for where, spec in pod_specs(rendered_set("defaults")):
        assert spec["securityContext"]["runAsUser"] == int(uid), where
        assert spec["securityContext"]["runAsGroup"] == int(gid or uid), where


def test_build_context_keeps_what_cargo_needs():
    ignored = {l.strip() for l in (REPO / ".dockerignore").read_text().splitlines()
               if l.strip() and not l.startswith("#")}
    assert not ignored & {"Cargo.toml", "Cargo.lock", ".cargo", "src", "proto", "services"}
    assert "target" in ignored and ".git" in ignored

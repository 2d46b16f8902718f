"""The CLI's demo flow on ``--models-dir s3://bucket/prefix``: the installed script, real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from taskclf.samples import write_bundle

TASKCLF = str(Path(sys.executable).with_name("taskclf"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TASKCLF, *args], capture_output=True, text=True, env=os.environ.copy(), timeout=120
    )


def ok_json(*args: str) -> Any:
    done = run(*args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_demo_flow_on_an_s3_registry(s3_registry: str, tmp_path: Path) -> None:
    registry = ["--models-dir", s3_registry]
    for name, f1 in (("run_a", 0.7), ("run_b", 0.8), ("run_c", 0.6)):
        write_bundle(tmp_path / name, macro_f1=f1)
        ok_json("model", "promote", str(tmp_path / name), *registry)
    rows = ok_json("train", "list", *registry)
    assert [(r["model_id"], r["active"]) for r in rows] == [
        ("run_b", True),
        ("run_a", False),
        ("run_c", False),
    ]
    resolved = ok_json("model", "resolve", *registry)
    assert "run_b" in json.dumps(resolved)
    ok_json("model", "set-active", "run_c", *registry)
    history = ok_json("model", "history", *registry)
    assert len(history) == 3
    rolled = ok_json("model", "rollback", *registry)
    assert "run_b" in json.dumps(rolled)
    verified = ok_json("model", "verify", *registry)
    assert verified["healthy"] and verified["active_model_id"] == "run_b"
    ok_json("model", "index", *registry)
    assert ok_json("model", "index", "--read", *registry)["stale"] is False
    pruned = ok_json("model", "prune", "--keep", "1", "--keep-history", "0", "--yes", *registry)
    assert "run_a" in json.dumps(pruned)
    rows = ok_json("train", "list", *registry)
    assert [r["model_id"] for r in rows] == ["run_b"]


def test_a_missing_bucket_is_one_sentence(s3_server: object) -> None:
    done = run("train", "list", "--models-dir", "s3://no-such-bucket-anywhere/models")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "bucket 'no-such-bucket-anywhere' does not exist" in line
    # The store failed, not a configuration file: no advice to fix a registry.toml.
    assert "registry.toml" not in line and "configuration" not in line


def test_every_location_printed_pastes_back_as_an_s3_url(s3_registry: str, tmp_path: Path) -> None:
    registry = ["--models-dir", s3_registry]
    for name, f1 in (("run_a", 0.7), ("run_b", 0.8)):
        write_bundle(tmp_path / name, macro_f1=f1)
        ok_json("model", "promote", str(tmp_path / name), *registry)
    ok_json("model", "set-active", "--alias", "canary", "run_a", *registry)
    outputs = [
        run("model", "resolve", *registry),
        run("model", "resolve", "--alias", "canary", *registry),
        run("model", "aliases", "--json", *registry),
        run("model", "verify", *registry),
        run("model", "verify", "--json", *registry),
        run("model", "prune", "--keep", "1", "--dry-run", "--json", *registry),
        run("model", "show", "run_a", "--json", *registry),
        run("model", "rollback", "--dry-run", *registry),
        run("model", "index", *registry),
    ]
    printed = "".join(done.stdout + done.stderr for done in outputs)
    assert f"{s3_registry}/active.json" in outputs[0].stdout
    assert f"{s3_registry}/.aliases/canary.json" in outputs[1].stdout
    folded = "s3:/" + s3_registry.removeprefix("s3://")
    assert folded not in printed.replace(s3_registry, "")
    assert os.getcwd() not in printed


def test_a_conflicting_promotion_name_is_one_sentence(s3_registry: str, tmp_path: Path) -> None:
    write_bundle(tmp_path / "run_a", macro_f1=0.7)
    assert (
        run("model", "promote", str(tmp_path / "run_a"), "--models-dir", s3_registry).returncode
        == 0
    )
    done = run("model", "promote", str(tmp_path / "run_a"), "--models-dir", s3_registry)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "already exists" in done.stderr


def test_seal_on_an_s3_registry_explains_itself(s3_registry: str, tmp_path: Path) -> None:
    write_bundle(tmp_path / "run_a", macro_f1=0.7)
    assert (
        run("model", "promote", str(tmp_path / "run_a"), "--models-dir", s3_registry).returncode
        == 0
    )
    done = run("model", "seal", "run_a", "--models-dir", s3_registry)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "sealed when they are uploaded" in done.stderr


def test_report_on_an_s3_registry(s3_registry: str, tmp_path: Path) -> None:
    for name, f1 in (("run_a", 0.7), ("run_b", 0.8)):
        write_bundle(tmp_path / name, macro_f1=f1)
        assert (
            run("model", "promote", str(tmp_path / name), "--models-dir", s3_registry).returncode
            == 0
        )
    out = tmp_path / "report.html"
    done = run("report", "--out", str(out), "--models-dir", s3_registry)
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    assert "run_a" in html and "run_b" in html


def test_messages_name_remote_bundles_as_urls(s3_registry: str, tmp_path: Path) -> None:
    write_bundle(tmp_path / "run_a", macro_f1=0.7)
    promoted = ok_json("model", "promote", str(tmp_path / "run_a"), "--models-dir", s3_registry)
    assert json.dumps(promoted).count(f"{s3_registry}/run_a") >= 1
    assert "s3:/" + s3_registry[len("s3://") :] not in json.dumps(promoted)
    again = run("model", "promote", str(tmp_path / "run_a"), "--models-dir", s3_registry)
    assert again.returncode == 1
    assert f"already exists in {s3_registry};" in again.stderr
    missing = run("model", "set-active", "nope", "--models-dir", s3_registry)
    assert missing.returncode == 1
    assert f"{s3_registry}/nope" in missing.stderr, missing.stderr


def test_aliases_show_and_diff_from_the_cli_on_an_s3_registry(
    s3_registry: str, tmp_path: Path
) -> None:
    registry = ["--models-dir", s3_registry]
    for name, f1 in (("run_a", 0.7), ("run_b", 0.8)):
        write_bundle(tmp_path / name, macro_f1=f1)
        ok_json("model", "promote", str(tmp_path / name), *registry)
    ok_json("model", "set-active", "run_a", "--alias", "canary", "--pin", *registry)
    aliases = ok_json("model", "aliases", *registry)
    assert [(a["name"], a["model_id"], a["pinned"]) for a in aliases] == [
        ("active", "run_b", False),
        ("canary", "run_a", True),
    ]
    history = ok_json("model", "history", "--alias", "canary", *registry)
    assert len(history) == 1
    shown = ok_json("model", "show", "run_b", *registry)
    assert shown["model_id"] == "run_b" and shown["active"] is True
    diff = ok_json("model", "diff", "run_a", "run_b", *registry)
    assert "macro_f1" in json.dumps(diff)
    resolved = ok_json("model", "resolve", "--alias", "canary", *registry)
    assert "run_a" in json.dumps(resolved)

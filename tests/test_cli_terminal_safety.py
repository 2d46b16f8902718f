"""Values from disk are printed literally: never read as rich markup, never as terminal
control sequences (issue 10 items 7 and 8). Real bundle directories, the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from taskclf.cli.main import app
from taskclf.model_registry import read_active
from taskclf.samples import write_bundle

runner = CliRunner(env={"COLUMNS": None})


def run(*args: str | Path, stdin: str | None = None) -> Result:
    return runner.invoke(app, [str(a) for a in args], input=stdin)


def ok(result: Result, code: int = 0) -> str:
    """The command finished as a command (no traceback, no escaped exception)."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stdout


# --- item 7: rich markup -----------------------------------------------------------------


@pytest.fixture
def markup_registry(tmp_path: Path) -> Path:
    """A registry whose own path contains ``[/]`` (two components: ``reg[`` and ``]x``),
    with a bundle named like markup, a ``[/]`` schema hash and a ``[/]`` created_at."""
    root = tmp_path / "reg[" / "]x" / "models"
    root.mkdir(parents=True)
    write_bundle(root / "[bold]b0", macro_f1=0.9, seed=1)
    write_bundle(root / "b0", macro_f1=0.8, seed=2)
    write_bundle(root / "hash", macro_f1=0.7, seed=3, schema_hash="[/]")
    write_bundle(root / "when", macro_f1=0.6, seed=4, created_at="[/]")
    return root


def test_train_list_prints_markup_literally(markup_registry: Path) -> None:
    out = ok(run("train", "list", "--models-dir", markup_registry))

    assert "[bold]b0" in out  # not rendered as a bold "b0"
    hash_line = next(line for line in out.splitlines() if " hash " in line)
    assert "[/]" in hash_line
    when_line = next(line for line in out.splitlines() if " when " in line)
    assert "[/]" in when_line


def test_resolve_reports_its_repair_instead_of_crashing_after_it(markup_registry: Path) -> None:
    out = ok(run("model", "resolve", "--models-dir", markup_registry))

    assert str(markup_registry / "[bold]b0") in out
    assert "repaired active.json" in out
    pointer = read_active(markup_registry)
    assert pointer is not None and pointer.model_id == "[bold]b0"


def test_prune_reports_what_it_deleted_instead_of_crashing_after_it(
    markup_registry: Path,
) -> None:
    args = ["model", "prune", "--keep", "1", "--keep-history", "0", "--include-invalid"]
    out = ok(run(*args, "--models-dir", markup_registry, "--yes"))

    assert "Deleted 3 of 4 bundles" in out
    assert "[bold]b0" in out
    assert sorted(p.name for p in markup_registry.iterdir() if p.is_dir()) == ["[bold]b0"]


def test_history_prints_markup_literally(markup_registry: Path) -> None:
    ok(run("model", "set-active", "b0", "--models-dir", markup_registry))
    history = markup_registry / "active_history.jsonl"
    entry = json.loads(history.read_text().splitlines()[0])
    # The "from" column follows model_dir (what resolution follows); one that ends in no
    # plain name falls back to model_id, which carries the markup here.
    entry["old"] = {**entry["new"], "model_dir": ".", "model_id": "[/]"}
    entry["new"] = {**entry["new"], "reason": {"note": "[/]", "macro_f1": 0.8}}
    entry["at"] = "[/]"
    with history.open("a") as handle:
        handle.write(json.dumps(entry) + "\n")

    out = ok(run("model", "history", "--models-dir", markup_registry))

    newest = next(line for line in out.splitlines() if line.startswith("│ [/]"))
    assert newest.count("[/]") == 3  # when, from and note


def test_every_other_command_prints_markup_literally(markup_registry: Path, tmp_path: Path) -> None:
    where = ["--models-dir", str(markup_registry)]
    out = ok(run("model", "set-active", "--model-id", "[bold]b0", *where))
    assert out.startswith("Active model set to [bold]b0 (")
    ok(run("model", "set-active", "b0", *where))

    assert "from b0 to [bold]b0 " in ok(run("model", "rollback", *where))
    assert str(markup_registry / "index.json") in ok(run("model", "index", *where))
    read = ok(run("model", "index", "--read", *where))
    assert "[bold]b0" in read and str(markup_registry) in read
    verify = ok(run("model", "verify", *where), code=1)  # "when" is invalid
    assert "[when]" in verify and str(markup_registry) in verify

    candidate = write_bundle(tmp_path / "in" / "[red]new", macro_f1=0.95, seed=9)
    promoted = ok(run("model", "promote", candidate, *where))
    assert "Promoted [red]new into the registry at " in promoted
    assert "moved from [bold]b0 to [red]new" in promoted


# --- item 8: control characters ----------------------------------------------------------

HOSTILE = {
    "osc\x1b]0;pwned\x07": "osc\\x1b]0;pwned\\x07",
    "csi\x1b[2J": "csi\\x1b[2J",
    "cr\rfake": "cr\\rfake",
    "c1\x9b31m": "c1\\x9b31m",
    "del\x7fx": "del\\x7fx",
    "bidi\u202eevil": "bidi\\u202eevil",
}
RAW = [b"\x1b", b"\x07", b"\r", b"\x7f", "\x9b".encode(), "\u202e".encode()]


def _installed_script() -> Path:
    script = Path(sys.executable).parent / "taskclf"
    if not script.exists():
        pytest.skip("the taskclf console script is not installed next to this interpreter")
    return script


def _run_script(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, bytes, bytes]:
    environment = {**os.environ, **(env or {})}
    environment.pop("COLUMNS", None)
    result = subprocess.run(
        [_installed_script(), *map(str, args)], capture_output=True, env=environment, check=False
    )
    return result.returncode, result.stdout, result.stderr


def _assert_no_raw_controls(data: bytes) -> None:
    found = [raw for raw in RAW if raw in data]
    assert found == [], data[:2000]


@pytest.fixture
def hostile_registry(models_dir: Path) -> Path:
    for seed, name in enumerate(HOSTILE):
        write_bundle(models_dir / name, seed=seed)
    return models_dir


@pytest.mark.parametrize("fillers", [0, 500], ids=["rich-table", "plain-text-table"])
def test_bundle_names_with_control_characters_are_escaped_in_tables(
    hostile_registry: Path, fillers: int
) -> None:
    for i in range(fillers):  # empty directories: invalid bundles, cheap to scan
        (hostile_registry / f"filler-{i:03d}").mkdir()

    code, out, err = _run_script("train", "list", "--models-dir", hostile_registry)

    assert code == 0, err
    _assert_no_raw_controls(out + err)
    text = out.decode()
    for visible in HOSTILE.values():
        assert visible in text


def test_warnings_and_errors_on_stderr_are_escaped(tmp_path: Path) -> None:
    root = tmp_path / "reg\x1b]0;pwned\x07" / "models"
    write_bundle(root / "a", seed=1)

    code, out, err = _run_script("model", "resolve", "--models-dir", root)  # warns: no pointer
    assert code == 0, err
    assert "warning: No valid active pointer in " in err.decode()
    assert "reg\\x1b]0;pwned\\x07" in err.decode()
    _assert_no_raw_controls(out + err)

    code, out, err = _run_script("model", "set-active", "ghost\x1b[2J\r", "--models-dir", root)
    assert code == 1
    assert "ghost\\x1b[2J\\r" in err.decode()
    _assert_no_raw_controls(out + err)

    code, out, err = _run_script(
        "model", "set-active", "ghost\x1b[2J", "--debug", "--models-dir", root
    )
    assert code == 1 and b"Traceback" in err
    _assert_no_raw_controls(out + err)


def test_json_output_stays_valid_and_exact_with_control_characters(
    hostile_registry: Path,
) -> None:
    code, out, err = _run_script("train", "list", "--json", "--models-dir", hostile_registry)

    assert code == 0, err
    _assert_no_raw_controls(out + err)
    assert {row["model_id"] for row in json.loads(out)} == set(HOSTILE)

    code, out, err = _run_script(
        "model", "set-active", "csi\x1b[2J", "--json", "--models-dir", hostile_registry
    )
    assert code == 0, err
    assert json.loads(out)["model_id"] == "csi\x1b[2J"
    _assert_no_raw_controls(out + err)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("plain ascii", '"plain ascii"'),
        ("del\x7fonly ascii", '"del\\u007fonly ascii"'),
        ("c1\x9b and é", '"c1\\u009b and é"'),
        ("bidi\u202e", '"bidi\\u202e"'),
        ("s3:/bucket/models", '"s3://bucket/models"'),
        ("see s3:/bucket and \x7f", '"see s3://bucket and \\u007f"'),
    ],
)
def test_json_text_escapes_what_a_terminal_acts_on_and_unfolds_s3(value: str, shown: str) -> None:
    from taskclf.cli.output import json_text

    assert json_text(value) == shown
    assert json.loads(json_text(value)) == value.replace("s3:/b", "s3://b")


def test_clean_escapes_every_control_character_and_nothing_else() -> None:
    from taskclf.cli.output import clean

    controls = [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]]
    for char in controls:
        escaped = clean(f"a{char}b")
        assert escaped.startswith("a\\") and escaped.endswith("b")
        assert all(0x20 <= ord(c) < 0x7F for c in escaped)
    assert clean("[bold]b0 é 模型 ✓") == "[bold]b0 é 模型 ✓"
    assert clean("x\udcff") == "x\\udcff"  # an undecodable file name cannot crash a print


def test_only_the_output_module_prints() -> None:
    """The escaping is a property of ``cli/output.py`` only if nothing else prints: a new
    command that writes to the terminal itself (or builds its own rich renderable) would
    bypass it. Commands render through ``output``'s functions instead."""
    import re

    import taskclf.cli

    forbidden = re.compile(
        r"sys\.std(out|err)|\bprint\(|\.print\(|typer\.(echo|secho|confirm|prompt)"
        r"|\bclick\.(echo|secho)|^\s*(from|import) rich\b",
        flags=re.MULTILINE,
    )
    cli_dir = Path(taskclf.cli.__file__).parent
    sources = [p for p in sorted(cli_dir.glob("*.py")) if p.name != "output.py"]
    sources.append(cli_dir.parent / "demo.py")
    offenders = [
        f"{path.name}: {match.group()}"
        for path in sources
        for match in forbidden.finditer(path.read_text())
    ]
    assert offenders == []

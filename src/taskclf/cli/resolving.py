"""The body of ``taskclf model resolve``, without typer.

One implementation for both ways the command runs: the typer command
(:func:`taskclf.cli.model.resolve`) and the console script's fast path
(:mod:`taskclf.cli.entry`), which calls it without importing typer, since
services run ``model resolve`` as a health check and start-up dominates it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskclf.cli.policy import registry_problem

if TYPE_CHECKING:
    from taskclf.model_registry import ModelBundle, SelectionReport

DEFAULT_ALIAS = "active"


def run_resolve(models_dir: Path, alias: str, labels: str | None, *, json_mode: bool) -> int:
    """Show the bundle inference would run, and whether the pointer had to be repaired.

    Args:
        models_dir: The registry (``--models-dir``).
        alias: Which pointer to follow (``--alias``).
        labels: Comma-separated labels overriding the registry's (``--labels``).
        json_mode: Print one JSON document (``--json``).

    Returns:
        The exit status: 0, or 1 after printing why nothing can be resolved.

    Raises:
        RegistryError: An expected failure (bad alias, malformed configuration...);
            the caller's error policy prints its sentence.
    """
    # Imported here, as in every command module: `taskclf --help` imports this one.
    from taskclf.cli import output
    from taskclf.model_registry import resolve_cache
    from taskclf.model_registry.locations import is_remote

    root, problem = registry_problem(models_dir)
    if problem is not None:
        output.print_error(problem, json_mode=json_mode)
        return 1
    # A health check of an unchanged registry: the answer stored with the stat keys of
    # every file it came from, without importing pydantic (see resolve_cache).
    cached = not is_remote(root)  # an object store has no stat to key an answer by
    answer = resolve_cache.lookup(root, alias, labels) if cached else None
    if answer is None:
        answer = _resolve(root, alias, labels, json_mode=json_mode, store=cached)
        if answer is None:
            return 1
    data, detail = answer["data"], answer["detail"]
    if json_mode:
        output.emit_json(data)
    else:
        output.render_resolution(
            data["active"], data["source"], detail, alias=alias, pinned=data.get("pinned", False)
        )
    return 0


def _resolve(root: Path, alias: str, labels: str | None, *, json_mode: bool, store: bool) -> Any:
    """Resolve through the library; the answer (``data`` and ``detail``), or ``None`` after
    printing why nothing can be resolved. A healthy pointer's answer is stored for the next."""
    from taskclf.cli import output
    from taskclf.model_registry.aliases import alias_paths
    from taskclf.model_registry.config import CONFIG_FILE, load_registry_config
    from taskclf.model_registry.resolution import resolve_active_model
    from taskclf.model_registry.resolve_cache import Recorder

    with Recorder(root, alias, labels) as recorder:
        config = load_registry_config(root, labels=labels)
        with output.scanning(root, json_mode=json_mode):
            bundle, report = resolve_active_model(root, config=config, alias=alias)
        if bundle is None:
            assert report is not None
            if json_mode:
                # The error shape of every failure, plus the exclusions that explain it.
                sentence = output.no_eligible_message(report, root)
                message = sentence[:-1] + "." if sentence.endswith(":") else sentence
                output.print_error(message)
                output.emit_json({"error": message, "excluded": output.exclusions_json(report)})
            else:
                output.render_no_eligible(report, root)
            return None
        data, detail = resolution_view(root, bundle, report, alias=alias)
    answer = {"data": data, "detail": detail}
    if report is None and store:
        recorder.store(alias_paths(root, alias).pointer, root / CONFIG_FILE, bundle.path, answer)
    return answer


def resolution_view(
    root: Path, bundle: ModelBundle, report: SelectionReport | None, *, alias: str = DEFAULT_ALIAS
) -> tuple[dict[str, Any], str]:
    """The JSON document and the explaining sentence of a successful resolution."""
    from taskclf.cli import output
    from taskclf.model_registry.aliases import alias_paths
    from taskclf.model_registry.pointer import locate_active_bundle, read_active

    pointer = read_active(root, alias=alias)
    pinned = pointer is not None and pointer.pinned
    data: dict[str, Any] = {"active": output.bundle_summary(bundle)}
    file = alias_paths(root, alias).pointer
    label = "the active pointer" if alias == DEFAULT_ALIAS else f"the pointer of alias {alias}"
    if report is None:
        data.update(source="pointer", pointer_repaired=False, alias=alias, pinned=pinned)
        return data, f"Followed {label} ({file}) to {bundle.model_id}."
    # Quietly: resolution has already warned about the pointer it could not use.
    repaired = locate_active_bundle(root, warn=False, alias=alias) == bundle.path
    data.update(
        source="scan",
        pointer_repaired=repaired,
        ranked=len(report.ranked),
        excluded=output.exclusions_json(report),
        alias=alias,
        pinned=pinned,
    )
    if pinned and not repaired:
        outcome = (
            f"WITHOUT moving the pointer: {file.name} is pinned to a bundle that cannot be used "
            f"(unpin it or `taskclf model set-active --alias {alias} --model-id ID`)"
        )
    elif repaired:
        outcome = f"and repaired {file.name} to point at it"
    else:
        outcome = f"but could not repair {file.name} (see the warning above)"
    detail = (
        f"{label[:1].upper()}{label[1:]} was missing or unusable: scanned the registry, selected "
        f"{bundle.model_id} (best of {len(report.ranked)} eligible, "
        f"{len(report.excluded)} excluded) {outcome}."
    )
    return data, detail

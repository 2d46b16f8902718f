"""``taskclf report``: one self-contained, interactive HTML page about a registry.

Two steps: :func:`build_report_data` scans the registry once into a
:class:`ReportData` (pure data, also what ``--json`` prints), and
:func:`render_report` turns it into HTML. plotly (the ``report`` extra)
is imported only by the render step.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from taskclf.report.data import (
    INELIGIBLE_POINT_LIMIT,
    RANKING_LIMIT,
    ClassScore,
    HistoryRow,
    MatrixView,
    Overview,
    ProductionStep,
    RankingRow,
    ReportData,
    TimePoint,
    build_report_data,
)
from taskclf.report.render import render_report

__all__ = [
    "INELIGIBLE_POINT_LIMIT",
    "RANKING_LIMIT",
    "ClassScore",
    "HistoryRow",
    "MatrixView",
    "Overview",
    "ProductionStep",
    "RankingRow",
    "ReportData",
    "TimePoint",
    "build_report_data",
    "render_report",
    "write_html",
    "write_report",
]


def write_html(out: str | os.PathLike[str], page: str) -> Path:
    """Write a rendered page to ``out`` atomically (old or new content, never half).

    Returns:
        The absolute path written.

    Raises:
        OSError: The file cannot be written (its directory is missing, say).
    """
    from taskclf.model_registry._fs import absolute, atomic_write

    path = absolute(out)
    # Strings from disk may hold lone surrogates (JSON "\\ud800"), which UTF-8 cannot encode.
    atomic_write(path, page.encode("utf-8", errors="replace"))
    return path


def write_report(
    models_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    compare: tuple[str, str] | None = None,
    now: datetime | None = None,
) -> Path:
    """Build the report of ``models_dir`` and write it to ``out`` atomically.

    Args:
        models_dir: The registry directory.
        out: The HTML file to write (replaced whole; its directory must exist).
        compare: Two model ids to compare instead of active vs best challenger.
        now: The generation time (default: now).

    Returns:
        The absolute path written.

    Raises:
        ReportExtraMissingError: plotly is not installed.
        BundleError: A ``compare`` id is unknown or has no metrics.
        OSError: The file cannot be written.
    """
    data = build_report_data(models_dir, compare=compare, now=now)
    return write_html(out, render_report(data))

"""Measure ``taskclf report`` at scale, and take the README's screenshots of the demo report.

Not a test: timings depend on the machine. Usage, from the repository root::

    python -m bench.report [--n 10000] [--rounds 3]
    python -m bench.report --screenshots docs/

The first form generates (or reuses) a registry of N bundles under
``bench/results/registries/`` (three schema versions, 5% invalid, 5%
incompatible, an active pointer), then reports:

- **build**: wall time of ``taskclf report`` as a whole process (scan,
  verify, render, write), median of the rounds, and the file size;
- **render**: in headless Chromium, from navigation start to every chart
  drawn (the page records ``performance.now()`` when the last
  ``Plotly.newPlot`` promise resolves), median of the rounds.

The second form builds the demo registry (``taskclf demo``) and saves one
PNG per report section into the given directory.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.browser import chromium, console_errors, missing_browser, wait_for_plots
from bench.generate import RegistrySpec, ensure_registry

RESULTS = Path(__file__).parent / "results"
SECTIONS = {
    "report-overview.png": ("overview", "quality"),
    "report-ranking.png": ("ranking-section", "history-section"),
    "report-matrices.png": ("matrices",),
}
"""Screenshot file -> the report sections it shows, top to bottom."""


def _taskclf() -> str:
    return str(Path(sys.executable).with_name("taskclf"))


def measure(n: int, rounds: int) -> None:
    """Print build time, file size and browser render time of the N-bundle report."""
    problem = missing_browser()
    if problem is not None:
        sys.exit(f"cannot measure the render time: {problem}")
    spec = RegistrySpec(n=n, versions=("v1", "v2", "v3"), active=True)
    models_dir = ensure_registry(RESULTS / "registries", spec)
    out = RESULTS / f"report-n{n}.html"
    command = [_taskclf(), "report", "--models-dir", str(models_dir), "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True)  # warm the page cache
    builds = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        builds.append(time.perf_counter() - start)
    renders = []
    with chromium() as driver:
        for _ in range(rounds):
            driver.get(out.as_uri())
            wait_for_plots(driver)
            errors = console_errors(driver)
            if errors:
                sys.exit(f"console errors: {errors}")
            renders.append(
                float(driver.execute_script("return document.body.dataset.plotsMs")) / 1000
            )
    size = out.stat().st_size
    print(f"registry: {models_dir} ({n:,} bundles)")
    print(f"command:  {' '.join(command)}")
    print(f"size:     {size / 1e6:.2f} MB ({out})")
    print(f"build:    {statistics.median(builds):.2f} s median of {rounds} (process wall)")
    print(f"render:   {statistics.median(renders):.2f} s median of {rounds} (navigation to drawn)")


def screenshots(directory: Path) -> None:
    """Save PNGs of the demo registry's report sections into ``directory``."""
    problem = missing_browser()
    if problem is not None:
        sys.exit(f"cannot take screenshots: {problem}")
    directory.mkdir(parents=True, exist_ok=True)
    workspace = Path(tempfile.mkdtemp(prefix="taskclf-shots-")) / "ws"
    subprocess.run(
        [_taskclf(), "demo", "--dir", str(workspace), "--json"], check=True, capture_output=True
    )
    report = workspace / "report.html"
    with chromium(width=1280, height=900) as driver:
        driver.get(report.as_uri())
        wait_for_plots(driver)
        for name, sections in SECTIONS.items():
            # Show only these sections, so the page's own screenshot is exactly them.
            driver.execute_script(
                "var keep = arguments[0];"
                "document.querySelectorAll('section').forEach(function (s) {"
                "  s.style.display = keep.indexOf(s.id) === -1 ? 'none' : ''; });"
                "window.dispatchEvent(new Event('resize'));",
                list(sections),
            )
            driver.set_window_size(1280, 300)  # scrollHeight is at least the window's height
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(1280, int(height) + 140)
            time.sleep(0.5)  # let plotly's resize handler redraw (a screenshot, not a test)
            path = directory / name
            driver.save_screenshot(str(path))
            print(f"{path}: {path.stat().st_size / 1e3:.0f} KB")


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=10_000, help="bundles in the registry")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per figure (median)")
    parser.add_argument(
        "--screenshots", type=Path, help="save the demo report's screenshots here instead"
    )
    args = parser.parse_args(argv)
    if args.screenshots is not None:
        screenshots(args.screenshots)
    else:
        measure(args.n, args.rounds)


if __name__ == "__main__":
    main()

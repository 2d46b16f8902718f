"""Registry benchmark runner: every figure, its baseline, the ratio and the target.

Usage (from the repository root)::

    python -m bench.run            # full: N = 1,000 / 10,000 / 50,000, 9 rounds
    python -m bench.run --quick    # smoke test: small N, 5 rounds

Every round of every figure runs in a fresh process, so import costs and
peak RSS are honest; a figure is the median of its rounds, and each
figure gets one unrecorded warm-up process first, so the page cache is
warm for the floor and for the code alike. Baselines are measured in the
same run. Registries are generated once under ``bench/results/`` (git-
ignored) and reused by later runs. The table is printed and also saved to
``bench/results/latest.md`` and ``latest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.generate import RegistrySpec, ensure_registry, generate

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
MB = 1024 * 1024


@dataclass
class Measurement:
    """The rounds of one figure, each from a fresh process."""

    seconds: list[float]
    """Per round: the operation's own time (in-process) or the process wall time."""
    walls: list[float]
    """Per round: wall time of the whole process."""
    rss_kb: list[int]
    """Per round: peak RSS of the process."""
    cpu: list[float] = field(default_factory=list)
    """Per round: CPU time of the same span as ``seconds``."""
    process_cpu: list[float] = field(default_factory=list)
    """Per round: CPU time of the whole process."""
    check: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        """The figure: median of the rounds."""
        return statistics.median(self.seconds)

    @property
    def wall(self) -> float:
        """Median process wall time."""
        return statistics.median(self.walls)

    @property
    def peak_rss_mb(self) -> float:
        """Largest peak RSS over the rounds, in MiB."""
        return max(self.rss_kb) * 1024 / MB


@dataclass
class Row:
    """One line of the result table."""

    figure: str
    value: str
    baseline: str = ""
    ratio: float | None = None
    target: str = ""
    status: str = ""
    rss_mb: float | None = None
    cpu_ratio: float | None = None
    """The same ratio in CPU time (information: the target is judged on the median)."""


# Runs the measured process as its own child and reports its wall time and rusage.
# Linux carries the parent's RSS high-water mark across fork + exec into the child's
# ru_maxrss, so a child forked straight from this runner (which holds registries'
# worth of parsed output) would report the runner's peak; this launcher is a bare
# ``python -S`` of a few MiB, far below any figure, so the peak reported is the child's.
_LAUNCHER = """
import json, os, sys, time
report, argv = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.posix_spawn(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
with open(report, "w") as handle:
    json.dump({"wall": wall, "maxrss_kb": usage.ru_maxrss,
               "cpu": usage.ru_utime + usage.ru_stime,
               "code": os.waitstatus_to_exitcode(status)}, handle)
"""


def spawn(
    argv: Sequence[str], env: dict[str, str] | None = None, ok_codes: Sequence[int] = (0,)
) -> tuple[float, float, int, bytes]:
    """Run ``argv`` to completion: ``(wall seconds, CPU seconds, peak RSS in KiB, stdout)``.

    ``argv[0]`` must be a path to an executable.

    Raises:
        RuntimeError: The process failed.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.TemporaryDirectory(prefix="taskclf-bench-") as scratch,
    ):
        report = os.path.join(scratch, "report.json")
        launcher = [sys.executable, "-S", "-c", _LAUNCHER, report, *argv]
        subprocess.run(launcher, stdout=out, stderr=err, cwd=REPO, env=env, check=False)
        try:
            with open(report, "rb") as handle:
                result = json.load(handle)
        except (OSError, ValueError):
            result = {"code": -1}
        out.seek(0)
        err.seek(0)
        if result["code"] not in ok_codes:
            detail = err.read().decode(errors="replace").strip()[-2000:]
            raise RuntimeError(f"{' '.join(argv)} exited {result['code']}: {detail}")
        wall, cpu, rss = float(result["wall"]), float(result["cpu"]), int(result["maxrss_kb"])
        return wall, cpu, rss, out.read()


@dataclass(frozen=True)
class Job:
    """A process to run once per round: a ``bench.probe`` operation or a plain command."""

    argv: tuple[str, ...]
    in_process: bool
    """True for ``bench.probe`` (the figure is its in-process timing), else the wall time."""
    env: dict[str, str] | None = None
    ok_codes: tuple[int, ...] = (0,)


def probe_job(operation: str, root: Path, repeat: int = 1, cache: str = "empty") -> Job:
    """A ``bench.probe`` run of ``operation`` on ``root`` (``cache``: see ``bench.probe``)."""
    argv = (
        sys.executable,
        "-m",
        "bench.probe",
        operation,
        str(root),
        f"--repeat={repeat}",
        f"--cache={cache}",
    )
    return Job(argv, in_process=True)


def command_job(
    argv: Sequence[str], env: dict[str, str] | None = None, ok_codes: tuple[int, ...] = (0,)
) -> Job:
    """A whole process whose wall time is the figure."""
    return Job(tuple(argv), in_process=False, env=env, ok_codes=ok_codes)


def interleaved(jobs: Sequence[Job], rounds: int) -> list[Measurement]:
    """Measure ``jobs`` against each other: one warm-up each, then rounds of A, B, ... in turn.

    Interleaving means a burst of load from elsewhere on the machine hits
    a figure and its baseline alike instead of skewing their ratio.
    """
    for job in jobs:
        spawn(job.argv, job.env, job.ok_codes)
    measurements = [Measurement([], [], []) for _ in jobs]
    for _ in range(rounds):
        for job, measurement in zip(jobs, measurements, strict=True):
            wall, cpu, rss, out = spawn(job.argv, job.env, job.ok_codes)
            if job.in_process:
                result = json.loads(out)
                measurement.seconds.append(result["seconds"])
                measurement.cpu.append(result["cpu_seconds"])
                measurement.check = result["check"]
            else:
                measurement.seconds.append(wall)
                measurement.cpu.append(cpu)
                measurement.check = {"stdout": out.decode(errors="replace")}
            measurement.walls.append(wall)
            measurement.process_cpu.append(cpu)
            measurement.rss_kb.append(rss)
    return measurements


def paired(figure: Sequence[float], baseline: Sequence[float]) -> float:
    """Median of the per-round ratios of two interleaved measurements.

    Each round's figure and baseline ran back to back, so their ratio
    cancels slow swings of the machine's load better than a ratio of medians.
    """
    return statistics.median(f / b for f, b in zip(figure, baseline, strict=True))


def fmt_time(seconds: float) -> str:
    """Seconds in a readable unit."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def judge(ratio: float, limit: float) -> str:
    """PASS or FAIL for a ratio that must not exceed ``limit``."""
    return "PASS" if ratio <= limit else "FAIL"


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise RuntimeError(f"benchmark sanity check failed: {message}")


@dataclass(frozen=True)
class Plan:
    """Sizes and rounds of one run."""

    sizes: tuple[int, ...]
    mid: int
    small: int
    rounds: int
    resolve_repeat: int
    write_repeat: int
    large_rounds: int
    """Rounds of the whole-process CLI figures at the largest N (each takes seconds)."""


FULL = Plan(
    sizes=(1_000, 10_000, 100_000),
    mid=10_000,
    small=100,
    rounds=9,
    resolve_repeat=200,
    write_repeat=30,
    large_rounds=3,
)
QUICK = Plan(
    sizes=(200, 1_000, 2_000),
    mid=1_000,
    small=100,
    rounds=5,
    resolve_repeat=100,
    write_repeat=10,
    large_rounds=3,
)


def taskclf_script() -> str | None:
    """The installed ``taskclf`` console script next to this interpreter, if any."""
    candidate = Path(sys.executable).with_name("taskclf")
    if candidate.is_file():
        return str(candidate)
    return shutil.which("taskclf")


def cli_env() -> dict[str, str]:
    """A neutral environment for the CLI processes (no registry default, fixed width)."""
    env = {k: v for k, v in os.environ.items() if k != "TASKCLF_MODELS_DIR"}
    env.update({"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"})
    return env


def measure(plan: Plan, registries: Path) -> list[Row]:
    """Run every figure of ``plan`` and return the table rows."""
    say = _progress
    roots: dict[int, Path] = {}
    for n in sorted({*plan.sizes, plan.small}):
        say(f"registry N={n:,}")
        roots[n] = ensure_registry(registries, RegistrySpec(n=n, active=True))
    script = taskclf_script()
    env = cli_env()
    cli_problem = _cli_problem(script, env)

    floors: dict[int, Measurement] = {}
    finds: dict[int, Measurement] = {}
    listed: Measurement | None = None
    for n in plan.sizes:
        # A first scan: each process starts with an empty scan cache and writes it.
        say(f"floor, find_best_model{', list_bundles' if n == plan.mid else ''} N={n:,}")
        jobs = [probe_job("floor", roots[n]), probe_job("find_best", roots[n])]
        if n == plan.mid:
            jobs.append(probe_job("list_bundles", roots[n]))
        results = interleaved(jobs, plan.rounds)
        floors[n], finds[n] = results[0], results[1]
        _expect(floors[n].check["bundles"] == n, f"floor saw {floors[n].check} of {n}")
        _expect(finds[n].check["bundles"] == n, f"find_best_model accounted {finds[n].check}")
        _expect(finds[n].check["ranked"] > 0, "find_best_model ranked nothing")
        if n == plan.mid:
            listed = results[2]
            _expect(listed.check["bundles"] == n, f"list_bundles returned {listed.check}")

    rows = [
        Row(
            f"floor: read + json.loads, N={n:,}",
            fmt_time(floors[n].median),
            rss_mb=floors[n].peak_rss_mb,
        )
        for n in plan.sizes
    ]
    lo, hi = min(plan.sizes), max(plan.sizes)
    for n in plan.sizes:
        ratio = paired(finds[n].seconds, floors[n].seconds)
        judged = n in (plan.mid, hi)
        rows.append(
            Row(
                f"find_best_model, first scan (no scan cache yet), N={n:,}",
                fmt_time(finds[n].median),
                f"floor N={n:,}: {fmt_time(floors[n].median)}",
                ratio,
                "≤ 1.5x" if judged else "(info)",
                judge(ratio, 1.5) if judged else "",
                finds[n].peak_rss_mb,
                paired(finds[n].cpu, floors[n].cpu),
            )
        )
    per_lo, per_hi = finds[lo].median / lo, finds[hi].median / hi
    floor_growth = (floors[hi].median / hi) / (floors[lo].median / lo)
    rows.append(
        Row(
            f"find_best_model per bundle, N={hi:,}",
            fmt_time(per_hi),
            f"per bundle N={lo:,}: {fmt_time(per_lo)}",
            per_hi / per_lo,
            f"(info; floor: {floor_growth:.2f}x)",
        )
    )
    # Reading the files is not linear itself (directory and page-cache effects): the
    # code is linear when its cost per bundle grows no faster than the floor's.
    growth = (per_hi / per_lo) / floor_growth
    rows.append(
        Row(
            f"linear in N: per-bundle growth {lo:,} -> {hi:,}, relative to the floor's",
            f"{per_hi / per_lo:.2f}x",
            f"floor: {floor_growth:.2f}x",
            growth,
            "(info)",
        )
    )
    per_mid = finds[plan.mid].median / plan.mid
    floor_growth_mid = (floors[hi].median / hi) / (floors[plan.mid].median / plan.mid)
    growth_mid = (per_hi / per_mid) / floor_growth_mid
    rows.append(
        Row(
            f"linear in N: per-bundle growth {plan.mid:,} -> {hi:,}, relative to the floor's",
            f"{per_hi / per_mid:.2f}x",
            f"floor: {floor_growth_mid:.2f}x",
            growth_mid,
            "≤ 1.3x",
            judge(growth_mid, 1.3),
        )
    )
    rss = finds[plan.mid].peak_rss_mb
    rows.append(
        Row(
            f"peak RSS, process ranking N={plan.mid:,}",
            f"{rss:.1f} MiB",
            f"floor process: {floors[plan.mid].peak_rss_mb:.1f} MiB",
            rss / floors[plan.mid].peak_rss_mb,
            "≤ 100 MB",
            "PASS" if rss * MB <= 100 * 1000 * 1000 else "FAIL",
            rss,
        )
    )
    rss_hi = finds[hi].peak_rss_mb
    rows.append(
        Row(
            f"peak RSS, process ranking N={hi:,} (first scan)",
            f"{rss_hi:.1f} MiB",
            f"floor process: {floors[hi].peak_rss_mb:.1f} MiB",
            rss_hi / floors[hi].peak_rss_mb,
            "≤ 400 MiB",
            "PASS" if rss_hi <= 400 else "FAIL",
            rss_hi,
        )
    )
    assert listed is not None
    rows.append(
        Row(
            f"list_bundles, N={plan.mid:,}",
            fmt_time(listed.median),
            f"floor N={plan.mid:,}: {fmt_time(floors[plan.mid].median)}",
            paired(listed.seconds, floors[plan.mid].seconds),
            "(info)",
            rss_mb=listed.peak_rss_mb,
            cpu_ratio=paired(listed.cpu, floors[plan.mid].cpu),
        )
    )

    say(f"resolve_active_model N={plan.small:,} and N={plan.mid:,}")
    small, mid = interleaved(
        [
            probe_job("resolve", roots[plan.small], plan.resolve_repeat),
            probe_job("resolve", roots[plan.mid], plan.resolve_repeat),
        ],
        plan.rounds,
    )
    for n, measurement in ((plan.small, small), (plan.mid, mid)):
        _expect(measurement.check["from_pointer"] is True, f"pointer not followed at N={n}")
    ratio = paired(mid.seconds, small.seconds)
    rows.append(
        Row(
            f"resolve_active_model, valid pointer, N={plan.small:,}",
            fmt_time(small.median),
            rss_mb=small.peak_rss_mb,
        )
    )
    rows.append(
        Row(
            f"resolve_active_model, valid pointer, N={plan.mid:,}",
            fmt_time(mid.median),
            f"N={plan.small:,}: {fmt_time(small.median)}",
            ratio,
            "≤ 1.5x",
            judge(ratio, 1.5),
            mid.peak_rss_mb,
            paired(mid.cpu, small.cpu),
        )
    )

    say("write_active_atomic")
    with tempfile.TemporaryDirectory(prefix="taskclf-bench-") as scratch:
        root = Path(scratch) / "models"
        generate(root, RegistrySpec(n=20, invalid=0.0, incompatible=0.0, active=True), workers=1)
        floor_w, write = interleaved(
            [
                probe_job("atomic_floor", root, plan.write_repeat),
                probe_job("write_active", root, plan.write_repeat),
            ],
            plan.rounds,
        )
    rows.append(
        Row(
            "write_active_atomic (lock + history + replace, fsynced)",
            f"{1 / write.median:,.0f} ops/s",
            f"bare fsynced replace: {1 / floor_w.median:,.0f} ops/s",
            paired(write.seconds, floor_w.seconds),
            "(info)",
            rss_mb=write.peak_rss_mb,
        )
    )

    if script is None or cli_problem is not None:
        reason = cli_problem or "taskclf console script not installed"
        say(f"CLI figures skipped: {reason}")
        return [*rows, Row("CLI figures", "n/a", target=reason[:60], status="SKIP")]
    rows += measure_cache(plan, roots, script, env)
    rows += measure_large_cli(plan, roots[hi], script, env, floors[hi])
    rows += measure_start_up(plan, roots[plan.mid], script, env)
    say("taskclf --help")
    bare, helped = interleaved(
        [
            command_job([sys.executable, "-c", "import typer, pydantic"], env),
            command_job([script, "--help"], env),
        ],
        plan.rounds,
    )
    _expect("train" in helped.check["stdout"], "taskclf --help does not list `train`")
    help_ratio = paired(helped.seconds, bare.seconds)
    rows.append(
        Row(
            "taskclf --help (process wall)",
            fmt_time(helped.median),
            f'python -c "import typer, pydantic": {fmt_time(bare.median)}',
            help_ratio,
            "≤ 1.5x",
            judge(help_ratio, 1.5),
            helped.peak_rss_mb,
            paired(helped.process_cpu, bare.process_cpu),
        )
    )
    return rows


def measure_cache(
    plan: Plan, roots: dict[int, Path], script: str, env: dict[str, str]
) -> list[Row]:
    """Repeat scans served by the scan cache: unchanged, and with 1% changed or added since."""
    say = _progress
    root = roots[plan.mid]
    warm = RESULTS / "scan-cache" / f"n{plan.mid}"
    shutil.rmtree(warm, ignore_errors=True)
    warm_env = {**env, "TASKCLF_CACHE_DIR": str(warm)}
    say(f"repeat scans (scan cache warm), train list, N={plan.mid:,}")
    # The warm-up process of the find_best job writes the cache; every round reuses it.
    floor, repeat, listing = interleaved(
        [
            probe_job("floor", root),
            probe_job("find_best", root, cache=f"warm:{warm}"),
            command_job([script, "train", "list", "--json", "--models-dir", str(root)], warm_env),
        ],
        plan.rounds,
    )
    _expect(repeat.check["bundles"] == plan.mid, f"repeat find_best_model saw {repeat.check}")
    printed = json.loads(listing.check["stdout"])
    _expect(len(printed) == plan.mid, f"train list printed {len(printed)} rows")
    stale = RESULTS / "scan-cache" / f"n{plan.mid}-stale.cache"
    missed = write_stale_cache(root, warm, stale, every=100)
    say(f"scan with {missed} of {plan.mid:,} bundles changed or added since, N={plan.mid:,}")
    floor_s, changed = interleaved(
        [probe_job("floor", root), probe_job("find_best", root, cache=f"copy:{stale}")],
        plan.rounds,
    )
    repeat_ratio = paired(repeat.seconds, floor.seconds)
    changed_ratio = paired(changed.seconds, floor_s.seconds)
    list_ratio = paired(listing.seconds, repeat.walls)
    return [
        Row(
            f"find_best_model, repeat scan (cache warm, nothing changed), N={plan.mid:,}",
            fmt_time(repeat.median),
            f"floor N={plan.mid:,}: {fmt_time(floor.median)}",
            repeat_ratio,
            "≤ 0.35x",
            judge(repeat_ratio, 0.35),
            repeat.peak_rss_mb,
            paired(repeat.cpu, floor.cpu),
        ),
        Row(
            f"find_best_model, {missed} bundles (1%) changed or added since, N={plan.mid:,}",
            fmt_time(changed.median),
            f"floor N={plan.mid:,}: {fmt_time(floor_s.median)}",
            changed_ratio,
            "≤ 0.45x",
            judge(changed_ratio, 0.45),
            changed.peak_rss_mb,
            paired(changed.cpu, floor_s.cpu),
        ),
        Row(
            f"taskclf train list --json, N={plan.mid:,}, cache warm (process wall)",
            fmt_time(listing.median),
            f"find_best_model process wall, cache warm: {fmt_time(repeat.wall)}",
            list_ratio,
            "≤ 2x",
            judge(list_ratio, 2.0),
            listing.peak_rss_mb,
            paired(listing.process_cpu, repeat.process_cpu),
        ),
    ]


def write_stale_cache(root: Path, warm: Path, out: Path, every: int) -> int:
    """Write to ``out`` the warm cache of ``root`` as it was before 1 in ``every`` bundles changed.

    Half of those bundles are missing from it (added since), the other half
    carry a stat key no file has (changed since): a scan starting from it
    reads exactly those bundles again (1% is under ``REWRITE_EVERY``, so it leaves the
    file as it is, as every later scan of that registry would).

    Returns:
        How many bundles the cache misses.
    """
    from taskclf.model_registry import caching, scan_cache

    saved = os.environ.get(caching.CACHE_DIR_ENV)
    os.environ[caching.CACHE_DIR_ENV] = str(warm)
    try:
        path = scan_cache.cache_file(root)
    finally:
        if saved is None:
            del os.environ[caching.CACHE_DIR_ENV]
        else:
            os.environ[caching.CACHE_DIR_ENV] = saved
    assert path is not None
    sections = scan_cache.split_file(path.read_bytes())
    index = json.loads(sections.index_line)
    payloads = sections.payloads.split(b"\n")[:-1]
    records = index["bundles"]
    size = len(sections.keys) // len(records)
    assert len(payloads) == len(records) and size * len(records) == len(sections.keys)
    kept_records: list[Any] = []
    kept_keys: list[bytes] = []
    kept_payloads: list[bytes] = []
    for position, (record, payload) in enumerate(zip(records, payloads, strict=True)):
        if position % every == 0 and (position // every) % 2 == 0:
            continue  # added since
        keys = sections.keys[position * size : (position + 1) * size]
        if position % every == 0:
            keys = bytes(size)  # changed since: "both files absent", and they are not
        kept_records.append(record)
        kept_keys.append(keys)
        kept_payloads.append(payload + b"\n")
    start = 0
    for record, payload in zip(kept_records, kept_payloads, strict=True):
        record[1] = start  # where its payload now starts (the format: scan_cache)
        start += len(payload)
    new_index = json.dumps({"classes": index["classes"], "bundles": kept_records}).encode()
    stale = scan_cache.Sections(
        sections.header, new_index + b"\n", b"".join(kept_keys), b"".join(kept_payloads)
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(scan_cache.join_file(stale, len(kept_records)))
    return len(range(0, len(records), every))


def measure_large_cli(
    plan: Plan, root: Path, script: str, env: dict[str, str], floor: Measurement
) -> list[Row]:
    """Every registry-wide CLI command at the largest N, whole processes, scan cache warm."""
    say = _progress
    n = int(floor.check["bundles"])
    warm = RESULTS / "scan-cache" / f"n{n}"
    shutil.rmtree(warm, ignore_errors=True)
    warm_env = {**env, "TASKCLF_CACHE_DIR": str(warm)}
    say(f"CLI commands at N={n:,} (scan cache warm)")
    with tempfile.TemporaryDirectory(prefix="taskclf-bench-") as scratch:
        commands = {
            "taskclf train list --json": [script, "train", "list", "--json"],
            # The generated registry holds invalid bundles: verify reports them (exit 1).
            "taskclf model verify": [script, "model", "verify"],
            "taskclf model prune --keep 10 --dry-run": [
                script,
                "model",
                "prune",
                "--keep",
                "10",
                "--dry-run",
            ],
            "taskclf report": [script, "report", "--out", os.path.join(scratch, "report.html")],
        }
        jobs = [
            command_job([*argv, "--models-dir", str(root)], warm_env, ok_codes=(0, 1))
            for argv in commands.values()
        ]
        results = interleaved(jobs, plan.large_rounds)
    rows = []
    for name, result in zip(commands, results, strict=True):
        rows.append(
            Row(
                f"{name}, N={n:,} (process wall)",
                fmt_time(result.median),
                f"floor N={n:,}: {fmt_time(floor.median)}",
                None,
                "(info: works at this size)",
                rss_mb=result.peak_rss_mb,
            )
        )
    return rows


_ONE_MODEL = "from pydantic import BaseModel\nclass A(BaseModel):\n    x: int\nA(x=1)"
"""The least a process that validates anything with pydantic does: define one model, validate
once (pydantic.fields and its types on the class, the schema build and plugin loader on the
first validation)."""


def compile_package() -> None:
    """Write taskclf's bytecode, as installing a wheel does.

    An editable install under ``PYTHONDONTWRITEBYTECODE=1`` (this machine's
    environment) would otherwise compile every module from source in every
    process: ~40 ms of a start-up figure that no installed copy pays.
    """
    import compileall

    import taskclf

    compileall.compile_dir(Path(taskclf.__file__).parent, quiet=2)


def measure_start_up(plan: Plan, root: Path, script: str, env: dict[str, str]) -> list[Row]:
    """``taskclf model resolve`` on a healthy pointer, and importing the library."""
    say = _progress
    say("start-up: model resolve, import taskclf.model_registry")
    compile_package()
    resolve = [script, "model", "resolve", "--json", "--models-dir", str(root)]
    # The resolution cache of these processes (the warm-up process of each figure stores
    # the answer; the timed rounds are the repeated health check), never the user's.
    cache = RESULTS / "resolve-cache"
    shutil.rmtree(cache, ignore_errors=True)
    env = {**env, "TASKCLF_CACHE_DIR": str(cache)}
    bare, resolved, imported, one_model, typer_path, uncached = interleaved(
        [
            command_job([sys.executable, "-c", "import pydantic"], env),
            command_job(resolve, env),
            command_job([sys.executable, "-c", "import taskclf.model_registry"], env),
            command_job([sys.executable, "-c", _ONE_MODEL], env),
            command_job(resolve, {**env, "TASKCLF_NO_FAST_PATH": "1"}),
            command_job(resolve, {**env, "TASKCLF_CACHE_DIR": ""}),
        ],
        plan.rounds,
    )
    for measured in (resolved, typer_path, uncached):
        followed = '"source": "pointer"' in measured.check["stdout"]
        _expect(followed, "resolve did not follow the pointer")
    resolve_ratio = paired(resolved.seconds, bare.seconds)
    import_ratio = paired(imported.seconds, bare.seconds)
    baseline = f'python -c "import pydantic": {fmt_time(bare.median)}'
    return [
        Row(
            "taskclf model resolve --json, healthy pointer (process wall)",
            fmt_time(resolved.median),
            baseline,
            resolve_ratio,
            "≤ 2x",
            judge(resolve_ratio, 2.0),
            resolved.peak_rss_mb,
            paired(resolved.process_cpu, bare.process_cpu),
        ),
        Row(
            "  the same with TASKCLF_NO_FAST_PATH=1 (typer parses it)",
            fmt_time(typer_path.median),
            baseline,
            paired(typer_path.seconds, bare.seconds),
            "(info)",
            "",
            typer_path.peak_rss_mb,
            paired(typer_path.process_cpu, bare.process_cpu),
        ),
        Row(
            "  the same with the resolution cache off (TASKCLF_CACHE_DIR=)",
            fmt_time(uncached.median),
            baseline,
            paired(uncached.seconds, bare.seconds),
            "(info)",
            "",
            uncached.peak_rss_mb,
            paired(uncached.process_cpu, bare.process_cpu),
        ),
        Row(
            "  python: define one pydantic model, validate once (the floor)",
            fmt_time(one_model.median),
            baseline,
            paired(one_model.seconds, bare.seconds),
            "(info)",
            "",
            one_model.peak_rss_mb,
            paired(one_model.process_cpu, bare.process_cpu),
        ),
        Row(
            'python -c "import taskclf.model_registry" (process wall)',
            fmt_time(imported.median),
            baseline,
            import_ratio,
            "≤ 2.5x",
            judge(import_ratio, 2.5),
            imported.peak_rss_mb,
            paired(imported.process_cpu, bare.process_cpu),
        ),
    ]


def _cli_problem(script: str | None, env: dict[str, str]) -> str | None:
    """Why the CLI rows cannot be measured, or ``None`` when ``taskclf --help`` works."""
    if script is None:
        return "taskclf console script not installed"
    try:
        spawn([script, "--help"], env)
    except RuntimeError as exc:
        return str(exc).splitlines()[-1] if str(exc) else "taskclf --help failed"
    return None


def _progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def render(rows: Sequence[Row], header: str) -> str:
    """The result table as Markdown (readable as plain text too)."""
    titles = ("figure", "median", "baseline", "ratio", "target", "result", "peak RSS", "CPU ratio")
    cells = [
        (
            row.figure,
            row.value,
            row.baseline,
            f"{row.ratio:.2f}x" if row.ratio is not None else "",
            row.target,
            row.status,
            f"{row.rss_mb:.0f} MiB" if row.rss_mb is not None else "",
            f"{row.cpu_ratio:.2f}x" if row.cpu_ratio is not None else "",
        )
        for row in rows
    ]
    widths = [max(len(t), *(len(c[i]) for c in cells)) for i, t in enumerate(titles)]
    lines = [header, ""]
    lines.append("| " + " | ".join(t.ljust(w) for t, w in zip(titles, widths, strict=True)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for c in cells:
        lines.append("| " + " | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 1 if any target fails."""
    parser = argparse.ArgumentParser(description="taskclf registry benchmark")
    parser.add_argument("--quick", action="store_true", help="small N and 5 rounds (smoke test)")
    parser.add_argument("--rounds", type=int, help="rounds per figure (default 9, quick 5)")
    parser.add_argument(
        "--registries",
        type=Path,
        default=RESULTS / "registries",
        help="where generated registries are kept and reused",
    )
    parser.add_argument("--fresh", action="store_true", help="regenerate the registries")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.rounds:
        plan = Plan(**{**asdict(plan), "rounds": args.rounds})
    if args.fresh and args.registries.exists():
        shutil.rmtree(args.registries)
    started = time.time()
    load_before = os.getloadavg()[0]
    rows = measure(plan, args.registries)
    load_after = os.getloadavg()[0]
    mode = "quick" if args.quick else "full"
    header = (
        f"taskclf registry benchmark ({mode}: {plan.rounds} rounds per figure, median; "
        f"fresh process per round; page cache warm), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{time.time() - started:.0f} s, load average {load_before:.1f} -> {load_after:.1f}. "
        "Ratio: median over rounds of figure time / baseline time of the same round; "
        "CPU ratio: the same in CPU time (info)."
    )
    table = render(rows, header)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.md").write_text(table, "utf-8")
    (RESULTS / "latest.json").write_text(
        json.dumps({"mode": mode, "rows": [asdict(r) for r in rows]}, indent=2) + "\n", "utf-8"
    )
    return 1 if any(row.status == "FAIL" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: OCR pages/s of the scale-out fan-out with 1 and 2 Dask workers, in one run.

Usage: ``python bench/scale.py [--quick] [--pages N] [--pages-per-group K]``. Progress goes to
stderr; the last stdout line is one JSON object with ``pages_per_s_1_worker``,
``pages_per_s_2_workers``, ``speedup`` and ``overhead_s_per_group``.

Input: synthetic 300-dpi US-letter scans (bench/ocr.py's pages: text, noise, skew), one PNG file
per page, 40 pages (8 with ``--quick``), scheduled in groups of ``--pages-per-group`` files (4).
Each side schedules into fresh buckets (folders) and runs every group on a Dask LocalCluster of
1 or 2 worker processes (``threads_per_worker=1``, ``OMP_THREAD_LIMIT=1``), each group with one
extraction process: exactly ``chrono schedule --mode dask --steps extraction``. Timed: from the
first submission to the last group's commit marker (the cluster's start is reported apart, as
``cluster_start_s``). ``overhead_s_per_group`` is the mean, over both sides' groups, of a group's
time not spent in extraction proper (staging, reuse checks, publishing, the marker);
``scheduling_overhead_s_per_group`` is the workers' idle time per group (Dask's share).
``cores_used_*`` is the cluster's own CPU time (workers and everything below them) over the
wall time; ``other_load_cores_*`` is how many cores other programs kept busy meanwhile (the
machine's busy CPU time less the cluster's own): on a shared machine the speed-up is only
meaningful next to them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

DPI = 300
HERE = Path(__file__).resolve().parent


def _ocr_bench() -> Any:
    """bench/ocr.py as a module, for its synthetic pages."""
    spec = importlib.util.spec_from_file_location("chrono_bench_ocr", HERE / "ocr.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_page(args: tuple[int, str]) -> str:
    index, folder = args
    page, _truth = _ocr_bench().synthetic_page(index)
    path = Path(folder) / f"box-{index // 10:02d}" / f"scan-{index:04d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.save(path, dpi=(DPI, DPI))
    return str(path)


def _busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (all processes, all cores)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _cluster_cpu_s(cluster: Any) -> float:
    """CPU seconds of the cluster's worker processes and all their descendants (the pools'
    forkservers, and the extraction processes those have reaped)."""
    import psutil
    from distributed import Client

    total = 0.0
    with Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
    for pid in pids:
        worker = psutil.Process(pid)
        for proc in [worker, *worker.children(recursive=True)]:
            try:
                t = proc.cpu_times()
            except psutil.NoSuchProcess:  # an extraction process that just ended
                continue
            total += t.user + t.system + t.children_user + t.children_system
    return total


def _run_side(workers: int, source: Path, root: Path, pages_per_group: int) -> dict[str, Any]:
    """Schedule into fresh buckets under ``root`` and run every group on ``workers`` workers."""
    import dask
    from distributed import LocalCluster

    from chrono.scale import ScaleSettings
    from chrono.scale.modes import DaskMode
    from chrono.scale.schedule import schedule

    started = time.perf_counter()
    with dask.config.set({"distributed.worker.daemon": False}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, env={"OMP_THREAD_LIMIT": "1"})
    cluster_start_s = time.perf_counter() - started
    try:
        settings = ScaleSettings(
            source_url=str(source), inventory_url=str(root / "inv"),
            artifact_url=str(root / "art"), report_url=str(root / "rep"),
            minimum_batch_size=pages_per_group, steps=("extraction",),
            scheduler=cluster.scheduler_address, workers=workers, show_progress=False,
            work_dir=str(root / "work"),
        )
        plan = schedule(settings)
        done: list[Any] = []

        def report(outcome: Any) -> None:
            done.append(outcome)
            print(f"  group {outcome.group} {outcome.status} in {outcome.seconds:.1f}s "
                  f"({len(done)}/{len(plan.groups)})", file=sys.stderr)

        busy_before, own_before = _busy_cpu_s(), _cluster_cpu_s(cluster)
        started = time.perf_counter()
        outcomes = DaskMode(settings).run_groups(plan, report)
        wall_s = time.perf_counter() - started
        # Other programs' CPU use meanwhile: the machine's busy time less the cluster's own.
        own_cores = (_cluster_cpu_s(cluster) - own_before) / wall_s
        other_cores = max(0.0, (_busy_cpu_s() - busy_before) / wall_s - own_cores)
    finally:
        cluster.close()
    failed = [o for o in outcomes if o.status != "done"]
    if failed:
        raise SystemExit(f"{len(failed)} groups failed: {[o.reason for o in failed]}")
    pages = _pages_read(root / "art")
    busy_s = sum(o.seconds for o in outcomes)
    return {
        "workers": workers, "groups": len(outcomes), "pages": pages,
        "seconds": round(wall_s, 2), "cluster_start_s": round(cluster_start_s, 2),
        "pages_per_s": round(pages / wall_s, 3),
        "group_overheads_s": [o.seconds - o.extract_seconds for o in outcomes],
        "idle_s_per_group": max(0.0, (wall_s * workers - busy_s) / len(outcomes)),
        "other_load_cores": round(other_cores, 2),
        "own_cores": round(own_cores, 2),
    }


def _pages_read(artifact_dir: Path) -> int:
    """Pages OCR'd, counted from the artifacts (so a side that skipped work cannot look fast)."""
    pages = 0
    for path in (artifact_dir / "artifacts").rglob("*.json"):
        artifact = json.loads(path.read_text(encoding="utf-8"))
        if artifact["status"] == "processed":
            pages += sum(1 for p in artifact["pages"] if p["method"] == "ocr")
    return pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 pages instead of 40")
    parser.add_argument("--pages", type=int, default=None, help="number of pages")
    parser.add_argument("--pages-per-group", type=int, default=4,
                        help="files (one page each) per group")
    args = parser.parse_args()
    n_pages = args.pages or (8 if args.quick else 40)
    pages_per_group = 2 if args.quick and args.pages is None else args.pages_per_group
    os.environ["OMP_THREAD_LIMIT"] = "1"
    with tempfile.TemporaryDirectory(prefix="chrono-bench-scale-") as folder:
        source = Path(folder) / "source"
        print(f"generating {n_pages} scanned pages", file=sys.stderr)
        with ProcessPoolExecutor(2) as pool:
            list(pool.map(_write_page, [(i, str(source)) for i in range(n_pages)]))
        sides = []
        for workers in (1, 2):
            print(f"dask LocalCluster, {workers} worker(s)", file=sys.stderr)
            side = _run_side(workers, source, Path(folder) / f"w{workers}", pages_per_group)
            print(f"  {side['seconds']:.1f}s, {side['pages_per_s']:.2f} pages/s", file=sys.stderr)
            sides.append(side)
    one, two = sides
    overheads = one.pop("group_overheads_s") + two.pop("group_overheads_s")
    result = {
        "n_pages": n_pages,
        "groups": one["groups"],
        "pages_per_group": pages_per_group,
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "seconds_1_worker": one["seconds"],
        "seconds_2_workers": two["seconds"],
        "pages_per_s_1_worker": one["pages_per_s"],
        "pages_per_s_2_workers": two["pages_per_s"],
        "speedup": round(one["seconds"] / two["seconds"], 2),
        "overhead_s_per_group": round(sum(overheads) / len(overheads), 3),
        "scheduling_overhead_s_per_group": round(
            (one["idle_s_per_group"] + two["idle_s_per_group"]) / 2, 3),
        "cluster_start_s": [one["cluster_start_s"], two["cluster_start_s"]],
        "cores_used_1_worker": one["own_cores"],
        "cores_used_2_workers": two["own_cores"],
        "other_load_cores_1_worker": one["other_load_cores"],
        "other_load_cores_2_workers": two["other_load_cores"],
        "pages_ocr_1_worker": one["pages"],
        "pages_ocr_2_workers": two["pages"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Peak resident memory of `napari-mpid denoise` on a large synthetic stack, now and at older commits.

Writes a 16x2048x2048 uint16 TIFF stack (a smooth pattern with Poisson noise),
then runs the CLI on it in a child process with default settings and
``--iterations 2``, once per version of the code:

- "current": the working tree this script belongs to;
- every ``--before COMMIT``: that commit's ``src/`` (extracted with
  ``git archive``, read-only) put first on PYTHONPATH, with the same
  Python environment.

Peak memory is the kernel's high-water mark of the child's resident set
(``getrusage(RUSAGE_CHILDREN).ru_maxrss`` of a fresh helper process per
run), cross-checked by polling the child's RSS with psutil every 50 ms.
Other jobs sharing the CPU slow the runs down but do not change these
figures.

Usage::

    python benchmarks/memory.py --before 960d938 [--before HEAD] [--json results.json]
    python benchmarks/memory.py --planes 4 --size 1024   # a quick check of the script
    # Where git is missing (a copy of the tree): extract the old src/ first; run the versions side by side.
    python benchmarks/memory.py --before-src 960d938=old/src --cli "--device cpu" --threads 8 --parallel
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import REPO

#: Runs in a fresh interpreter: starts the CLI, polls its RSS, reports both peaks as JSON.
_MEASURE = r"""
import json, resource, subprocess, sys, time
import psutil
cmd, env, limit = json.loads(sys.argv[1]), json.loads(sys.argv[2]), float(sys.argv[3])
start = time.perf_counter()
log = open(sys.argv[4], "w+")
proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
peak, trace, next_sample, stopped = 0, [], 0.0, False
watched = psutil.Process(proc.pid)
while proc.poll() is None:
    try:
        rss = watched.memory_info().rss + sum(c.memory_info().rss for c in watched.children(recursive=True))
        peak = max(peak, rss)
    except psutil.Error:
        rss = 0
    now = time.perf_counter() - start
    if now >= next_sample:
        trace.append([round(now), round(rss / 2**20)])
        next_sample += 10
    if limit and now > limit:
        proc.kill()
        stopped = True
    time.sleep(0.05)
proc.wait()
log.seek(0)
output = log.read()
maxrss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"returncode": proc.returncode, "completed": proc.returncode == 0 and not stopped, "stopped": stopped,
                  "maxrss_mb": maxrss_kib / 1024, "polled_peak_mb": peak / 2**20,
                  "seconds": time.perf_counter() - start, "rss_trace_s_mb": trace, "output_tail": output[-600:]}))
"""


def make_stack(path: Path, planes: int, size: int, seed: int = 0) -> None:
    """A smooth fluorescence-like pattern with Poisson noise, written as a plain ZYX TIFF, plane by plane."""
    import tifffile

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    with tifffile.TiffWriter(path, bigtiff=planes * size * size * 2 > 2**32 - 2**25) as tif:
        for z in range(planes):
            clean = 300 + 200 * np.sin(6 * np.pi * (x + 0.05 * z)) * np.cos(4 * np.pi * y)
            plane = rng.poisson(np.clip(clean, 1, None)).astype(np.uint16)
            tif.write(plane, contiguous=True, metadata={"axes": "ZYX", "shape": [planes, size, size]})


def source_tree(commit: str, into: Path) -> Path:
    """``src/`` of ``commit`` extracted into ``into`` (git archive: the repository is not changed)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "src"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def measure(
    label: str,
    src: Path | None,
    stack: Path,
    out: Path,
    iterations: int,
    extra: list[str],
    threads: int | None,
    time_limit: float = 0.0,
) -> dict:
    """Run the CLI once in a child process; return its peak memory and timing."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    check = subprocess.run(
        [sys.executable, "-c", "import napari_mpid; print(napari_mpid.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    cmd = [sys.executable, "-m", "napari_mpid.cli", "denoise", str(stack), "-o", str(out)]
    cmd += ["--iterations", str(iterations), "-q", *extra]
    if out.exists():
        out.unlink()
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, json.dumps(cmd), json.dumps(env), str(time_limit), str(out) + ".log"],
        capture_output=True,
        text=True,
        check=True,
    )
    record = json.loads(result.stdout)
    record.update(label=label, package=check.stdout.strip(), command=" ".join(cmd[1:]))
    print(
        f"{label:>12}: peak RSS {record['maxrss_mb']:.0f} MB (polled {record['polled_peak_mb']:.0f} MB), "
        f"{record['seconds']:.0f} s, exit {record['returncode']}{' (stopped at the time limit)' if record['stopped'] else ''}",
        flush=True,
    )
    if record["returncode"] != 0 and not record["stopped"]:
        print(record["output_tail"], file=sys.stderr)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planes", type=int, default=16)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--before", action="append", default=[], metavar="COMMIT", help="also measure this commit")
    parser.add_argument(
        "--before-src",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="also measure the package in PATH (a src/ folder extracted beforehand, e.g. where git is missing)",
    )
    parser.add_argument("--cli", default="", help="extra CLI options for every run, e.g. '--device cpu'")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS of each run")
    parser.add_argument("--parallel", action="store_true", help="run the versions at the same time (peaks are per run)")
    parser.add_argument(
        "--time-limit", type=float, default=0.0, help="stop a run after this many seconds (its peak so far is reported)"
    )
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    import psutil
    import torch

    with tempfile.TemporaryDirectory(prefix="mpid-memory-") as tmp:
        work = Path(tmp)
        stack = work / "stack.tif"
        t0 = time.perf_counter()
        make_stack(stack, args.planes, args.size)
        print(
            f"stack {args.planes}x{args.size}x{args.size} uint16: {stack.stat().st_size / 2**20:.0f} MB "
            f"({time.perf_counter() - t0:.0f} s to write)",
            flush=True,
        )
        versions: list[tuple[str, Path | None]] = [("current", None)]
        versions += [(commit, source_tree(commit, work / f"src-{commit}")) for commit in args.before]
        versions += [(item.split("=", 1)[0], Path(item.split("=", 1)[1]).resolve()) for item in args.before_src]
        extra = args.cli.split()

        def run(k: int) -> dict:
            label, src = versions[k]
            out = work / f"out{k}.tif"
            return measure(label, src, stack, out, args.iterations, extra, args.threads, args.time_limit)

        if args.parallel:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(versions)) as pool:
                runs = list(pool.map(run, range(len(versions))))
        else:
            runs = [run(k) for k in range(len(versions))]
    report = {
        "benchmark": "peak resident memory of napari-mpid denoise",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "torch": torch.__version__,
        },
        "stack": {"planes": args.planes, "size": args.size, "dtype": "uint16"},
        "iterations": args.iterations,
        "cli": args.cli,
        "threads": args.threads,
        "parallel": args.parallel,
        "runs": runs,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    print(json.dumps({r["label"]: round(r["maxrss_mb"]) for r in runs}))


if __name__ == "__main__":
    main()

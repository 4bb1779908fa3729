"""Peak resident memory of napari + the dock widget denoising a lazy (dask over zarr) stack.

Run under a display, e.g.::

    xvfb-run -a python benchmarks/memory_napari.py --output benchmarks/results/memory_napari.json

A synthetic uint16 stack (default 16x2048x2048, 128 MiB) is written plane by
plane to a zarr store in a temporary directory and opened with
``dask.array.from_zarr``; a headless viewer shows it, the widget (docked
through the plugin manifest) denoises it with its default settings except
``iterations`` and ``device``, and a thread samples the process's resident
set size (psutil) every 20 ms. Reported: RSS after the viewer and widget are
up, the peak during the run, the peak over the whole process
(``ru_maxrss``), the run time, and the types of the result layers' data.

The same script measures older versions of the package with
``PYTHONPATH=/path/to/old/src`` (it only uses the widget's ``controls``,
``run`` and ``worker``).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psutil


class PeakSampler(threading.Thread):
    """Samples the RSS of this process every ``interval`` seconds; ``peak`` is the largest seen."""

    def __init__(self, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.process = psutil.Process()
        self.peak = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return max(self.peak, self.process.memory_info().rss)


def write_stack(path: Path, planes: int, size: int, seed: int = 0):
    """A smooth pattern with Poisson noise, uint16, written plane by plane into a zarr array (one chunk per plane)."""
    import zarr

    stored = zarr.open_array(
        store=str(path), mode="w", shape=(planes, size, size), chunks=(1, size, size), dtype=np.uint16
    )
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for z in range(planes):
        clean = 100 + 400 * (np.sin(12 * x + z / 3) * np.cos(9 * y) + 1)
        stored[z] = rng.poisson(clean).astype(np.uint16)
    return stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planes", type=int, default=16)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--label", default="current", help="name of the code version measured")
    parser.add_argument("--timeout", type=float, default=6 * 3600.0, help="seconds to wait for the run")
    parser.add_argument("--output", type=Path, help="append the result as JSON to this file")
    args = parser.parse_args()

    import dask.array as da
    import napari
    from qtpy.QtWidgets import QApplication

    import napari_mpid

    with tempfile.TemporaryDirectory(prefix="memory-napari-") as tmp:
        write_stack(Path(tmp) / "stack.zarr", args.planes, args.size)
        lazy = da.from_zarr(str(Path(tmp) / "stack.zarr"))

        viewer = napari.Viewer(show=False)
        layer = viewer.add_image(lazy, name="stack", axis_labels=("z", "y", "x"), contrast_limits=(0, 1000))
        _, widget = viewer.window.add_plugin_dock_widget("napari-mpid", "Zero-shot denoise")
        widget.image.value = layer
        widget.controls["iterations"].value = args.iterations
        widget.controls["device"].value = args.device
        app = QApplication.instance()
        for _ in range(10):
            app.processEvents()
        idle_rss = psutil.Process().memory_info().rss

        sampler = PeakSampler()
        sampler.start()
        start = time.perf_counter()
        if widget.run() is None:
            raise SystemExit("the widget did not start a run (see the error above)")
        deadline = time.monotonic() + args.timeout
        last_print = 0.0
        while widget.worker is None or widget.worker.is_running or not widget.run_button.enabled:
            app.processEvents()
            time.sleep(0.02)
            if time.monotonic() - last_print > 60:
                last_print = time.monotonic()
                print(
                    f"{time.perf_counter() - start:7.0f} s  peak {sampler.peak / 2**20:6.0f} MiB  {widget.status.value}",
                    flush=True,
                )
            if time.monotonic() > deadline:
                break
        completed = time.monotonic() <= deadline
        if completed:
            for _ in range(10):  # let napari show the current slice of the results
                app.processEvents()
        seconds = time.perf_counter() - start
        peak = sampler.stop()
        if not completed:
            # The planes are processed one at a time, so the peak of the first
            # planes is the run's; record it, marked as a partial run.
            print(f"the run did not finish in {args.timeout:.0f} s; peak so far {peak / 2**20:.0f} MiB", flush=True)
            widget.cancel()
        elif "stack denoised" not in viewer.layers:
            raise SystemExit(f"no result layer: {widget.status.value}")
        denoised = viewer.layers["stack denoised"] if completed else None
        metadata = denoised.metadata if denoised is not None else {}
        record = {
            "label": args.label,
            "package": napari_mpid.__file__,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {psutil.cpu_count()} CPUs, "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, {platform.system()}",
            "python": sys.version.split()[0],
            "napari": napari.__version__,
            "input": f"dask over zarr, {args.planes}x{args.size}x{args.size} uint16",
            "iterations": args.iterations,
            "device": args.device,
            "idle_rss_mib": round(idle_rss / 2**20),
            "peak_rss_mib": round(peak / 2**20),
            "ru_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "seconds": round(seconds, 1),
            "completed": completed,
            "status": widget.status.value,
            "result_type": None
            if denoised is None
            else f"{type(denoised.data).__module__}.{type(denoised.data).__name__}",
            "tile_size": metadata.get("param_tile_size"),
            "context": metadata.get("param_context"),
            "precision": metadata.get("precision"),
            "notes": metadata.get("notes", []),
        }
        print(json.dumps(record, indent=1))
        if args.output:
            rows = json.loads(args.output.read_text()) if args.output.exists() else []
            args.output.write_text(json.dumps([*rows, record], indent=1) + "\n")
        viewer.close()


if __name__ == "__main__":
    main()

"""Render docs/widget.png: napari with the sample, the docked widget and a finished run.

Run under a display, e.g. ``xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot.py``.
Uses the bundled "real-noise" model when the package registry lists one,
else an untrained network (the screenshot shows the interface, not quality),
for 60 iterations on the CPU with the widget's other settings as it opens
them (the sample is a 5-plane z-stack, so neighbour planes are used).
"""

from __future__ import annotations

import argparse
import json
import time
from importlib.resources import files
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication


def _model() -> str:
    registry = json.loads(files("napari_mpid.models").joinpath("registry.json").read_text())
    return "real-noise" if "real-noise" in registry else "random-init:1:single"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "widget.png")
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the run")
    args = parser.parse_args()

    viewer = napari.Viewer(title="napari MPID")
    viewer.window._qt_window.resize(1500, 950)
    viewer.open_sample("napari-mpid", "fluorescence")
    _, widget = viewer.window.add_plugin_dock_widget("napari-mpid", "Zero-shot denoise")
    widget.image.value = viewer.layers["noisy"]
    widget.controls["model"].value = _model()
    widget.controls["iterations"].value = args.iterations
    widget.controls["device"].value = "cpu"
    viewer.dims.set_current_step(0, 2)

    app = QApplication.instance()
    widget.run()
    deadline = time.monotonic() + args.timeout
    while widget.worker.is_running or not widget.run_button.enabled:
        app.processEvents()
        time.sleep(0.02)
        if time.monotonic() > deadline:
            raise SystemExit("the run did not finish in time")
    if "noisy denoised" not in viewer.layers:
        raise SystemExit(f"no result layer: {widget.status.value}")
    viewer.layers.selection.active = viewer.layers["noisy denoised"]
    viewer.reset_view()  # fit the sample to the canvas the docked widget left
    for _ in range(20):
        app.processEvents()
        time.sleep(0.05)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.output), canvas_only=False)
    print(f"wrote {args.output} ({widget.status.value})")
    viewer.close()


if __name__ == "__main__":
    main()

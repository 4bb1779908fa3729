"""Render docs/widget_before.png and docs/widget_after.png: the docked widget before and after a run.

Run under a display, e.g.
``xvfb-run -a -s "-screen 0 1280x800x24" python scripts/screenshot.py``.
napari's window is set to 1280x800 (a laptop screen), the sample is opened
and the widget docked with the settings it opens with (the auto preset, a
5-plane z-stack, so neighbour planes are used) on the CPU; one screenshot is
taken before Run and one after the run, with the denoised layer shown. The
bundled "real-noise" model is used when the package registry lists one,
else an untrained network (the screenshots then show the interface, not
quality). The PNGs are reduced to an adaptive palette so that each stays
small (under 300 KB).
"""

from __future__ import annotations

import argparse
import json
import time
from importlib.resources import files
from pathlib import Path

import napari
import numpy as np
from PIL import Image
from qtpy.QtWidgets import QApplication

DOCS = Path(__file__).resolve().parents[1] / "docs"
#: Largest PNG we keep in the repository.
MAX_BYTES = 300_000


def _model() -> str:
    registry = json.loads(files("napari_mpid.models").joinpath("registry.json").read_text())
    return "real-noise" if "real-noise" in registry else "random-init:1:single"


def _settle(app: QApplication, seconds: float = 1.0) -> None:
    """Let the window lay itself out and draw."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)


def _save(viewer: napari.Viewer, path: Path) -> int:
    """Save the whole window as a palette PNG (fewer colours until it is under MAX_BYTES); return its size."""
    rgba = np.asarray(viewer.screenshot(canvas_only=False, flash=False))
    image = Image.fromarray(rgba[..., :3])
    path.parent.mkdir(parents=True, exist_ok=True)
    for colours in (256, 128, 64, 32):
        image.quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
        if path.stat().st_size <= MAX_BYTES:
            break
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, default=DOCS / "widget_before.png")
    parser.add_argument("--after", type=Path, default=DOCS / "widget_after.png")
    parser.add_argument("--size", default="1280x800", help="napari window size, WIDTHxHEIGHT")
    parser.add_argument("--sample", default="fluorescence", help="napari-mpid sample key")
    parser.add_argument("--layer", default="noisy", help="layer of the sample to denoise")
    parser.add_argument("--iterations", type=int, default=None, help="default: the preset's")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the run")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    app = QApplication.instance() or QApplication([])
    viewer = napari.Viewer(title="napari MPID")
    window = viewer.window._qt_window
    window.resize(width, height)
    viewer.open_sample("napari-mpid", args.sample)
    _, widget = viewer.window.add_plugin_dock_widget("napari-mpid", "Zero-shot denoise")
    source = viewer.layers[args.layer]
    widget.image.value = source
    widget.controls["model"].value = _model()
    widget.controls["device"].value = "cpu"
    if args.iterations is not None:
        widget.controls["iterations"].value = args.iterations
    viewer.layers.selection.active = source
    viewer.dims.set_current_step(0, source.data.shape[0] // 2)
    _settle(app)
    viewer.reset_view()  # fit the image to the canvas the docked widget left
    _settle(app)
    dock, canvas = widget.native.parent(), viewer.window._qt_viewer.canvas.native
    print(f"window {window.width()}x{window.height()}, dock {dock.width()} px, canvas {canvas.width()} px wide")
    print(f"wrote {args.before} ({_save(viewer, args.before) // 1000} KB)")

    widget.run()
    deadline = time.monotonic() + args.timeout
    while widget.worker.is_running or not widget.run_button.enabled:
        app.processEvents()
        time.sleep(0.02)
        if time.monotonic() > deadline:
            raise SystemExit("the run did not finish in time")
    denoised = f"{source.name} denoised"
    if denoised not in viewer.layers:
        raise SystemExit(f"no result layer: {widget.status.value}")
    viewer.layers.selection.active = viewer.layers[denoised]
    _settle(app, 2.0)  # the notification of the finished run fades in
    print(f"wrote {args.after} ({_save(viewer, args.after) // 1000} KB): {widget.status.tooltip}")
    viewer.close()


if __name__ == "__main__":
    main()

"""``python -m napari_mpid._launch``: napari with the sample loaded and the widget docked.

The main job of ``scripts/demo.sh`` on a machine with a display; the same as
``napari -w napari-mpid`` followed by File > Open Sample > napari MPID.
"""

from __future__ import annotations


def main() -> None:
    import napari

    viewer = napari.Viewer(title="napari MPID")
    viewer.open_sample("napari-mpid", "fluorescence")
    _, widget = viewer.window.add_plugin_dock_widget("napari-mpid", "Zero-shot denoise")
    if "noisy" in viewer.layers:
        widget.image.value = viewer.layers["noisy"]
    napari.run()


if __name__ == "__main__":
    main()

"""Axis guessing from napari layers, and the plugin's manifest as napari sees it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from napari_mpid._qt.layers import guess_axes
from napari_mpid.core.run.axes import axes_from_labels


def _layer(shape, labels, rgb=False):
    return SimpleNamespace(data=np.zeros(shape, np.uint8), axis_labels=labels, rgb=rgb, multiscale=False)


@pytest.mark.parametrize(
    ("labels", "shape", "expected"),
    [
        (("frames", "channels", "y", "x"), (4, 2, 40, 40), "TCYX"),
        (("slices", "rows", "columns"), (3, 40, 40), "ZYX"),
        (("time", "height", "width"), (3, 40, 40), "TYX"),
        (("z", "z", "y", "x"), (2, 3, 40, 40), "ZQYX"),
        (("position", "y", "x"), (5, 40, 40), "QYX"),
    ],
)
def test_layer_axes_come_from_the_one_core_axis_map(labels, shape, expected):
    # Issue 9: _qt/layers.py had its own map, which knew neither "frames" nor "channels" nor "rows".
    assert guess_axes(_layer(shape, labels)) == expected == axes_from_labels(labels)


def test_unnamed_axes_fall_back_to_a_guess_from_the_shape():
    assert guess_axes(_layer((3, 40, 40), ("axis -3", "axis -2", "axis -1"))) == "QYX"
    assert guess_axes(_layer((40, 40, 3), ("axis -2", "axis -1"), rgb=True)) == "YXS"


def test_manifest_declares_categories_and_a_layers_filter_menu_entry():
    from npe2 import PluginManager

    manifest = PluginManager.instance().get_manifest("napari-mpid")

    assert "Image Processing" in manifest.categories
    [item] = manifest.contributions.menus["napari/layers/filter"]
    assert item.command == "napari-mpid.denoise_widget"


def test_layers_filter_menu_opens_the_widget(make_napari_viewer):
    from napari._app_model import get_app_model

    viewer = make_napari_viewer()
    app = get_app_model()
    entries = [item.command.id for item in app.menus.get_menu("napari/layers/filter") if hasattr(item, "command")]
    assert "napari-mpid.denoise_widget" in entries

    app.commands.execute_command("napari-mpid.denoise_widget").result()

    assert any("Zero-shot denoise" in name for name in viewer.window.dock_widgets)

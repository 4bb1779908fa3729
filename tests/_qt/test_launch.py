from __future__ import annotations


def test_launch_opens_the_sample_and_docks_the_widget(monkeypatch, make_napari_viewer):
    import napari

    from napari_mpid import _launch

    viewer = make_napari_viewer()
    monkeypatch.setattr(napari, "Viewer", lambda **kwargs: viewer)
    monkeypatch.setattr(napari, "run", lambda: None)
    _launch.main()
    assert "noisy" in viewer.layers and "clean" in viewer.layers
    assert "Zero-shot denoise" in " ".join(viewer.window.dock_widgets)

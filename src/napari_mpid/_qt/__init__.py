"""The napari dock widget (Qt); imported only by napari through the manifest."""

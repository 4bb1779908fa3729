"""Pure compute: network, masking, filling, normalisation, tiling, devices, checkpoints.

This sub-package imports numpy, torch and tifffile only: never Qt, napari or
magicgui (checked by a test).
"""

"""The package version: in core, so that results and checkpoints record it without importing the package root."""

__version__ = "0.1.0"

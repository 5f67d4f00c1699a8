"""Backends: one module per format, each meeting the contract in :mod:`edgedistill.export.backends.base`."""

from edgedistill.export.backends.base import Artifact, ParityError, backend_names, get_backend

__all__ = ["Artifact", "ParityError", "backend_names", "get_backend"]

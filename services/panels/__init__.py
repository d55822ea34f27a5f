"""Panels: a multi-tenant panels management service."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("panels")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

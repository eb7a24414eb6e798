"""Welfare-technology home gateway (Raspberry Pi, CPython 3.11).

``__version__`` is the version of the code that runs: a release built by
scripts/build-release.py carries ``gateway/_version.py`` (written from ``--version``), so a
gateway running from an A/B slot reports that slot's release in its health and state
messages. A source checkout has no ``_version.py`` and reports :data:`DEV_VERSION`.
"""
DEV_VERSION = "0.1.0"

try:
    from gateway._version import __version__  # type: ignore[import-not-found]  # written by build-release
except ImportError:          # a source checkout, not a built release
    __version__ = DEV_VERSION

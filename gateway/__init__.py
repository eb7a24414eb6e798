"""Welfare-technology home gateway (Raspberry Pi, CPython 3.11)."""
__version__ = "0.1.0"

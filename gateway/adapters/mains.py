"""Mains power input: a port plus two small adapters (file/GPIO value, emulated).

The mains rule (gateway/domain/rules/power.py) polls ``MainsInput.read()`` on every tick. On a
Raspberry Pi a UPS HAT or an opto-isolated 5 V sense line on a GPIO exposes the state as
a file holding ``1``/``0`` (sysfs ``/sys/class/gpio/gpioN/value`` or the HAT's status
file); ``FileMainsInput`` reads it. ``EmulatedMainsInput`` is set by tests and the demo.
"""
from __future__ import annotations

import enum
from pathlib import Path
from typing import Protocol


class MainsState(enum.Enum):
    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"


class MainsInput(Protocol):
    def read(self) -> MainsState:
        """Current state; never raises (UNKNOWN when it cannot tell)."""


class NoMainsInput:
    def read(self) -> MainsState:
        return MainsState.UNKNOWN


class EmulatedMainsInput:
    def __init__(self, state: MainsState = MainsState.ON) -> None:
        self.state = state

    def set(self, state: MainsState) -> None:
        self.state = state

    def read(self) -> MainsState:
        return self.state


class FileMainsInput:
    """Reads a GPIO value file / UPS status file: ``on_value`` means on mains."""

    def __init__(self, path: str | Path, on_value: str = "1") -> None:
        self.path = Path(path)
        self.on_value = on_value.strip()

    def read(self) -> MainsState:
        try:
            text = self.path.read_text().strip()
        except (OSError, UnicodeDecodeError):
            return MainsState.UNKNOWN
        if not text:
            return MainsState.UNKNOWN
        return MainsState.ON if text == self.on_value else MainsState.OFF


def mains_input_from_config(section) -> MainsInput:
    from gateway.config import MainsSource

    if section.source is MainsSource.FILE:
        return FileMainsInput(section.path, section.on_value)
    if section.source is MainsSource.EMULATED:
        return EmulatedMainsInput()
    return NoMainsInput()

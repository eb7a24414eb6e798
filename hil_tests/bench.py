"""Bench descriptions (TOML): which devices, on which transport, which gateway and broker.

The emulated bench needs no file; ``--bench FILE`` loads a description of a real bench
(docs/hil.md). Validation errors name the key, the bad value and the fix.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROLES = ("button", "fall", "bed", "door", "motion", "gps", "dispenser")
TRANSPORTS = ("emulated", "serial", "ble")


class BenchError(ValueError):
    def __init__(self, key: str, value: object, fix: str) -> None:
        super().__init__(f"{key} = {value!r}: {fix}")
        self.key, self.value, self.fix = key, value, fix


@dataclass(frozen=True)
class BenchDevice:
    name: str
    role: str
    transport: str = "emulated"
    port: str | None = None          # the board's link UART as the gateway opens it (USB-serial adapter)
    console: str | None = None       # the board's USB console (mpremote flash, DTR/RTS reset); default: port
    ble_address: str | None = None
    key_hex: str | None = None       # provisioned per-device key (16 bytes hex)
    device_id: str | None = None     # 12 hex digits; emulated devices get one assigned
    power_relay: str | None = None   # e.g. "gpio:17" or "usb-hub:1-1.2:port3" to cut the board's power


@dataclass(frozen=True)
class Bench:
    name: str = "emulated"
    kind: str = "emulated"           # "emulated" or "real"
    broker_host: str = "127.0.0.1"
    broker_port: int = 0             # 0 = start a private Mosquitto
    devices: tuple[BenchDevice, ...] = field(default_factory=tuple)

    @property
    def emulated(self) -> bool:
        return self.kind == "emulated"


def default_bench() -> Bench:
    return Bench(devices=tuple(BenchDevice(name=f"{r}-1", role=r) for r in ROLES if r != "motion"))


def load_bench(path: str | Path) -> Bench:
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise BenchError("--bench", str(p), "file not found; pass the path of a bench TOML (see docs/hil.md)") from None
    except tomllib.TOMLDecodeError as exc:
        raise BenchError("--bench", str(p), f"not valid TOML ({exc}); fix the syntax") from None
    b = raw.get("bench", {})
    kind = b.get("kind", "real")
    if kind not in ("emulated", "real"):
        raise BenchError("bench.kind", kind, "use \"emulated\" or \"real\"")
    broker = raw.get("broker", {})
    port = broker.get("port", 0)
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise BenchError("broker.port", port, "use a TCP port 1..65535, or 0 to start a private Mosquitto")
    devices = []
    names = set()
    for i, d in enumerate(raw.get("device", [])):
        key = f"device[{i}]"
        name = d.get("name")
        if not name or not isinstance(name, str):
            raise BenchError(f"{key}.name", name, "give every device a unique name, e.g. name = \"button-1\"")
        if name in names:
            raise BenchError(f"{key}.name", name, "device names must be unique")
        names.add(name)
        role = d.get("role")
        if role not in ROLES:
            raise BenchError(f"{key}.role", role, f"use one of {', '.join(ROLES)}")
        transport = d.get("transport", "serial" if kind == "real" else "emulated")
        if transport not in TRANSPORTS:
            raise BenchError(f"{key}.transport", transport, f"use one of {', '.join(TRANSPORTS)}")
        if transport == "serial" and not d.get("port"):
            raise BenchError(f"{key}.port", d.get("port"), "a serial device needs port = \"/dev/ttyUSB0\" (or /dev/serial/by-id/...)")
        if transport == "ble" and not d.get("ble_address"):
            raise BenchError(f"{key}.ble_address", None, "a BLE device needs ble_address = \"AA:BB:CC:DD:EE:FF\"")
        k = d.get("key")
        if k is not None:
            try:
                if len(bytes.fromhex(k)) != 16:
                    raise ValueError
            except ValueError:
                raise BenchError(f"{key}.key", k, "use the device's 16-byte key as 32 hex digits") from None
        relay = d.get("power_relay")
        if relay is not None and not (isinstance(relay, str) and (
                (relay.startswith("gpio:") and relay[5:].isdigit()) or relay.startswith("uhubctl:"))):
            raise BenchError(f"{key}.power_relay", relay,
                             'use "gpio:<pin>" (relay on a Pi GPIO) or "uhubctl:<hub>:<port>" (switchable USB hub)')
        dev_id = d.get("device_id")
        if dev_id is not None and not (isinstance(dev_id, str) and len(dev_id) == 12
                                       and all(c in "0123456789abcdef" for c in dev_id)):
            raise BenchError(f"{key}.device_id", dev_id, "use the board's base MAC as 12 lower-case hex digits")
        devices.append(BenchDevice(name=name, role=role, transport=transport, port=d.get("port"),
                                   console=d.get("console"),
                                   ble_address=d.get("ble_address"), key_hex=k,
                                   device_id=d.get("device_id"), power_relay=d.get("power_relay")))
    if not devices:
        raise BenchError("device", [], "describe at least one [[device]] table")
    return Bench(name=b.get("name", p.stem), kind=kind, broker_host=broker.get("host", "127.0.0.1"),
                 broker_port=port, devices=tuple(devices))

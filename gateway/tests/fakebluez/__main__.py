"""Run the fake BlueZ as its own process (for daemon-level tests and demos).

    python -m gateway.tests.fakebluez --bus "$DBUS_SYSTEM_BUS_ADDRESS" \
        --beacon A4:C1:38:0D:00:01=40000101 --interval 0.5

Each ``--beacon MAC=HEX`` is a device advertising BTHome service data ``HEX`` (bytes 1..2
of an unencrypted payload starting ``40 00 nn`` get the packet id ``nn`` incremented per
advert); ``ready`` is printed on stdout once ``org.bluez`` is owned. SIGTERM/SIGINT stop it.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from ._service import FakeBluez


def _payload(template: bytes):
    def make(n: int) -> dict[str, bytes]:
        data = bytearray(template)
        if len(data) >= 3 and data[0] == 0x40 and data[1] == 0x00:
            data[2] = n & 0xFF          # BTHome packet id
        return {"fcd2": bytes(data)}

    return make


async def _main(args: argparse.Namespace) -> int:
    bluez = await FakeBluez(args.bus).start()
    for spec in args.beacon:
        mac, _, hexdata = spec.partition("=")
        try:
            template = bytes.fromhex(hexdata)
        except ValueError:
            print(f"--beacon {spec!r}: expected MAC=HEX, e.g. A4:C1:38:0D:00:01=40000101", file=sys.stderr)
            await bluez.stop()
            return 2
        bluez.start_beacon(bluez.add_device(mac), args.interval, _payload(template))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await bluez.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gateway.tests.fakebluez", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bus", default=os.environ.get("DBUS_SYSTEM_BUS_ADDRESS"),
                   help="D-Bus address to serve org.bluez on (default: $DBUS_SYSTEM_BUS_ADDRESS)")
    p.add_argument("--beacon", action="append", default=[], metavar="MAC=HEX")
    p.add_argument("--interval", type=float, default=0.5, help="advertising interval in seconds")
    args = p.parse_args(argv)
    if not args.bus:
        p.error("--bus or DBUS_SYSTEM_BUS_ADDRESS is required (never the real system bus)")
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())

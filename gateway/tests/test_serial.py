"""Serial transport against real pseudo-terminals: bytes both ways, unplug/replug, bad paths."""
from __future__ import annotations

import asyncio
import os
import select
import time

from gateway.adapters.transports import LinkState
from gateway.adapters.transports.serial_link import SerialLink
from gateway.codec import StreamDecoder
from gateway.testing.stimuli import event_frame
from gateway.testing.waiting import async_wait_until
from gateway.tests._kit import open_pty


def read_master(fd: int, timeout_s: float = 5.0, want: int = 1) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and buf.count(0) < want:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                buf += os.read(fd, 4096)
            except OSError:
                break
    return buf


def test_bytes_both_ways_over_a_pty():
    async def run():
        master, path = open_pty()
        got: list[bytes] = []
        states: list[LinkState] = []
        link = SerialLink(path, asyncio.get_running_loop(), lambda n, d: got.append(d),
                          reconnect_s=0.1, on_state=lambda n, s: states.append(s))
        link.start()
        try:
            await async_wait_until(lambda: link.state is LinkState.UP)
            wire = event_frame(1)
            os.write(master, wire[:5])
            os.write(master, wire[5:])
            await async_wait_until(lambda: b"".join(got) == wire)
            frames = StreamDecoder().feed(b"".join(got))
            assert len(frames) == 1 and frames[0].seq == 1
            link.send(b"\x01\x02\x00")
            assert read_master(master) == b"\x01\x02\x00"
            assert link.status()["bytes_in"] == len(wire) and link.status()["state"] == "up"
            assert states[-1] is LinkState.UP and link.name == f"serial:{path}"
        finally:
            link.stop()
            os.close(master)
        assert link.state is LinkState.STOPPED
    asyncio.run(run())


def test_unplug_and_replug_through_a_symlink(tmp_path):
    """Device disappears (pty closed, symlink removed), comes back on a new node: link follows."""
    async def run():
        master1, path1 = open_pty()
        link_path = tmp_path / "ttyWT0"
        os.symlink(path1, link_path)
        got = bytearray()
        link = SerialLink(str(link_path), asyncio.get_running_loop(), lambda n, d: got.extend(d), reconnect_s=0.1)
        link.start()
        try:
            await async_wait_until(lambda: link.state is LinkState.UP)
            os.write(master1, event_frame(1))
            await async_wait_until(lambda: got.count(0) == 1)
            # unplug: node gone, path gone
            os.close(master1)
            os.unlink(link_path)
            await async_wait_until(lambda: link.state is LinkState.DOWN)
            link.send(b"lost\x00")                    # must not raise or block while down
            await asyncio.sleep(0.5)                  # several failed reopen attempts
            assert link.state is LinkState.DOWN
            # replug on a different pty
            master2, path2 = open_pty()
            os.symlink(path2, link_path)
            await async_wait_until(lambda: link.state is LinkState.UP)
            os.write(master2, event_frame(2))
            await async_wait_until(lambda: got.count(0) == 2)
            frames = StreamDecoder().feed(bytes(got))
            assert [f.seq for f in frames] == [1, 2]
            link.send(b"ack\x00")
            assert read_master(master2) == b"ack\x00"
            assert link.opens == 2 and link.dropped_writes >= 1 and link.errors >= 1
            os.close(master2)
        finally:
            link.stop()
    asyncio.run(run())


def test_missing_port_keeps_retrying_without_raising(tmp_path):
    async def run():
        link = SerialLink(str(tmp_path / "nope"), asyncio.get_running_loop(), lambda n, d: None, reconnect_s=0.05)
        link.start()
        try:
            await async_wait_until(lambda: link.errors >= 3)
            assert link.state is LinkState.DOWN and "open failed" in link.last_error
        finally:
            link.stop()
    asyncio.run(run())

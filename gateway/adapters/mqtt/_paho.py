"""Everything this adapter takes from paho beyond its public API, in one place.

paho-mqtt 2.x has no public hook for either of these, so we use private members — the
names and signatures are listed in :data:`PRIVATE_API` and checked against the installed
paho by ``gateway/tests/test_mqtt_paho_internals.py``: an upgrade that renames or changes
them fails that test instead of silently falling back to slow reads or leaking sockets.

- ``Client._sock_recv(bufsize) -> bytes`` (overridden) and ``Client._sock`` (read): paho
  reads a packet's fixed header byte by byte (``_packet_read`` calls ``_sock_recv(1)``
  two or three times per packet). On a replaying gateway those ``recv`` calls are most of
  the system calls — each also hands the GIL around — so :class:`BufferedClient` reads
  64 KiB at once and serves paho's small reads from the buffer. ``_sock`` tells it when the
  connection (and so the buffer's owner) changed.
- ``Client._sock_close()`` (called): drop a dead connection's socket *without* sending
  DISCONNECT — the session must stay on the broker (``clean_start=False``) and the last
  will must fire. Public ``disconnect()`` would end the session cleanly instead.
"""
from __future__ import annotations

import paho.mqtt.client as mqtt

#: paho private members relied on: name -> parameters (without self), or None for an attribute.
PRIVATE_API: dict[str, tuple[str, ...] | None] = {
    "_sock_recv": ("bufsize",),
    "_sock_close": (),
    "_sock": None,
}

READ_SIZE = 65536


class BufferedClient(mqtt.Client):
    """paho ``Client`` whose socket reads are buffered: one ``recv`` per readable event
    instead of up to three per packet. ``has_buffered()`` tells the driver to call
    ``loop_read`` again even though the socket is not readable any more."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._rbuf = b""
        self._rpos = 0
        self._rsock: object | None = None

    def _sock_recv(self, bufsize: int) -> bytes:
        # paho private (see module doc): every read of _packet_read goes through here
        if self._rsock is not self._sock:          # a new connection: drop the old bytes
            self._rbuf, self._rpos, self._rsock = b"", 0, self._sock
        if self._rpos >= len(self._rbuf):
            data = super()._sock_recv(READ_SIZE)   # BlockingIOError / ConnectionError pass through
            if not data:
                return data
            self._rbuf, self._rpos = data, 0
        out = self._rbuf[self._rpos:self._rpos + bufsize]
        self._rpos += len(out)
        return out

    def has_buffered(self) -> bool:
        """Bytes are waiting in our buffer (or in the TLS layer's) for the next ``loop_read``."""
        if self._rsock is self._sock and self._rpos < len(self._rbuf):
            return True
        sock = self._sock
        return bool(sock is not None and hasattr(sock, "pending") and sock.pending())

    def drop_socket(self) -> None:
        """Close the socket without DISCONNECT (the session and the last will stay armed)."""
        self._sock_close()     # paho private (see module doc): there is no public equivalent

"""Fetching a release artifact (``artifact_url`` of an ``ota``/``update`` command, docs/upgrades.md).

Blocking, bounded, and meant to run on a worker thread (the daemon calls it with
``asyncio.to_thread``: a slow or stalled server never holds the event loop, so alarms keep
flowing while it waits). Before any byte is read:

- the scheme: ``https://`` only (the server's certificate verified against
  ``upgrades.fetch_ca`` or the system store; a redirect only to another ``https://`` URL),
  or ``file://`` for a file under ``upgrades.fetch_local_dir`` (its real path, symlinks
  resolved: ``..`` or a link cannot leave the directory). ``http://`` (to any host: the
  home network is not a trust boundary), ``file://`` elsewhere and every other scheme are
  refused (``fetch_refused``);
- the size: at most ``max_bytes`` — the signed manifest's size (the signature is checked
  before the fetch starts) and never more than ``upgrades.fetch_max_mb``; a larger
  ``Content-Length`` is refused at once, a body that grows past it is cut (``too_large``);
- the time: the whole fetch (connect, TLS, headers, every chunk) ends by ``timeout_s``
  (``fetch_timeout``).

Nothing is written anywhere: the caller gets bytes in memory and checks them against the
signed size and SHA-256 before it touches a slot or sends a frame to a device.
"""
from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from gateway.adapters.upgrade._errors import UpgradeError

CHUNK = 64 * 1024
MAX_REDIRECTS = 3


def check_url(url: str, *, local_dir: str) -> str:
    """``https`` or ``file`` (the path under ``local_dir``); UpgradeError ``fetch_refused`` otherwise."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise UpgradeError(f"artifact_url {url[:80]!r} is not a URL", reason="fetch_refused") from None
    scheme = parts.scheme.lower()
    if scheme == "https" and parts.hostname:
        return "https"
    if scheme == "file":
        if not local_dir:
            raise UpgradeError(f"artifact_url {url[:80]!r}: file:// is refused on this gateway (no "
                               "[upgrades] fetch_local_dir); send the artifact inline or over https",
                               reason="fetch_refused")
        _local_path(parts, local_dir)
        return "file"
    if scheme == "http":
        raise UpgradeError(f"artifact_url {url[:80]!r}: plain http is refused (anyone on the network path could "
                           "serve or stall it); serve the artifact over https", reason="fetch_refused")
    raise UpgradeError(f"artifact_url {url[:80]!r}: scheme {scheme or '(none)'!r} cannot be fetched by this "
                       "gateway; send the artifact inline (artifact_b64) or over https", reason="fetch_refused")


def _local_path(parts: urllib.parse.SplitResult, local_dir: str) -> Path:
    if parts.netloc not in ("", "localhost"):
        raise UpgradeError(f"file://{parts.netloc}/…: only local files", reason="fetch_refused")
    root = Path(local_dir).resolve()
    path = Path(urllib.parse.unquote(parts.path)).resolve()
    if path != root and root not in path.parents:
        raise UpgradeError(f"file {path} is outside [upgrades] fetch_local_dir ({root})", reason="fetch_refused")
    return path


def fetch(url: str, *, max_bytes: int, timeout_s: float, local_dir: str = "", ca: str = "",
          monotonic: Any = time.monotonic) -> bytes:
    """The artifact's bytes (at most ``max_bytes``) within ``timeout_s``. Blocking: call it off the loop."""
    scheme = check_url(url, local_dir=local_dir)
    if scheme == "file":
        path = _local_path(urllib.parse.urlsplit(url), local_dir)
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise UpgradeError(f"{path} is {size} bytes, more than the {max_bytes} allowed", reason="too_large")
            with open(path, "rb") as f:
                return f.read(max_bytes + 1)
        except OSError as exc:
            raise UpgradeError(f"cannot read {path}: {exc.strerror or exc}", reason="fetch_failed") from None
    t_end = monotonic() + timeout_s
    try:
        ctx = ssl.create_default_context(cafile=ca or None)
    except (OSError, ssl.SSLError) as exc:
        raise UpgradeError(f"[upgrades] fetch_ca {ca!r} unusable: {exc}", reason="fetch_failed") from None
    for _ in range(MAX_REDIRECTS + 1):
        got = _https_get(url, ctx, t_end, max_bytes, timeout_s, monotonic)
        if isinstance(got, bytes):
            return got
        url = got
    raise UpgradeError(f"more than {MAX_REDIRECTS} redirects fetching the artifact", reason="fetch_failed")


def _https_get(url: str, ctx: ssl.SSLContext, t_end: float, max_bytes: int, timeout_s: float,
               monotonic: Any) -> bytes | str:
    """The body, or the https URL a redirect points to. A timer closes the socket at ``t_end``:
    a server that drips one byte at a time cannot stretch the fetch past the deadline."""
    parts = urllib.parse.urlsplit(url)
    left = t_end - monotonic()
    if left <= 0:
        raise UpgradeError(f"fetching took longer than {timeout_s:g} s ([upgrades] fetch_timeout_s)",
                           reason="fetch_timeout")
    conn = http.client.HTTPSConnection(parts.hostname or "", parts.port or 443, timeout=min(left, 30.0),
                                       context=ctx)
    timer = threading.Timer(left, _abort, (conn,))
    timer.daemon = True
    timer.start()
    try:
        conn.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                     headers={"User-Agent": "wt-gateway", "Accept-Encoding": "identity"})
        resp = conn.getresponse()
        if resp.status in (301, 302, 303, 307, 308):
            new = urllib.parse.urljoin(url, resp.getheader("Location") or "")
            if urllib.parse.urlsplit(new).scheme.lower() != "https":
                raise UpgradeError(f"the artifact server redirected to {new[:80]!r}: only https is followed",
                                   reason="fetch_refused")
            return new
        if resp.status != 200:
            raise UpgradeError(f"the artifact server answered {resp.status} {resp.reason}", reason="fetch_failed")
        length = resp.getheader("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > max_bytes:
            raise UpgradeError(f"the artifact is {length.strip()} bytes, more than the {max_bytes} allowed",
                               reason="too_large")
        out = bytearray()
        while True:
            chunk = resp.read1(CHUNK) if hasattr(resp, "read1") else resp.read(CHUNK)
            if not chunk:
                return bytes(out)
            out += chunk
            if len(out) > max_bytes:
                raise UpgradeError(f"the artifact grew past the {max_bytes} bytes allowed; refused",
                                   reason="too_large")
            if monotonic() >= t_end:
                raise socket.timeout()
    except UpgradeError:
        raise
    except (socket.timeout, TimeoutError, OSError, http.client.HTTPException, ssl.SSLError, ValueError) as exc:
        if monotonic() >= t_end - 0.01 or isinstance(exc, (socket.timeout, TimeoutError)):
            raise UpgradeError(f"fetching {url[:80]} took longer than {timeout_s:g} s ([upgrades] fetch_timeout_s)",
                               reason="fetch_timeout") from None
        raise UpgradeError(f"cannot fetch {url[:80]}: {exc}", reason="fetch_failed") from None
    finally:
        timer.cancel()
        conn.close()


def _abort(conn: http.client.HTTPSConnection) -> None:
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def max_fetch_bytes(signed_size: int, cap_mb: float) -> int:
    return min(int(signed_size), int(cap_mb * 1024 * 1024))


__all__ = ["check_url", "fetch", "max_fetch_bytes"]

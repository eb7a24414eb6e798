# Over-the-air update of the application bundle (imported lazily by App).
#
# OTA_BEGIN (size, sha256, version, signature) -> stream OTA_CHUNKs in order
# into <data>/ota/incoming, hashing as they arrive -> OTA_END: check size and
# SHA-256 against the authenticated OTA_BEGIN, unpack into the inactive slot
# (every file's SHA-256 checked against the bundle's manifest), mark it
# "pending" in <data>/ota/state (atomic) and reboot. main.py boots a pending
# slot at most twice; App confirms it after a health check (gateway reachable,
# role healthy, confirm_s of uptime) or main.py rolls back. The active slot is
# never written, so a power cut at any point leaves a bootable device.
#
# Bundle container (firmware/build.py): b"WTB1", u16 manifest length, manifest
# JSON {"version", "role", "files": [{"path", "size", "sha256"}]}, then the
# files' bytes in manifest order.
from micropython import const
import os
import json
import struct
import hashlib
from binascii import hexlify
from time import ticks_diff, ticks_add
import wire
import store

_MAX_CHUNK = const(200)
_RC_SOFT = const(4)
# OTA_STATUS states (docs/protocol.md)
_IDLE = const(0)
_RECEIVING = const(1)
_VERIFIED = const(2)
_PENDING_REBOOT = const(3)
_COMMITTED = const(4)
_ROLLED_BACK = const(5)
_FAILED = const(6)
_REBOOT_DELAY_MS = const(500)
_MAGIC = b"WTB1"
_IO = const(256)


def read_state(path):
    try:
        with open(path) as f:
            st = json.load(f)
        return st if isinstance(st, dict) else {}
    except (OSError, ValueError):
        return {}


def write_state(path, st):
    store.write_atomic(path, json.dumps(st).encode(), False)


def rmtree(path):
    try:
        entries = list(os.ilistdir(path))
    except OSError:
        return
    for e in entries:
        p = path + "/" + e[0]
        if e[1] == 0x4000:
            rmtree(p)
        else:
            os.remove(p)
    os.rmdir(path)


def parse_begin(p):
    """(total_size, sha256, version, signature) or None."""
    if len(p) < 38:
        return None
    size = struct.unpack("<I", p[0:4])[0]
    vl = p[36]
    if 37 + vl + 1 > len(p):
        return None
    try:
        ver = p[37:37 + vl].decode()
    except UnicodeError:
        return None
    sl = p[37 + vl]
    sig = p[38 + vl:]
    if len(sig) != sl or sl not in (0, 64):
        return None
    return size, bytes(p[4:36]), ver, bytes(sig)


def unpack(bundle_path, slot_dir):
    """Install a bundle into ``slot_dir``. Returns None or an error string."""
    rmtree(slot_dir)
    store.mkdirs(slot_dir)
    with open(bundle_path, "rb") as f:
        if f.read(4) != _MAGIC:
            return "not a WTB1 bundle"
        n = struct.unpack("<H", f.read(2))[0]
        try:
            man = json.loads(f.read(n))
            files = man["files"]
        except (ValueError, KeyError, TypeError):
            return "bad manifest"
        buf = bytearray(_IO)
        for ent in files:
            path = ent.get("path", "") if isinstance(ent, dict) else ""
            if not path or path[0] == "/" or ".." in path or path == "main.py":
                return "bad path %r" % path
            parent = path.rsplit("/", 1)[0] if "/" in path else ""
            if parent:
                store.mkdirs(slot_dir + "/" + parent)
            left = ent.get("size", -1)
            h = hashlib.sha256()
            with open(slot_dir + "/" + path, "wb") as out:
                while left > 0:
                    k = f.readinto(memoryview(buf)[:min(left, _IO)])
                    if not k:
                        return "truncated at %s" % path
                    h.update(memoryview(buf)[:k])
                    out.write(memoryview(buf)[:k])
                    left -= k
            if hexlify(h.digest()).decode() != ent.get("sha256"):
                return "hash mismatch %s" % path
    return None


class Ota:
    def __init__(self, app):
        self.app = app
        d = app.hal.data_dir + "/ota"
        store.mkdirs(d)
        self._dir = d
        self._state_path = d + "/state"
        self._incoming = d + "/incoming"
        self.state = _IDLE
        self._f = None
        self._h = None
        self._size = 0
        self._sha = None
        self._ver = ""
        self._off = 0
        self._reboot_at = None
        self.reboot = True    # tests may set False to inspect the verified state

    def _status(self, state, version=None):
        self.state = state
        v = self._ver if version is None else version
        self.app.link.send(wire.T_OTA_STATUS, wire.ota_status_payload(state, v))

    def _ack(self, f):
        self.app.link.send(wire.T_ACK, wire.ack_payload(f.seq, wire.ACK_STORED))

    def _fail(self, code, msg, reason):
        self.app.reject(reason)
        self._close()
        store.remove(self._incoming)
        self.app.link.error(code, msg)
        self._status(_FAILED)

    def _close(self):
        if self._f is not None:
            self._f.close()
            self._f = None

    def busy(self):
        """A transfer is open or a reboot into a new slot is pending (no deep sleep now)."""
        return self._f is not None or self._reboot_at is not None

    def report_boot(self):
        """At boot: tell the gateway how the last update ended (committed / rolled back)."""
        st = read_state(self._state_path)
        res = st.get("result")
        if res == "rolled_back":
            self._status(_ROLLED_BACK, st.get("version", ""))
        elif self.app.boot_slot is not None:
            self._status(_PENDING_REBOOT, st.get("version", ""))
            return
        if res:
            st["result"] = None
            write_state(self._state_path, st)
        # a transfer cut by a reset is void; its partial file is dropped
        store.remove(self._incoming)

    def handle(self, f):
        t = f.type
        if t == wire.T_OTA_BEGIN:
            self._begin(f)
        elif t == wire.T_OTA_CHUNK:
            self._chunk(f)
        else:
            self._end(f)

    def _begin(self, f):
        b = parse_begin(f.payload)
        if b is None:
            return self._fail(wire.E_BAD_PAYLOAD, "OTA_BEGIN malformed", "bad_payload")
        size, sha, ver, _sig = b
        self._close()
        st = read_state(self._state_path)
        if st.get("sha") == hexlify(sha).decode() and st.get("active") and not st.get("pending"):
            # re-applying the running deployment is a no-op
            self._ack(f)
            self._ver = ver
            return self._status(_COMMITTED)
        free = os.statvfs(self.app.hal.data_dir)
        if size == 0 or 2 * size + 8192 > free[0] * free[3]:
            return self._fail(wire.E_STORAGE_FULL, "OTA %d bytes: not enough flash" % size, "ota")
        self._f = open(self._incoming, "wb")
        self._h = hashlib.sha256()
        self._size = size
        self._sha = sha
        self._ver = ver
        self._off = 0
        self._ack(f)
        self._status(_RECEIVING)

    def _chunk(self, f):
        p = f.payload
        if self._f is None:
            self.app.reject("ota")
            return self.app.link.error(wire.E_OTA_ORDER, "OTA_CHUNK without OTA_BEGIN")
        if len(p) < 5 or len(p) > 4 + _MAX_CHUNK:
            return self._fail(wire.E_BAD_PAYLOAD, "OTA_CHUNK length %d" % len(p), "bad_payload")
        off = struct.unpack("<I", p[:4])[0]
        data = p[4:]
        if off + len(data) <= self._off:
            return self._ack(f)  # a resend whose ACK was lost: already written
        if off != self._off:
            self.app.reject("ota")
            return self.app.link.error(wire.E_OTA_ORDER, "expected offset %d, got %d" % (self._off, off))
        if off + len(data) > self._size:
            return self._fail(wire.E_BAD_PAYLOAD, "chunk past total_size %d" % self._size, "ota")
        try:
            self._f.write(data)
        except OSError:
            return self._fail(wire.E_STORAGE_FULL, "flash write failed at %d" % off, "flash")
        self._h.update(data)
        self._off += len(data)
        self._ack(f)

    def _end(self, f):
        if self._f is None:
            self.app.reject("ota")
            return self.app.link.error(wire.E_OTA_ORDER, "OTA_END without OTA_BEGIN")
        if self._off != self._size:
            return self._fail(wire.E_OTA_ORDER, "truncated: %d of %d bytes" % (self._off, self._size), "ota")
        self._close()
        if self._h.digest() != self._sha:
            return self._fail(wire.E_OTA_HASH, "SHA-256 mismatch", "ota")
        st = read_state(self._state_path)
        slot = "b" if st.get("active") == "a" else "a"
        err = unpack(self._incoming, self._dir + "/" + slot)
        store.remove(self._incoming)
        if err is not None:
            return self._fail(wire.E_OTA_HASH, "bundle: " + err, "ota")
        st["prev"] = st.get("active")
        st["pending"] = slot
        st["tries"] = 0
        st["version"] = self._ver
        st["new_sha"] = hexlify(self._sha).decode()
        st["result"] = None
        write_state(self._state_path, st)
        self._status(_VERIFIED)
        self._ack(f)
        self._status(_PENDING_REBOOT)
        if self.reboot:
            self._reboot_at = ticks_add(self.app.now(), _REBOOT_DELAY_MS)

    def poll(self, now):
        if self._reboot_at is not None:
            left = ticks_diff(self._reboot_at, now)
            if left > 0:
                return left
            self.app.hal.reset(_RC_SOFT)
        app = self.app
        if app.boot_slot is None:
            return None
        up = ticks_diff(now, app.started_ms)
        need = app.cfg.get("confirm_s") * 1000
        if up < need:
            return need - up
        if app.gateway_seen and app.role.healthy():
            self.confirm()
            return None
        if up >= 3 * need:
            # the new firmware cannot reach the gateway: reset; main.py rolls back after 2 tries
            app.hal.reset(_RC_SOFT)
        return 1000

    def confirm(self):
        st = read_state(self._state_path)
        if st.get("pending") != self.app.boot_slot:
            self.app.boot_slot = None
            return
        st["active"] = st["pending"]
        st["pending"] = None
        st["tries"] = 0
        st["sha"] = st.get("new_sha")
        st["result"] = None
        write_state(self._state_path, st)
        self.app.hal.confirm_image()
        self.app.boot_slot = None
        self._status(_COMMITTED, st.get("version", ""))

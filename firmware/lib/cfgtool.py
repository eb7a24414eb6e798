# Configuration tooling, needed only at boot and for CONFIG frames: imported
# lazily and dropped from sys.modules afterwards (RAM). The schema below is the
# only place defaults live. Stored as JSON in <data>/config.json (a technician
# writes it with mpremote; the gateway changes it with CONFIG frames).
#
# A schema entry is  key: (kind, default, lo, hi)
#   kind "i" int in lo..hi, "b" bool, "s" str in the tuple ``lo``, "k" hex key
#   (32 hex digits, or "" for an unauthenticated bench device), "t" free text of
#   lo..hi characters, "l" JSON list of lo..hi items (the role validates the items,
#   e.g. GPS zones).
import json
import struct
import store
import wire
from config import Config

COMMON = {
    "role": ("s", "button", ("button", "fall", "bed", "door", "motion", "gps", "dispenser"), None),
    "key": ("k", "", None, None),
    "heartbeat_s": ("i", 300, 10, 86400),
    "retry_ms": ("i", 2000, 200, 60000),
    "retry_max_ms": ("i", 60000, 1000, 600000),
    "queue_max": ("i", 32, 4, 48),
    "inflight": ("i", 4, 1, 16),
    "wdt_ms": ("i", 30000, 2000, 120000),
    "low_battery_pct": ("i", 20, 0, 100),
    "confirm_s": ("i", 60, 5, 3600),
}
# keys the gateway may not change over the air (a wrong role or key bricks the link)
LOCAL_ONLY = ("role", "key")


class ConfigError(Exception):
    def __init__(self, key, value, fix):
        super().__init__("%s=%r: %s" % (key, value, fix))
        self.key = key
        self.value = value
        self.fix = fix


def check(key, value, spec):
    """The validated value, or raise ConfigError naming the key and the fix."""
    kind, default, lo, hi = spec
    if kind == "i":
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ConfigError(key, value, "must be an integer in %d..%d (default %d)" % (lo, hi, default))
    elif kind == "b":
        if not isinstance(value, bool):
            raise ConfigError(key, value, "must be true or false (default %s)" % ("true" if default else "false"))
    elif kind == "s":
        if value not in lo:
            raise ConfigError(key, value, "must be one of " + ", ".join(lo))
    elif kind == "t":
        if not isinstance(value, str) or not lo <= len(value) <= hi:
            raise ConfigError(key, value, "must be text of %d..%d characters" % (lo, hi))
    elif kind == "l":
        if not isinstance(value, list) or not lo <= len(value) <= hi:
            raise ConfigError(key, value, "must be a JSON list of %d..%d items" % (lo, hi))
    elif kind == "k":
        ok = isinstance(value, str) and (value == "" or len(value) == 32)
        if ok:
            try:
                bytes.fromhex(value)
            except ValueError:
                ok = False
        if not ok:
            raise ConfigError(key, "<hidden>", "must be 32 hex digits (the 16-byte device key)")
    return value


def schema_for(role_schema):
    """COMMON + the role's SCHEMA: a dict, or the name of a lib module exporting
    SCHEMA (imported for this use and dropped again: the table is not kept in RAM)."""
    s = dict(COMMON)
    if isinstance(role_schema, str):
        import sys
        mod = __import__(role_schema)
        sys.modules.pop(role_schema, None)
        role_schema = mod.SCHEMA
    if role_schema:
        s.update(role_schema)
    return s


def build(raw, schema, version, strict):
    """Config from a dict. strict: raise on the first bad key; else fall back to defaults."""
    values = {}
    problems = []
    for key in raw:
        if key not in schema and key != "config_version":
            if strict:
                raise ConfigError(key, raw[key], "unknown key; known keys: " + ", ".join(sorted(schema)))
            problems.append(ConfigError(key, raw[key], "unknown key (ignored)"))
    for key in schema:
        spec = schema[key]
        if key in raw:
            try:
                values[key] = check(key, raw[key], spec)
                continue
            except ConfigError as e:
                if strict:
                    raise
                problems.append(e)
        values[key] = spec[1]
    return Config(values, version, [str(p) for p in problems])


def load(path, role_schema=None):
    """Config from the JSON file at ``path``; bad values fall back (see .problems)."""
    raw = {}
    problems = []
    try:
        with open(path) as f:
            raw = json.load(f)
        if not isinstance(raw, dict):
            problems.append(ConfigError("config.json", type(raw).__name__, "must be a JSON object"))
            raw = {}
    except OSError:
        problems.append(ConfigError("config.json", "<missing>", "not found; every setting is at its default"))
    except ValueError:
        problems.append(ConfigError("config.json", "<unparsable>", "is not valid JSON; rewrite it"))
    version = raw.get("config_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= 0xFFFFFFFF:
        problems.append(ConfigError("config_version", version, "must be an integer in 0..4294967295"))
        version = 0
    cfg = build(raw, schema_for(role_schema), version, False)
    cfg.problems = [str(p) for p in problems + cfg.problems]
    return cfg


def read_role(path):
    """Only the role name (main.py needs it before importing the role module)."""
    try:
        with open(path) as f:
            raw = json.load(f)
        role = raw.get("role", "button") if isinstance(raw, dict) else "button"
    except (OSError, ValueError):
        role = "button"
    return role if role in COMMON["role"][2] else "button"


def apply_update(current, patch, version, role_schema):
    """New Config = current + patch (validated strictly), or raise ConfigError."""
    if not isinstance(patch, dict):
        raise ConfigError("config", type(patch).__name__, "must be a JSON object")
    for key in LOCAL_ONLY:
        if key in patch and patch[key] != current.get(key):
            raise ConfigError(key, "<hidden>" if key == "key" else patch[key],
                              "not settable over the air; re-provision")
    raw = {}
    for k in current._v:
        raw[k] = current._v[k]
    raw.update(patch)
    raw.pop("config_version", None)
    return build(raw, schema_for(role_schema), version, True)


def save(path, cfg):
    d = {}
    for k in cfg._v:
        d[k] = cfg._v[k]
    d["config_version"] = cfg.version
    store.write_atomic(path, json.dumps(d).encode(), False)


def report(cfg, schema):
    """JSON of the role and every setting that differs from its default (never the key)."""
    v = cfg._v
    d = {"role": v["role"]}
    for k in v:
        if k != "key" and k in schema and v[k] != schema[k][1]:
            d[k] = v[k]
    return json.dumps(d)


def send_report(app):
    """Answer CONFIG_GET."""
    js = report(app.cfg, schema_for(app.role.SCHEMA)).encode()
    if len(js) > wire.MAX_PAYLOAD - 4:
        app.link.error(wire.E_BUSY, "config report exceeds one frame")
        return
    app.link.send(wire.T_CONFIG, struct.pack("<I", app.cfg.version) + js)


def handle_set(app, f):
    """A CONFIG set: validate strictly, save, apply, ACK - or ERROR 6 naming the key."""
    p = f.payload
    if len(p) < 6:
        return False
    version = struct.unpack("<I", p[:4])[0]
    try:
        patch = json.loads(p[4:])
        new = apply_update(app.cfg, patch, version, app.role.SCHEMA)
    except ValueError:
        app.reject("config")
        app.link.error(wire.E_BAD_CONFIG, "config: not a JSON object")
        return True
    except ConfigError as e:
        app.reject("config")
        app.link.error(wire.E_BAD_CONFIG, str(e))
        return True
    try:
        save(app.cfg_path, new)
    except OSError:
        app.reject("flash")
        app.link.error(wire.E_STORAGE_FULL, "config not saved")
        return True
    app.cfg = new
    app.queue.capacity = new.get("queue_max")
    app.role.on_config(new)
    app.link.send(wire.T_ACK, wire.ack_payload(f.seq, wire.ACK_STORED))
    return True

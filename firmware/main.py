# Boot (stage 0, never replaced by OTA): pick the code slot, read the role from
# the configuration, run it. A slot installed by OTA is tried at most twice
# before this file rolls back to the last confirmed one (see docs/firmware.md).
import sys
import json
import os

_TRIES = 2
_CFG = "/config.json"
_DATA = "/data"  # the ESP32 HAL's data_dir
# firmware modules that a reboot must re-import (hal.* is stage 0 and stays)
_PURGE = ("hal", "main")
_loaded = [None]  # slot dir whose modules are imported (changes only on the host)


def _read_state(path):
    try:
        with open(path) as f:
            st = json.load(f)
        return st if isinstance(st, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_state(path, st):
    with open(path + ".t", "w") as f:
        json.dump(st, f)
    os.rename(path + ".t", path)


def select_slot(data_dir):
    """(slot name or None, slot dir or None, on_trial). Counts tries of a new slot."""
    path = data_dir + "/ota/state"
    st = _read_state(path)
    pending = st.get("pending")
    if pending in ("a", "b"):
        tries = st.get("tries", 0) + 1
        if tries > _TRIES:
            st["pending"] = None
            st["tries"] = 0
            st["result"] = "rolled_back"
            _write_state(path, st)
        else:
            st["tries"] = tries
            _write_state(path, st)
            return pending, data_dir + "/ota/" + pending, True
    active = st.get("active")
    if active in ("a", "b"):
        return active, data_dir + "/ota/" + active, False
    return None, None, False


def _purge_modules():
    """Forget firmware modules loaded from another slot (emulated reboots on the host)."""
    for name in list(sys.modules):
        m = sys.modules[name]
        if not name.startswith(_PURGE) and (hasattr(m, "__file__") or hasattr(m, "__path__")):
            del sys.modules[name]


def _set_path(slot_dir, base):
    # drop any slot dirs a previous (emulated) boot put in front
    while sys.path and "/ota/" in sys.path[0]:
        sys.path.pop(0)
    if slot_dir:
        sys.path.insert(0, slot_dir + "/lib")
        sys.path.insert(0, slot_dir)


def run(hal, selection=None):
    """Boot the firmware on ``hal`` (returns only on the host, via its exceptions).

    ``selection``: (slot, dir, trial) if the caller already chose the slot (main()
    does, so that the slot's own HAL is imported on the ESP32).
    """
    d = hal.data_dir
    name, slot_dir, trial = selection if selection is not None else select_slot(d)
    if _loaded[0] != slot_dir:
        _purge_modules()
        _set_path(slot_dir, d)
        _loaded[0] = slot_dir
    import gc
    gc.collect()
    import cfgtool
    import app as app_mod
    import version
    cfg_path = d + _CFG
    role_name = cfgtool.read_role(cfg_path)
    mod = __import__("roles." + role_name, None, None, ("ROLE_CLASS",))
    cls = mod.ROLE_CLASS
    cfg = cfgtool.load(cfg_path, cls.SCHEMA)
    fw = version.FW_VERSION
    del cfgtool, version
    sys.modules.pop("cfgtool", None)  # boot-time only: let the GC take them
    sys.modules.pop("version", None)
    gc.collect()
    app_mod.App(hal, cfg, cls, fw, cfg_path, name if trial else None).run()


def boot(hal, selection=None):
    """run() guarded: any crash resets the device (an OTA trial boot counts it)."""
    try:
        run(hal, selection)
    except Exception as e:  # last resort: log, then reset
        sys.print_exception(e)
        hal.reset(4)


def main():
    # choose the slot before importing the HAL, so an OTA can update the HAL too;
    # a new slot whose HAL fails to import still counts as a failed try
    try:
        os.mkdir(_DATA)
    except OSError:
        pass  # exists (the normal case)
    sel = select_slot(_DATA)
    _set_path(sel[1], _DATA)
    _loaded[0] = sel[1]
    try:
        from hal.esp32 import Esp32Hal
        hal = Esp32Hal()
    except Exception as e:  # a broken HAL in a new slot: reset, main.py rolls back after 2 tries
        sys.print_exception(e)
        import machine
        machine.reset()
    boot(hal, sel)


if __name__ == "__main__":
    main()

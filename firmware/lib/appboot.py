# Boot-time part of the App (app.py): HELLO, configuration problems, flash
# problems, the OTA result report, the watchdog, role start. Imported by App.boot()
# and dropped again right away (its code is not needed once the loop runs: RAM).
import json
import store
import wire


def boot(app):
    cfg = app.cfg
    app.link.send(wire.T_HELLO, wire.hello_payload(app.role.ROLE, app.hal.reset_cause(),
                                                    cfg.version, app.fw_version))
    for p in cfg.problems:
        app.reject("config")
        app.link.error(wire.E_BAD_CONFIG, p)
    if app.queue.corrupt:
        for _ in range(app.queue.corrupt):
            app.reject("flash")
    ota = app._ota(_ota_pending(app))
    if ota is not None:
        ota.report_boot()
        app._ota_drop()
    app._wdt = app.hal.wdt(cfg.get("wdt_ms"))
    app.role.start()


def _ota_pending(app):
    """At boot: is there OTA business (trial slot, result to report, partial download)?"""
    d = app._dir + "/ota"
    if app.boot_slot is not None or store.exists(d + "/incoming"):
        return True
    try:
        with open(d + "/state") as f:
            return bool(json.load(f).get("result"))
    except (OSError, ValueError, AttributeError):
        return store.exists(d + "/state.t")

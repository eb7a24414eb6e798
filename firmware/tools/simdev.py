# Build a simulated device (HostHal + SimGateway on an in-process link) for
# tests and benches. MicroPython only (uses the host HAL).
import os
import json
from hal.host import HostHal, SimClock, loop_pair
from simgw import SimGateway

KEY = bytes(range(16))


def fresh(path):
    try:
        os.remove(path)
    except OSError:
        pass


def make(img, role, cfg=None, end_ms=None, key=KEY, new=True, gw_ack=True, keep=None, **hal_kw):
    """(hal, gw): a device of ``role`` whose flash image is ``img`` (wiped if new)."""
    if new:
        fresh(img)
    dev, peer = loop_pair()
    uarts = hal_kw.pop("uarts", {})
    uarts["link"] = dev
    hal = HostHal(flash=img, clock=SimClock(0, end_ms), uarts=uarts, **hal_kw)
    gw = SimGateway(peer, hal.device_id(), key, gw_ack, keep=keep)
    hal.peers.insert(0, gw)
    if new or cfg is not None:
        c = {"role": role, "key": key.hex() if key else ""}
        if cfg:
            c.update(cfg)
        with open(hal.data_dir + "/config.json", "w") as f:
            json.dump(c, f)
    return hal, gw


def boot(hal):
    import main
    hal.run(main.boot)

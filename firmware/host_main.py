# Run a role on the MicroPython unix port against a real serial device or pty
# (hardware-in-the-loop benches; see docs/firmware.md "Host runner").
#
#   micropython -X heapsize=64k host_main.py --link /dev/pts/7 --flash dev.img \
#       [--role button] [--key HEX32] [--device-id a4c1380a1b2c] \
#       [--pins button=trace.txt,...] [--adcs load=bed.txt] [--uart dispenser=/dev/pts/8] \
#       [--acc samples.csv [--acc-rate 50]] [--gps walk.nmea [--gps-rate 960]] [--seconds N]
#
# --role/--key write config.json when given; traces are "t_ms value" files
# (time since start). Ctrl-C or --seconds ends the run. --acc replays an
# accelerometer recording (drivers/replay.py formats) through the LIS3DH register
# model at I2C "acc" address 0x19 (fall role); --gps replays an NMEA log on UART
# "gps" at --gps-rate bytes/s (gps role).
import sys
import json

if __name__ == "__main__" and "/" in __file__:
    # run straight from the source tree: put firmware/{lib,tools} and firmware on the path
    _here = __file__.rsplit("/", 1)[0]
    sys.path[:0] = [_here + "/lib", _here + "/tools", _here]


def _opts(argv):
    o = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if not a.startswith("--") or i + 1 >= len(argv):
            raise SystemExit("usage: host_main.py --link PATH --flash IMG [--role R] [--key HEX] ...; bad: " + a)
        o[a[2:]] = argv[i + 1]
        i += 2
    return o


def _pairs(s):
    d = {}
    for kv in s.split(",") if s else ():
        k, v = kv.split("=", 1)
        d[k] = v
    return d


def main(argv):
    o = _opts(argv)
    if "link" not in o:
        raise SystemExit("host_main.py: --link PATH (the pty or serial device to the gateway) is required")
    from hal.host import HostHal, RealClock, SimClock
    uarts = _pairs(o.get("uart", ""))
    uarts["link"] = o["link"]
    dev = bytes.fromhex(o.get("device-id", "020000000001"))
    secs = int(o.get("seconds", "0"))
    clock = RealClock()
    i2c = {}
    acc = None
    if "acc" in o or "gps" in o:
        from drivers.replay import SampleFile, Lis3dhModel, NmeaUart
        if "gps" in o:
            uarts["gps"] = NmeaUart(o["gps"], clock, int(o.get("gps-rate", "960")))
        if "acc" in o:
            from hal.host import HostI2C
            acc = Lis3dhModel(SampleFile(o["acc"], int(o.get("acc-rate", "50"))), clock)
            i2c["acc"] = HostI2C({0x19: acc})
    hal = HostHal(flash=o.get("flash", "/tmp/wt-host.img"), clock=clock, uarts=uarts,
                  pins=_pairs(o.get("pins", "")), adcs=_pairs(o.get("adcs", "")), device_id=dev, i2c=i2c)
    if "role" in o or "key" in o:
        path = hal.data_dir + "/config.json"
        try:
            with open(path) as f:
                cfg = json.load(f)
        except (OSError, ValueError):
            cfg = {}
        if "role" in o:
            cfg["role"] = o["role"]
        if "key" in o:
            cfg["key"] = o["key"]
        if "heartbeat" in o:
            cfg["heartbeat_s"] = int(o["heartbeat"])
        with open(path + ".t", "w") as f:
            json.dump(cfg, f)
        import os
        os.rename(path + ".t", path)
    if secs:
        hal.deadline_ms = secs * 1000
    print("host_main: device %s on %s, flash %s" % (dev.hex(), o["link"], hal.flash_path))
    import main as boot_main
    try:
        hal.run(boot_main.boot)
    except KeyboardInterrupt:
        pass
    hal.unmount()


if __name__ == "__main__":
    main(sys.argv[1:])

# MicroPython manifest: freeze the firmware into a custom ESP32 image, so its
# bytecode runs from flash and costs no heap (see docs/firmware.md "RAM").
#
#   cd micropython/ports/esp32
#   make BOARD=ESP32_GENERIC BOARD_VARIANT=OTA FROZEN_MANIFEST=/path/to/firmware/manifest.py
#
# OTA still works: main.py puts the active slot's directories in front of
# ".frozen" on sys.path, so files installed by an OTA shadow the frozen ones.
#
# Only device code is frozen. lib/ also holds host-only modules (the gateway side of the
# wire codec, used by tools/simgw.py and the tests) that must never be on a device:
# they are listed in HOST_ONLY and left out. firmware/tests/test_manifest.py checks that
# everything frozen is in a role's import closure (firmware/build.py) and nothing
# host-only is. makemanifest runs this file with the current directory set to its own.
import os

HOST_ONLY = ("wire_gw.py",)

include("$(PORT_DIR)/boards/manifest.py")
freeze("lib", tuple(sorted(f for f in os.listdir("lib") if f.endswith(".py") and f not in HOST_ONLY)))
freeze(".", ("hal/esp32.py", "hal/esp32_ble.py"))
freeze(".", tuple("roles/%s.py" % r for r in ("button", "bed", "door", "motion", "dispenser", "fall", "gps")))
freeze(".", ("drivers/lis3dh.py",))

# MicroPython manifest: freeze the firmware into a custom ESP32 image, so its
# bytecode runs from flash and costs no heap (see docs/firmware.md "RAM").
#
#   cd micropython/ports/esp32
#   make BOARD=ESP32_GENERIC BOARD_VARIANT=OTA FROZEN_MANIFEST=/path/to/firmware/manifest.py
#
# OTA still works: main.py puts the active slot's directories in front of
# ".frozen" on sys.path, so files installed by an OTA shadow the frozen ones.
include("$(PORT_DIR)/boards/manifest.py")
freeze("lib")
freeze(".", ("hal/esp32.py", "hal/esp32_ble.py"))
freeze(".", tuple("roles/%s.py" % r for r in ("button", "bed", "door", "motion", "dispenser", "fall", "gps")))
freeze(".", ("drivers/lis3dh.py",))

"""Emulated home devices speaking the real protocol, for the demo, tests and benches."""
from gateway.testing.emulator._device import AdvertDevice, Emitted, FrameDevice
from gateway.testing.emulator.devices import (DEVICE_CLASSES, BedSensor, DoorSensor, FallSensor, GpsTracker,
                                      MedicineDispenser, SafetyButton)
from gateway.testing.emulator.home import DEMO_ROLES, EmulatedHome, device_id_for, home_devices, key_for

__all__ = ["AdvertDevice", "Emitted", "FrameDevice", "DEVICE_CLASSES", "BedSensor", "DoorSensor",
           "FallSensor", "GpsTracker", "MedicineDispenser", "SafetyButton", "DEMO_ROLES", "EmulatedHome",
           "device_id_for", "home_devices", "key_for"]

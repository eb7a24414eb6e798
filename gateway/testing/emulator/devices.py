"""The emulated home's devices: button, fall sensor, bed, door, medicine dispenser, GPS."""
from __future__ import annotations

from gateway.codec.bthome import DOOR, OCCUPANCY
from gateway.testing.emulator._device import AdvertDevice, Emitted, FrameDevice
from gateway.domain.model import EventCode, Role
from gateway.testing.stimuli import offset_position


class SafetyButton(FrameDevice):
    """Safety alarm pendant (trygghetsalarm) on a serial / GATT frame link."""

    role = Role.BUTTON

    def press(self) -> Emitted:
        return self.emit(EventCode.BUTTON_PRESS)

    def cancel(self) -> Emitted:
        return self.emit(EventCode.BUTTON_CANCEL)


class FallSensor(FrameDevice):
    role = Role.FALL

    def fall(self, peak_cg: int = 412, placement: int = 0) -> Emitted:
        return self.emit(EventCode.FALL_DETECTED, {"peak_cg": peak_cg, "placement": placement})

    def cancelled(self, peak_cg: int = 300, placement: int = 0) -> Emitted:
        return self.emit(EventCode.FALL_CANCELLED, {"peak_cg": peak_cg, "placement": placement})


class BedSensor(AdvertDevice):
    """Bed occupancy pad advertising BTHome occupancy (1 in bed, 0 out)."""

    role = Role.BED

    def out_of_bed(self) -> Emitted:
        return self.advertise_event(EventCode.BED_OUT, [(OCCUPANCY, 0)])

    def in_bed(self) -> Emitted:
        return self.advertise_event(EventCode.BED_IN, [(OCCUPANCY, 1)])

    def seizure(self) -> Emitted:
        return self.advertise_raw_event(EventCode.BED_SEIZURE)


class DoorSensor(AdvertDevice):
    role = Role.DOOR

    def open(self) -> Emitted:
        return self.advertise_event(EventCode.DOOR_OPEN, [(DOOR, 1)])

    def close(self) -> Emitted:
        return self.advertise_event(EventCode.DOOR_CLOSED, [(DOOR, 0)])


class MedicineDispenser(FrameDevice):
    role = Role.DISPENSER

    def dose_due(self, slot: int, scheduled_min: int) -> Emitted:
        return self.emit(EventCode.DOSE_DUE, {"slot": slot, "scheduled_min": scheduled_min})

    def dose_taken(self, slot: int, scheduled_min: int) -> Emitted:
        return self.emit(EventCode.DOSE_TAKEN, {"slot": slot, "scheduled_min": scheduled_min})

    def dose_missed(self, slot: int, scheduled_min: int) -> Emitted:
        return self.emit(EventCode.DOSE_MISSED, {"slot": slot, "scheduled_min": scheduled_min})


class GpsTracker(FrameDevice):
    """Dementia GPS tracker at home (frames over the GATT WT service, here emulated)."""

    role = Role.GPS

    def __init__(self, *args, home: tuple[float, float] = (59.9139, 10.7522), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lat, self.lon = home

    def walk(self, north_m: float, east_m: float) -> None:
        self.lat, self.lon = offset_position(self.lat, self.lon, north_m, east_m)

    def position(self) -> Emitted:
        return self.emit(EventCode.GPS_POSITION, {"lat": self.lat, "lon": self.lon, "alt_m": 12,
                                                  "fix_quality": 1, "sats": 8, "zone": 0xFF})


DEVICE_CLASSES = {
    Role.BUTTON: SafetyButton, Role.FALL: FallSensor, Role.BED: BedSensor, Role.DOOR: DoorSensor,
    Role.DISPENSER: MedicineDispenser, Role.GPS: GpsTracker,
}

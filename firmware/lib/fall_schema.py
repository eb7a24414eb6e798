# Settings of the fall sensor role (roles/fall.py): key -> (kind, default, lo, hi), see
# cfgtool.py. A module of its own so the table is in RAM only while cfgtool needs
# it (at boot and per CONFIG frame); docs/fall-detection.md describes the keys.
from fall import PLACEMENT_NAMES

SCHEMA = {
    "placement": ("s", "waist", PLACEMENT_NAMES, None),
    "rate_hz": ("s", "50", ("25", "50", "100"), None),
    "cancel_s": ("i", 20, 0, 120),
    "impact_mg": ("i", 0, 0, 16000),      # 0 = the placement's default
    "angle_deg": ("i", -1, -1, 90),       # -1 = the placement's default
    "still_mg": ("i", 0, 0, 2000),        # 0 = the placement's default
    "i2c_addr": ("i", 0x19, 0x18, 0x19),
    "fault_n": ("i", 5, 1, 100),
    "no_data_ms": ("i", 5000, 1000, 60000),
    "buzzer": ("b", True, None, None),
}

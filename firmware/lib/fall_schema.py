# Settings of the fall sensor role (roles/fall.py): key -> (kind, default, lo, hi), see
# cfgtool.py. A module of its own so the table is in RAM only while cfgtool needs
# it (at boot and per CONFIG frame); docs/fall-detection.md describes the keys.
SCHEMA = {
    # where it is worn (the installation checklist): pendant = chest, pocket = waist
    "placement": ("s", "waist", ("wrist", "chest", "waist", "pendant", "pocket"), None),
    "rate_hz": ("s", "50", ("25", "50", "100"), None),
    "cancel_s": ("i", 20, 0, 120),
    "impact_mg": ("i", 0, 0, 16000),      # 0 = the placement's default
    "angle_deg": ("i", -1, -1, 90),       # -1 = the placement's default
    "still_mg": ("i", 0, 0, 2000),        # 0 = the placement's default
    "freefall_mg": ("i", -1, -1, 1000),   # -1 = the placement's default, 0 = no free-fall rule
    "i2c_addr": ("i", 0x19, 0x18, 0x19),
    "fault_n": ("i", 5, 1, 100),
    "no_data_ms": ("i", 5000, 1000, 60000),
    "buzzer": ("b", True, None, None),
    # not worn: minutes lying still in daytime before not_worn (0 = off); local day hours
    "not_worn_min": ("i", 720, 0, 10080),
    "day_from_h": ("i", 7, 0, 23),
    "day_to_h": ("i", 22, 0, 24),
    "utc_offset_min": ("i", 60, -720, 840),   # standard time (Europe/Oslo: 60)
    "summer_time": ("b", True, None, None),   # + 1 h by the EU rule (last Sun Mar..last Sun Oct, 01 UTC)
}

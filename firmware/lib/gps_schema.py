# Settings of the GPS tracker role (roles/gps.py): key -> (kind, default, lo, hi), see
# cfgtool.py. A module of its own so the table is in RAM only while cfgtool needs
# it (at boot and per CONFIG frame); docs/gps.md describes the keys.
SCHEMA = {
    "home_lat_e7": ("i", 0, -900000000, 900000000),
    "home_lon_e7": ("i", 0, -1800000000, 1800000000),
    "home_radius_m": ("i", 0, 0, 100000),     # 0: no home circle (zones.json only)
    "margin_m": ("i", 25, 0, 1000),
    "confirm_n": ("i", 2, 1, 10),
    "report_s": ("i", 60, 10, 3600),          # moving inside the safe area
    "still_report_s": ("i", 600, 60, 86400),  # still inside
    "outside_report_s": ("i", 30, 5, 600),    # outside: close tracking
    "no_fix_s": ("i", 300, 30, 3600),
    "zones": ("l", [], 0, 8),                   # safe zones (geozones.py); [] = <data>/zones.json
    "modem": ("b", False, None, None),
    "cell_host": ("t", "", 0, 64),            # "" = <data>/cellular.json (gps_cell.py)
    "cell_port": ("i", 1883, 1, 65535),
    "cell_apn": ("t", "", 0, 64),
    "cell_dialect": ("s", "sim7080", ("sim7080", "bg95"), None),
    "gw_grace_s": ("i", 30, 5, 3600),
    "charger_idle_h": ("i", 24, 1, 720),
    "battery_empty_mv": ("i", 3300, 2800, 3700),
}

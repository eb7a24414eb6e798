-- A fall sensor's commissioning test fall says which detector the device runs (the alarm's
-- data.placement: 0 wrist, 1 chest/pendant, 2 waist/pocket; docs/protocol.md §2). Kept with the
-- test alarm, with what the checklist chose when it was seen, so a device that never got its
-- setting is noticed (fleet/installations/_placement.py). NULL: not a fall alarm, or firmware
-- that does not report it. The row now holds the device's latest test alarm.
ALTER TABLE installation_test_alarm ADD COLUMN placement INTEGER CHECK (placement BETWEEN 0 AND 2);
ALTER TABLE installation_test_alarm ADD COLUMN placement_expected INTEGER CHECK (placement_expected BETWEEN 0 AND 2);

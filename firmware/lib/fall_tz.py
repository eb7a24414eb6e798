# Local time of the fall role's not-worn day window (roles/fall.py): the standard UTC
# offset plus an hour of EU summer time, from the last Sunday of March to the last Sunday
# of October, both at 01:00 UTC (Europe/Oslo: utc_offset_min 60, summer_time on).
# Integers only, no time zone data. The changes fall on a whole UTC hour, so the role
# asks once per UTC hour and drops this module from sys.modules again (RAM).


def _mar1(y):
    # days from 1970-01-01 to 1 March of year y (proleptic Gregorian)
    return 365 * y + y // 4 - y // 100 + y // 400 - 719468


def summer(t):
    """True if EU summer time is in force at UTC epoch seconds t."""
    d = t // 86400
    y = 1970 + d * 400 // 146097       # the year whose 1 March is the last one up to t
    while _mar1(y + 1) <= d:
        y += 1
    while _mar1(y) > d:
        y -= 1
    a = _mar1(y) + 30                    # 31 March
    a -= (a + 4) % 7                     # back to a Sunday (1970-01-01 was a Thursday)
    b = _mar1(y) + 244                   # 31 October
    b -= (b + 4) % 7
    return a * 86400 + 3600 <= t < b * 86400 + 3600


def offset_min(t, std_min, summer_time):
    """Minutes east of UTC at t: std_min, plus 60 in EU summer time if summer_time."""
    return std_min + 60 if summer_time and summer(t) else std_min


def local_hour(t, std_min, summer_time):
    """Local hour 0..23 at UTC epoch seconds t."""
    return (t + offset_min(t, std_min, summer_time) * 60) // 3600 % 24

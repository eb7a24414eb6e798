# NMEA 0183 parser for GNSS receivers: GGA, RMC, GSA (+ GNS, ZDA, VTG) from any talker
# (GP, GN, GL, GA, BD, GB, GQ, QZ). Streaming: feed() raw UART bytes, get fixes.
# Never raises on input: bad lines are counted (checksum_errors, malformed, overflow).
#
# Epoch merge (docs/gps.md): sentences carrying the same UTC time-of-day belong to one
# epoch. GGA gives position, altitude, quality and satellites; RMC gives position,
# speed, course, date and validity; GSA (no time field) joins the open epoch and gives
# the satellites used and the fix type. An epoch is closed when a sentence of another
# time arrives, when both GGA and RMC of it have been seen (in a stream that carries
# both), or on nmea_more.flush(parser). A closed epoch yields a Fix only if it has a position and no
# sentence says "no fix" (GGA quality 0, RMC status V / mode N). A repeated GGA/RMC of
# the open epoch (a second talker) and late sentences of a closed epoch are ignored.
#
# Positions are integers (1e-7 degree), parsed from the digits, so they are exact on
# an ESP32 with single-precision floats.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

MAX_LINE = const(120)  # NMEA says 82; some receivers exceed it slightly

# fix quality (GGA field 6); _Q_* names are compiled away, MODES maps the RMC/GNS
# mode indicator to it: quality = MODES.index(mode) (N none, A GPS, D DGPS, P PPS,
# R RTK, F float RTK, E estimated, M manual, S simulated)
_Q_NONE = const(0)
_Q_GPS = const(1)
MODES = "NADPRFEMS"
_MORE = ("GSA", "GNS", "ZDA", "VTG")


class Fix:
    """One epoch's position. lat_e7/lon_e7 in 1e-7 degree; None = field not available.
    The parser yields only usable ones (position, no "no fix" sentence, quality > 0)."""

    def __init__(self):
        self.tod_ms = None     # UTC time of day, ms
        self.date = None       # (year, month, day) from RMC
        self.lat_e7 = None
        self.lon_e7 = None
        self.alt_dm = None     # altitude above MSL, decimetres (GGA)
        self.speed_mmps = None  # speed over ground, mm/s (RMC/VTG)
        self.course_cdeg = None  # course over ground, 0.01 degree
        self.quality = None
        self.sats = None
        self.hdop_c = None     # HDOP * 100
        self.invalid = False   # a sentence said "no fix"
        self.has_gga = False
        self.has_rmc = False
        self._gsa_sats = 0
        self._gsa = False


def checksum(body):
    c = 0
    for ch in body:
        c ^= ord(ch)
    return c


def _int(s):
    return int(s) if s else None


def _dec(s, places):
    # "12.345" -> 12345 (places=3) exactly, rounding half up on extra digits; "" -> None
    if not s:
        return None
    neg = s[0] == "-"
    if neg or s[0] == "+":
        s = s[1:]
    if "." in s:
        whole, frac = s.split(".", 1)
    else:
        whole, frac = s, ""
    if not (whole or frac) or (whole and not whole.isdigit()) or (frac and not frac.isdigit()):
        raise ValueError("number")
    v = int(whole or "0")
    for i in range(places):
        v = v * 10 + (int(frac[i]) if i < len(frac) else 0)
    if len(frac) > places and frac[places] >= "5":
        v += 1
    return -v if neg else v


def _coord(s, hemi, deg_digits):
    # "ddmm.mmmm" / "dddmm.mmmm" + N/S/E/W -> 1e-7 degree
    if not s or not hemi:
        return None
    dot = s.find(".")
    if dot < 0:
        dot = len(s)
    if dot != deg_digits + 2:
        raise ValueError("coord")
    deg = int(s[:deg_digits])
    min_e5 = _dec(s[deg_digits:], 5)  # minutes * 1e5
    if min_e5 is None or min_e5 < 0 or min_e5 >= 6000000:
        raise ValueError("minutes")
    v = deg * 10000000 + (min_e5 * 100 + 30) // 60
    lim = 900000000 if deg_digits == 2 else 1800000000
    if v > lim:
        raise ValueError("range")
    if hemi in ("S", "W"):
        return -v
    if hemi in ("N", "E"):
        return v
    raise ValueError("hemisphere")


def _tod(s):
    # "hhmmss.sss" -> ms of day
    if not s:
        return None
    if len(s) < 6 or not s[:6].isdigit():
        raise ValueError("time")
    h, m, sec = int(s[0:2]), int(s[2:4]), int(s[4:6])
    ms = 0
    if len(s) > 6:
        if s[6] != ".":
            raise ValueError("time")
        ms = _dec("0" + s[6:], 3)
    if h > 23 or m > 59 or sec > 60:
        raise ValueError("time")
    return ((h * 60 + m) * 60 + sec) * 1000 + ms


class NmeaParser:
    def __init__(self):
        self._buf = bytearray()
        self._drop = False
        self._cur = None
        self._seen_gga = False
        self._seen_rmc = False
        self._date = None
        self._date_tod = 0
        self._closed_tod = None
        self._more = None
        self.sentences = 0        # lines with a '$' that passed the checksum
        self.checksum_errors = 0
        self.malformed = 0        # bad fields, too few fields, bad characters
        self.overflow = 0         # lines longer than MAX_LINE (dropped)
        self.unchecked = 0        # accepted without a checksum
        self.ignored = 0          # valid sentence types we don't use (GSV, TXT, ...)
        self.fixes = 0
        self.no_fix = 0           # closed epochs without a usable position


    # -- streaming ------------------------------------------------------------------
    def feed(self, data):
        """Raw bytes from the receiver; returns a list of completed Fix objects."""
        out = []
        parts = bytes(data).replace(b"\r", b"\n").split(b"\n")
        last = len(parts) - 1
        for k in range(len(parts)):
            p = parts[k]
            if not self._drop:
                self._buf.extend(p)
                if len(self._buf) > MAX_LINE:
                    import nmea_more  # too long (rare): in nmea_more
                    nmea_more.overlong(self)
            if k < last:  # a line ended here
                if not self._drop and self._buf:
                    self._line_bytes(self._buf, out)
                self._buf = bytearray()
                self._drop = False
        return out


    def _line_bytes(self, buf, out):
        try:
            line = bytes(buf).decode()
        except UnicodeError:  # MicroPython raises UnicodeError, CPython a subclass
            import nmea_more  # non-ASCII noise (rare): salvage the sentence after it
            line = nmea_more.salvage(self, buf)
            if line is None:
                return
        self.line(line, out)

    def line(self, line, out=None):
        """Parse one line (str). Appends closed fixes to out (list); returns out."""
        if out is None:
            out = []
        i = line.rfind("$")
        if i < 0:
            if line.strip():
                self.malformed += 1
            return out
        if line.rfind("$", 0, i) >= 0:
            self.malformed += 1  # a truncated sentence ran into this one
        s = line[i + 1:].strip()
        star = s.find("*")
        if star >= 0:
            body = s[:star]
            cs = s[star + 1:star + 3]
            try:
                want = int(cs, 16) if len(cs) == 2 else -1
            except ValueError:
                want = -1
            if want != checksum(body):
                self.checksum_errors += 1
                return out
        else:
            body = s
            self.unchecked += 1
        f = body.split(",")
        if len(f[0]) != 5 or not f[0].isalpha() or not f[0].isupper():
            if f[0][:1] == "P":  # proprietary ($PMTK, $PUBX...)
                self.sentences += 1
                self.ignored += 1
            else:
                self.malformed += 1
            return out
        kind = f[0][2:]
        self.sentences += 1
        try:
            if kind == "GGA":
                self._gga(f, out)
            elif kind == "RMC":
                self._rmc(f, out)
            elif kind in _MORE:
                # GSA, GNS, ZDA, VTG: in nmea_more.py, imported when the receiver first
                # sends one (a receiver set to GGA+RMC never loads it: RAM)
                m = self._more
                if m is None:
                    import nmea_more as m
                    self._more = m
                m.sentence(self, kind, f, out)
            else:
                self.ignored += 1
        except (ValueError, IndexError):
            self.malformed += 1
        return out

    # -- epochs ---------------------------------------------------------------------
    def _epoch(self, tod, out):
        """The open epoch for a sentence of time ``tod``; None for a late sentence of
        the epoch that was just closed (it must not start a duplicate fix)."""
        cur = self._cur
        if tod is not None and tod == self._closed_tod and (cur is None or cur.tod_ms is None):
            return None
        if cur is not None and tod is not None and cur.tod_ms is not None and cur.tod_ms != tod:
            self._close(out)
            cur = None
        if cur is None:
            cur = Fix()
            cur.tod_ms = tod
            self._cur = cur
        elif cur.tod_ms is None:
            cur.tod_ms = tod
        return cur

    def _close(self, out):
        cur = self._cur
        self._cur = None
        if cur is None:
            return
        if cur.tod_ms is not None:
            self._closed_tod = cur.tod_ms
        if cur.sats is None and cur._gsa:
            cur.sats = cur._gsa_sats
        if cur.quality is None and cur.has_rmc and not cur.invalid:
            cur.quality = _Q_GPS
        # carry the date (RMC only) to epochs without one; roll over at midnight
        if cur.tod_ms is not None:
            if cur.date is None and self._date is not None:
                cur.date = self._date
                if self._date_tod - cur.tod_ms > 43200000:
                    import nmea_more  # past midnight (rare)
                    cur.date = nmea_more.next_day(self._date)
            if cur.date is not None:
                self._date = cur.date
                self._date_tod = cur.tod_ms
        if (not cur.invalid and cur.lat_e7 is not None and cur.lon_e7 is not None
                and (cur.quality is None or cur.quality > 0)):   # a usable position
            self.fixes += 1
            out.append(cur)
        else:
            self.no_fix += 1

    def _maybe_complete(self, cur, out):
        if cur.has_gga and cur.has_rmc and self._seen_gga and self._seen_rmc:
            self._close(out)

    # -- sentences --------------------------------------------------------------------
    def _gga(self, f, out):
        # GGA,time,lat,N,lon,E,quality,sats,hdop,alt,M,sep,M,age,station
        if len(f) < 10:
            raise ValueError("fields")
        tod = _tod(f[1])
        lat = _coord(f[2], f[3], 2)
        lon = _coord(f[4], f[5], 3)
        q = _int(f[6])
        sats = _int(f[7])
        hdop = _dec(f[8], 2)
        alt = _dec(f[9], 1)
        if q is not None and not (0 <= q <= 8):
            raise ValueError("quality")
        cur = self._epoch(tod, out)
        if cur is None or cur.has_gga:  # late or repeated (other talker) for this epoch
            self.ignored += 1
            return
        self._seen_gga = True
        cur.has_gga = True
        cur.quality = q if q is not None else _Q_NONE
        if cur.quality == _Q_NONE:
            cur.invalid = True
        if lat is not None and lon is not None:
            cur.lat_e7, cur.lon_e7 = lat, lon
        if sats is not None:
            cur.sats = sats
        if hdop is not None:
            cur.hdop_c = hdop
        if alt is not None:
            cur.alt_dm = alt
        self._maybe_complete(cur, out)

    def _rmc(self, f, out):
        # RMC,time,status,lat,N,lon,E,sog_kn,cog,date,magvar,E/W[,mode[,navstatus]]
        if len(f) < 10:
            raise ValueError("fields")
        tod = _tod(f[1])
        status = f[2]
        lat = _coord(f[3], f[4], 2)
        lon = _coord(f[5], f[6], 3)
        sog = _dec(f[7], 3)  # knots * 1000
        cog = _dec(f[8], 2)
        date = None
        if f[9]:
            d = f[9]
            if len(d) != 6 or not d.isdigit():
                raise ValueError("date")
            dd, mm, yy = int(d[0:2]), int(d[2:4]), int(d[4:6])
            if not (1 <= dd <= 31 and 1 <= mm <= 12):
                raise ValueError("date")
            date = (2000 + yy if yy < 80 else 1900 + yy, mm, dd)
        mode = f[12] if len(f) > 12 else ""
        cur = self._epoch(tod, out)
        if cur is None or cur.has_rmc:
            self.ignored += 1
            return
        self._seen_rmc = True
        cur.has_rmc = True
        if status != "A" or mode == "N":
            cur.invalid = True
        if len(mode) == 1 and mode in MODES and not cur.has_gga:
            cur.quality = MODES.index(mode)
        if cur.lat_e7 is None and lat is not None and lon is not None:
            cur.lat_e7, cur.lon_e7 = lat, lon
        if sog is not None:
            cur.speed_mmps = (sog * 514444 + 500000) // 1000000
        if cog is not None:
            cur.course_cdeg = cog
        if date is not None:
            cur.date = date
        self._maybe_complete(cur, out)

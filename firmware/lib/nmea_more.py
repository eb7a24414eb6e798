# The rarer half of the NMEA parser (nmea.py): GSA, GNS, ZDA and VTG sentences, the
# statistics dict and ISO time formatting. nmea.py imports it the first time a
# receiver sends one of these sentences (or a bench asks for stats), so a receiver
# configured for GGA+RMC only never has it in RAM. Same rules as nmea.py: never
# raises on input except ValueError/IndexError, which the parser counts as malformed.
from nmea import Fix, MODES, MAX_LINE, _tod, _coord, _int, _dec


def sentence(p, kind, f, out):
    if kind == "GSA":
        _gsa(p, f)
    elif kind == "GNS":
        _gns(p, f, out)
    elif kind == "ZDA":
        _zda(p, f, out)
    else:
        _vtg(p, f)


def flush(p):
    out = []
    if p._buf and not p._drop:
        p._line_bytes(p._buf, out)
    p._buf = bytearray()
    p._drop = False
    p._close(out)
    return out


def overlong(p):
    """The line being collected grew past MAX_LINE: keep it only if a sentence starts
    late in it (a logger's timestamp or garbage before the '$'), else drop the line."""
    buf = p._buf
    i = buf.rfind(b"$")
    if i > 0 and len(buf) - i <= MAX_LINE:
        p._buf = buf[i:]
    else:
        p.overflow += 1
        p._drop = True
        p._buf = bytearray()


def next_day(d):
    y, m, day = d
    dim = (31, 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28, 31, 30, 31, 30,
           31, 31, 30, 31, 30, 31)[m - 1]
    day += 1
    if day > dim:
        day = 1
        m += 1
        if m > 12:
            m = 1
            y += 1
    return (y, m, day)


def salvage(p, buf):
    """A line with non-ASCII noise: the part after the last '$' if it is clean, else
    None (counted as malformed)."""
    i = bytes(buf).rfind(b"$")
    if i < 0:
        p.malformed += 1
        return None
    try:
        return bytes(buf[i:]).decode()
    except UnicodeError:
        p.malformed += 1
        return None


def stats(p):
    return {"sentences": p.sentences, "fixes": p.fixes,
            "checksum_errors": p.checksum_errors, "malformed": p.malformed,
            "overflow": p.overflow, "unchecked": p.unchecked,
            "ignored": p.ignored, "no_fix": p.no_fix}


def iso_time(fx):
    t = fx.tod_ms
    if t is None:
        return None
    hms = "%02d:%02d:%02d.%03d" % (t // 3600000, t // 60000 % 60, t // 1000 % 60, t % 1000)
    if fx.date is None:
        return hms
    return "%04d-%02d-%02dT%sZ" % (fx.date[0], fx.date[1], fx.date[2], hms)


def _gns(p, f, out):
    # GNS,time,lat,N,lon,E,mode(per constellation),sats,hdop,alt,sep,age,station
    # (multi-GNSS receivers' GGA); counts as the epoch's GGA
    if len(f) < 10:
        raise ValueError("fields")
    tod = _tod(f[1])
    lat = _coord(f[2], f[3], 2)
    lon = _coord(f[4], f[5], 3)
    mode = f[6]
    sats = _int(f[7])
    hdop = _dec(f[8], 2)
    alt = _dec(f[9], 1)
    q = 0
    for ch in mode:
        if ch != "N" and ch in MODES:
            q = MODES.index(ch)
            break
    cur = p._epoch(tod, out)
    if cur is None or cur.has_gga:
        p.ignored += 1
        return
    p._seen_gga = True
    cur.has_gga = True
    cur.quality = q
    if q == 0:
        cur.invalid = True
    if lat is not None and lon is not None:
        cur.lat_e7, cur.lon_e7 = lat, lon
    if sats is not None:
        cur.sats = sats
    if hdop is not None:
        cur.hdop_c = hdop
    if alt is not None:
        cur.alt_dm = alt
    p._maybe_complete(cur, out)


def _gsa(p, f):
    # GSA,mode,fixtype,sv1..sv12,pdop,hdop,vdop[,system]
    if len(f) < 17:
        raise ValueError("fields")
    ft = _int(f[2])
    used = 0
    for sv in f[3:15]:
        if sv:
            used += 1
    cur = p._cur
    if cur is None:
        cur = Fix()
        p._cur = cur
    # satellites used (summed over one GSA per constellation); the fix type is not
    # used for validity: GSA has no time and often trails the epoch it belongs to
    if ft is not None and ft > 1:
        cur._gsa = True
        cur._gsa_sats += used


def _zda(p, f, out):
    # ZDA,time,day,month,year,tz_h,tz_m: the date for streams without RMC
    if len(f) < 5:
        raise ValueError("fields")
    tod = _tod(f[1])
    d, m, y = _int(f[2]), _int(f[3]), _int(f[4])
    if d is None or m is None or y is None:
        return
    if not (1 <= d <= 31 and 1 <= m <= 12 and 1980 <= y <= 2200):
        raise ValueError("date")
    cur = p._epoch(tod, out)
    if cur is None:  # late for the closed epoch: still a valid date for the next ones
        if tod is not None:
            p._date, p._date_tod = (y, m, d), tod
        return
    cur.date = (y, m, d)


def _vtg(p, f):
    # VTG,cog_true,T,cog_mag,M,sog_kn,N,sog_kmh,K[,mode]
    if len(f) < 9:
        raise ValueError("fields")
    cur = p._cur
    if cur is None:
        return
    if cur.course_cdeg is None and f[1]:
        cur.course_cdeg = _dec(f[1], 2)
    if cur.speed_mmps is None and f[7]:
        cur.speed_mmps = (_dec(f[7], 3) * 1000 + 1800) // 3600

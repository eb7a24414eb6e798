# Line codec of the reference dispenser protocol (docs/dispenser.md):
#   $<id>,<CMD>[,<arg>...]*<CS>\r\n   id = 2 hex digits, CS = XOR of the bytes
# between "$" and "*" as 2 upper-case hex digits. Pure functions; parse never
# raises (returns None for anything malformed).
MAX_LINE = 64  # plain int: this module also runs on CPython (the emulator)


def checksum(body):
    c = 0
    for b in body:
        c ^= b
    return c


def build(msg_id, cmd, *args):
    body = ("%02X,%s" % (msg_id & 0xFF, cmd) + "".join("," + str(a) for a in args)).encode()
    return b"$" + body + b"*" + ("%02X" % checksum(body)).encode() + b"\r\n"


def parse(line):
    """(id, CMD, [args as str]) or None."""
    line = line.strip()
    if len(line) < 7 or len(line) > MAX_LINE or line[0:1] != b"$":
        return None
    star = line.rfind(b"*")
    if star < 4 or len(line) - star != 3:
        return None
    body = line[1:star]
    try:
        if int(line[star + 1:], 16) != checksum(body):
            return None
        parts = body.decode().split(",")
        msg_id = int(parts[0], 16)
    except (ValueError, UnicodeError):
        return None
    if len(parts[0]) != 2 or len(parts) < 2 or not parts[1]:
        return None
    return msg_id, parts[1], parts[2:]

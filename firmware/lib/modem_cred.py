# The tracker's broker identity for the cellular uplink: read from <data>/cellular.json
# by modem_mqtt.CellularUplink when the uplink is loaded, then dropped again (RAM).
import json


def credentials(directory, dev_hex, reject=None):
    """{"user", "password", "tls": (ca, cert, key) | None} from <directory>/cellular.json
    (written at provisioning, never over the air, never in a CONFIG report); the TLS
    files are in <directory>/cell. Secure by default: TLS with cell/ca.pem and no
    password when the file or a key is missing; a bad file counts reject("config") and
    gets the defaults too (then the session fails at "tls" until it is fixed)."""
    try:
        with open(directory + "/cellular.json") as f:
            c = json.load(f)
        user = c.get("user", dev_hex)
        pw = c.get("password", "")
        tls = None
        if c.get("tls", True):
            tls = (c.get("ca", "ca.pem"), c.get("cert", ""), c.get("key", ""))
        elif pw:
            raise ValueError("a password is never sent without TLS")
        for v in (user, pw) + (tls or ()):
            if not isinstance(v, str) or '"' in v or len(v) > 128:
                raise ValueError("text without quotes expected")
        if tls is not None and (not tls[0] or bool(tls[1]) != bool(tls[2])):
            raise ValueError("tls needs a ca, and a cert only with its key")
        return {"user": user, "password": pw, "tls": tls}
    except OSError:
        pass   # no file: the defaults
    except (ValueError, TypeError, AttributeError):
        if reject is not None:
            reject("config")
    return {"user": dev_hex, "password": "", "tls": ("ca.pem", "", "")}

# TLS for the modem's MQTT client. modem_mqtt imports it to set up a session and drops it
# again (RAM); the identity it uses is modem_cred.credentials(). The certificate files live in the device's flash (<data>/cell/<name>: CA,
# optional client certificate and key) and are copied into the modem's own file system
# once per away period (upload); the SSL context is set for every session, since the
# modem may have been reset in between. The modem verifies the broker's certificate
# against the CA, sends the host name (SNI) and, with a client certificate, does mutual TLS.
#
#   SIM7080G: AT+CFSINIT, AT+CFSWFILE=3,"<name>",0,<len>,<ms> (DOWNLOAD, data), AT+CFSTERM;
#             AT+CSSLCFG="sslversion",0,3 | "sni",0,"<host>" | "convert",2,"<ca>" |
#             "convert",1,"<cert>","<key>"; AT+SMSSL=1,"<ca>","<cert>"
#   BG95:     AT+QFDEL="<name>", AT+QFUPL="<name>",<len>,<s> (CONNECT, data, +QFUPL);
#             AT+QSSLCFG="sslversion",2,3 | "ciphersuite",2,0xFFFF | "seclevel",2,<1|2> |
#             "cacert" | "clientcert" | "clientkey",2,"<name>" | "sni",2,1;
#             AT+QMTCFG="ssl",0,1,2
import os
from modem import ModemError, ModemTimeout

_CTX = 2          # BG95 SSL context of the MQTT client
_UP_MS = 10000    # one file upload


def upload(m, name, path):
    """Copy the file ``path`` into the modem's file system as ``name`` (replacing it)."""
    size = os.stat(path)[6]
    with open(path, "rb") as f:
        _upload(m, name, size, f)


def _upload(m, name, size, data):
    if m.DIALECT == "bg95":
        try:
            m.command('AT+QFDEL="%s"' % name, 2000)
        except ModemTimeout:
            raise
        except ModemError:
            pass  # no such file yet
        m.send_data('AT+QFUPL="%s",%d,%d' % (name, size, _UP_MS // 1000), data, _UP_MS, b"CONNECT")
        return
    m.command("AT+CFSINIT", 2000)
    try:
        m.send_data('AT+CFSWFILE=3,"%s",0,%d,%d' % (name, size, _UP_MS), data, _UP_MS, b"DOWNLOAD")
    finally:
        m.command("AT+CFSTERM", 2000)


def configure(m, host, ca, cert, key):
    """The SSL context of the MQTT client: TLS 1.2, the CA, SNI, the client certificate."""
    if m.DIALECT == "bg95":
        conf = [("sslversion", "3"), ("ciphersuite", "0xFFFF"), ("seclevel", "2" if cert else "1"),
                ("cacert", '"%s"' % ca), ("sni", "1")]
        if cert:
            conf += [("clientcert", '"%s"' % cert), ("clientkey", '"%s"' % key)]
        for k, v in conf:
            m.command('AT+QSSLCFG="%s",%d,%s' % (k, _CTX, v), 2000)
        m.command('AT+QMTCFG="ssl",0,1,%d' % _CTX, 2000)
        return
    m.command('AT+CSSLCFG="sslversion",0,3', 2000)
    m.command('AT+CSSLCFG="sni",0,"%s"' % host, 2000)
    m.command('AT+CSSLCFG="convert",2,"%s"' % ca, 5000)
    if cert:
        m.command('AT+CSSLCFG="convert",1,"%s","%s"' % (cert, key), 5000)
    m.command('AT+SMSSL=1,"%s","%s"' % (ca, cert), 2000)


def setup(m, host, tls, directory, uploaded):
    """Upload the files of ``tls`` = (ca, cert, key) from ``directory`` unless ``uploaded``
    (cert and key may be ""), then configure. Raises ModemError, or OSError for a file
    missing on the device."""
    ca, cert, key = tls
    if not uploaded:
        for name in (ca, cert, key):
            if name:
                upload(m, name, directory + "/" + name)
    configure(m, host, ca, cert, key)

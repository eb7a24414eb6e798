"""`gateway enrol` sets its keys in the operator's configuration file without losing the rest:
comments and other lines stay, a missing table is appended, a multi-line list is replaced, and
a layout the line editor cannot handle falls back to a valid re-rendered file."""
from __future__ import annotations

import tomllib

import pytest

from gateway.adapters.enrolment import EnrolError, EnrolmentClient
from gateway.config._toml_edit import set_keys

KEYS = {"gateway.id": "gw-0001", "uplink.host": "broker.example.no", "uplink.port": 8883,
        "uplink.tls.enabled": True, "uplink.tls.password": 'p"w\\1', "trust.release_keys": ["/t/a.pub", "/t/b.pub"]}


def test_comments_and_other_keys_stay_and_missing_tables_are_added():
    text = ('# my gateway\n[gateway]\nid = "gw-old"   # set by hand\ntimezone = "Europe/Oslo"\n\n'
            '[uplink]\nhost = "old"\nkeepalive_s = 40\n\n[trust]\nrelease_keys = [\n  "/x.pub",\n  "/y.pub",\n]\n'
            '\n[rules.bed]\nmax_out_min = 25\n')
    out = set_keys(text, KEYS)
    assert "# my gateway" in out and 'timezone = "Europe/Oslo"' in out and "max_out_min = 25" in out
    data = tomllib.loads(out)
    assert data["gateway"]["id"] == "gw-0001" and data["uplink"]["keepalive_s"] == 40
    assert data["uplink"]["tls"] == {"enabled": True, "password": 'p"w\\1'}
    assert data["trust"]["release_keys"] == ["/t/a.pub", "/t/b.pub"] and "/x.pub" not in out


def test_an_empty_file_gets_the_keys():
    data = tomllib.loads(set_keys("", KEYS))
    assert data["uplink"]["port"] == 8883 and data["gateway"]["id"] == "gw-0001"


def test_an_inline_table_falls_back_to_a_valid_rendering():
    out = set_keys('[uplink]\ntls = { enabled = false, username = "u" }\n', KEYS)
    data = tomllib.loads(out)
    assert data["uplink"]["tls"] == {"enabled": True, "username": "u", "password": 'p"w\\1'}
    assert out.startswith("# rewritten by gateway enrol")


@pytest.mark.parametrize("url", ["http://fleet.example.no", "fleet.example.no", "ftp://x"])
def test_only_https_is_spoken(url):
    with pytest.raises(EnrolError) as ei:
        EnrolmentClient(url)
    assert ei.value.reason == "bad_url" and "never travel over plain HTTP" in ei.value.fix


def test_a_malformed_pin_is_named():
    with pytest.raises(EnrolError, match="is not sha256:<64 hex digits>"):
        EnrolmentClient("https://fleet.example.no", pin="sha256:abc")

"""The topic tree: builders and parsers agree, parsers never raise, and the MicroPython
firmware's own literal (it cannot import contracts) matches what contracts builds."""
from __future__ import annotations

import ast
import pathlib

import pytest
from hypothesis import given, settings, strategies as st

from contracts import topics as T
from contracts.topics import DEVICE_KINDS, Kind, Parsed, Topics

ROOT = pathlib.Path(__file__).resolve().parents[2]
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=40)


def test_gateway_topics_are_the_documented_tree():
    t = Topics("gw-0001")
    assert t.alarm == "wt/v1/gw/gw-0001/alarm"
    assert t.event == "wt/v1/gw/gw-0001/event"
    assert t.ack == "wt/v1/gw/gw-0001/ack"
    assert t.state == "wt/v1/gw/gw-0001/state"
    assert t.health == "wt/v1/gw/gw-0001/health"
    assert t.config == "wt/v1/gw/gw-0001/config"
    assert t.config_applied == "wt/v1/gw/gw-0001/config/applied"
    assert t.cmd == "wt/v1/gw/gw-0001/cmd"
    assert t.cmd_result == "wt/v1/gw/gw-0001/cmd/result"


def test_device_topics_and_filters():
    d = T.DeviceTopics("a4c1380a1b2c")
    assert (d.alarm, d.event, d.ack, d.state) == tuple(f"wt/v1/dev/a4c1380a1b2c/{k}"
                                                       for k in ("alarm", "event", "ack", "state"))
    with pytest.raises(ValueError):
        T.device_topic("a4c1380a1b2c", Kind.CMD)
    assert T.all_gateways(Kind.ALARM) == "wt/v1/gw/+/alarm"
    assert T.all_devices("event") == "wt/v1/dev/+/event"
    assert T.gateway_subtree("gw-1") == "wt/v1/gw/gw-1/#"
    assert T.platform_filters() == ("wt/v1/gw/+/alarm", "wt/v1/dev/+/alarm")
    assert T.platform_filters(events=True, devices=False, state=True) == (
        "wt/v1/gw/+/alarm", "wt/v1/gw/+/event", "wt/v1/gw/+/state")


def test_shared_subscriptions_for_fleet_ingest():
    assert T.shared("wt/v1/gw/+/health") == "$share/fleet/wt/v1/gw/+/health"
    assert T.strip_share("$share/g/wt/v1/gw/+/health") == "wt/v1/gw/+/health"
    assert T.strip_share("wt/v1/gw/+/health") == "wt/v1/gw/+/health"
    assert T.fleet_ingest_filters() == ("wt/v1/gw/+/health", "wt/v1/gw/+/state", "wt/v1/gw/+/config/applied",
                                        "wt/v1/gw/+/cmd/result", "wt/v1/gw/+/alarm", "wt/v1/gw/+/event",
                                        "wt/v1/gw/+/ack")
    assert all(f.startswith("$share/grp/wt/v1/gw/+/") for f in T.fleet_ingest_filters("grp"))


@given(gw=ids, kind=st.sampled_from(list(Kind)))
def test_gateway_round_trip(gw, kind):
    assert T.parse(T.gateway_topic(gw, kind)) == Parsed(kind, gw, None)
    assert T.parse_gateway(T.gateway_topic(gw, kind), kind) == gw


@given(dev=ids, kind=st.sampled_from(DEVICE_KINDS))
def test_device_round_trip(dev, kind):
    p = T.parse(T.device_topic(dev, kind))
    assert p == Parsed(kind, None, dev)
    assert T.source_id(p) == dev
    assert T.parse_gateway(T.device_topic(dev, kind)) is None


@pytest.mark.parametrize("topic", [
    "", "wt", "wt/v1/gw", "wt/v1/gw/gw-1", "wt/v1/gw//alarm", "wt/v1/gw/+/alarm", "wt/v1/gw/#",
    "wt/v2/gw/gw-1/alarm", "xx/v1/gw/gw-1/alarm", "wt/v1/gw/gw-1/alarms", "wt/v1/gw/gw-1/config/x",
    "wt/v1/dev/abc/cmd", "wt/v1/zz/abc/alarm", "$share/fleet/wt/v1/gw/+/health", "wt/v1/gw/a/b/alarm",
    None, 42, b"wt/v1/gw/gw-1/alarm",
])
def test_parse_rejects_what_is_not_a_concrete_topic(topic):
    assert T.parse(topic) is None


@settings(max_examples=300)
@given(st.one_of(st.text(), st.binary(), st.none(), st.integers(),
                 st.lists(st.sampled_from(["wt", "v1", "gw", "dev", "+", "#", "", "alarm", "config",
                                           "applied", "cmd", "result", "x"]), max_size=7).map("/".join)))
def test_parse_never_raises(topic):
    p = T.parse(topic)
    assert p is None or (isinstance(p, Parsed) and (p.gateway_id is None) != (p.device_id is None))
    T.parse_gateway(topic, "nonsense")


def _firmware_topic_template() -> str:
    """The format string returned by ``topic()`` in firmware/lib/modem_mqtt.py."""
    tree = ast.parse((ROOT / "firmware/lib/modem_mqtt.py").read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "topic")
    consts = [n.value for n in ast.walk(fn) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return next(c for c in consts if "%s" in c)


def test_firmware_topic_literal_matches_contracts():
    template = _firmware_topic_template()
    dev = "a4c1380a1b2c"
    for kind in (Kind.ALARM, Kind.EVENT, Kind.ACK):
        assert template % (dev, kind.value) == T.device_topic(dev, kind)
        assert T.parse(template % (dev, kind.value)) == Parsed(kind, None, dev)
    # the leaf the tracker subscribes to for the platform's acks (topic(dev, 0, "ack"))
    tree = ast.parse((ROOT / "firmware/lib/modem_mqtt.py").read_text())
    leaves = {n.args[2].value for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "topic"
              and len(n.args) == 3 and isinstance(n.args[2], ast.Constant)}
    assert leaves == {Kind.ACK.value}


@pytest.mark.parametrize("flt, topic, want", [
    ("wt/v1/gw/+/alarm", "wt/v1/gw/gw-1/alarm", True),
    ("wt/v1/gw/+/alarm", "wt/v1/gw/gw-1/event", False),
    ("wt/v1/gw/+/alarm", "wt/v1/gw/gw-1/alarm/x", False),
    ("wt/v1/gw/gw-1/#", "wt/v1/gw/gw-1/config/applied", True),
    ("$share/fleet/wt/v1/gw/+/health", "wt/v1/gw/gw-1/health", True),
    ("wt/v1/gw/gw-1/cmd", "wt/v1/gw/gw-1/cmd", True),
    ("wt/v1/gw/gw-1/cmd", "wt/v1/gw/gw-2/cmd", False),
])
def test_filter_matching(flt, topic, want):
    assert T.matches(flt, topic) is want


@given(gw=ids, kind=st.sampled_from(list(Kind)))
def test_builders_match_their_wildcards(gw, kind):
    topic = T.gateway_topic(gw, kind)
    assert T.matches(T.all_gateways(kind), topic) and T.matches(T.gateway_subtree(gw), topic)
    assert T.matches(T.shared(T.all_gateways(kind)), topic)

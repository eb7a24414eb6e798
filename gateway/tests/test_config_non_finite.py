"""Non-finite numbers through every source of the gateway configuration (issue 10, F4): the
TOML file, ``--set``, the environment and a fleet push (``wt.config/1``). For every numeric
field of the schema (discovered from the frozen dataclasses, contracts/tests/test_non_finite_schema.py)
NaN, +inf and -inf are refused with the key named, and nothing stored changes: the running
configuration and the saved fleet layer stay as they were, the push is answered ``rejected``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.payloads import decode_applied
from contracts.tests.test_non_finite_schema import NumericField, document, numeric_fields
from gateway.config import ConfigError, load_config, parse_override_value
from gateway.daemon._config_push import ConfigPushApplier, LayerFiles, PushState
from gateway.domain.config_push import ConfigPush, decode_push

FIELDS = numeric_fields()
FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
# what a person types after --set / in an environment variable
TEXTS = ("nan", "+nan", "-nan", "inf", "+inf", "-inf", "NaN", "Infinity", "-Infinity", "1e999", "-1e999")


def toml_value(v: Any) -> str:
    """An inline TOML value (tables inline too), non-finite floats as TOML spells them."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_file(doc: dict[str, Any]) -> str:
    return "".join(f"{k} = {toml_value(v)}\n" for k, v in doc.items())


def override(field: NumericField, doc: dict[str, Any]) -> tuple[str, Any]:
    """The dotted key an override can address (up to the first list) and the value under it."""
    keys = []
    node: Any = doc
    for step in field.path:
        if isinstance(step, int):
            break
        keys.append(step)
        node = node[step]
    return ".".join(keys), node


def issue_keys(exc: ConfigError) -> set[str]:
    return {i.key for i in exc.issues if i.problem == "not a finite number"}


def base(tmp_path: Path) -> Path:
    """A valid file holding the skeleton (one device, one zone): overrides change one value in it."""
    p = tmp_path / "gw.toml"
    p.write_text(toml_file(document()))
    load_config(p, env={})                           # valid as it stands
    return p


# --------------------------------------------------------------------------- file, --set, environment
@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.key)
def test_every_numeric_field_refused_in_the_file_by_set_and_by_env(tmp_path, field):
    p = base(tmp_path)
    for name, value in FLOATS.items():
        bad = tmp_path / f"bad-{name}.toml"
        bad.write_text(toml_file(document({field.path: value})))
        with pytest.raises(ConfigError) as exc:
            load_config(bad, env={})
        assert issue_keys(exc.value) == {field.key}, (name, str(exc.value))
        assert str(exc.value).count(f"{field.key} = {name}: not a finite number; set a ") == 1

        key, sub = override(field, document({field.path: value}))
        text = toml_value(sub)
        with pytest.raises(ConfigError) as exc:
            load_config(p, env={}, overrides=[f"{key}={text}"])
        assert issue_keys(exc.value) == {field.key}, (name, key, text)
        env_name = "WT_GW__" + "__".join(part.upper() for part in key.split("."))
        with pytest.raises(ConfigError) as exc:
            load_config(p, env={env_name: text})
        assert issue_keys(exc.value) == {field.key}, (name, env_name, text)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from([f for f in FIELDS if not any(isinstance(s, int) for s in f.path)]),
       text=st.sampled_from(TEXTS), channel=st.sampled_from(["set", "env", "file"]))
def test_any_spelling_of_a_non_finite_number_is_refused(tmp_path, field, text, channel):
    """``NaN``, ``Infinity``, ``1e999``… reach the schema as a float (TOML parsed it) or as a
    string (it did not): refused either way, naming the key."""
    pairs = _context(field) + [(field.key, text)]
    try:
        if channel == "set":
            load_config(None, env={}, overrides=[f"{k}={v}" for k, v in pairs])
        elif channel == "env":
            load_config(None, env={"WT_GW__" + k.upper().replace(".", "__"): v for k, v in pairs})
        else:
            def literal(k: str, v: str) -> str:
                # in a file: a TOML literal where TOML has one (nan, inf, 1e999), else a string
                return v if k != field.key or isinstance(parse_override_value(v), float) else json.dumps(v)
            p = tmp_path / "f.toml"
            p.write_text("".join(f"{k} = {literal(k, v)}\n" for k, v in pairs))
            load_config(p, env={})
    except ConfigError as exc:
        assert field.key in issue_keys(exc), str(exc)
    else:
        pytest.fail(f"{field.key}={text} via {channel} was accepted")


def _context(field: NumericField) -> list[tuple[str, str]]:
    """A device table needs its role next to the bad value (dotted key, TOML value)."""
    if field.key.startswith("devices."):
        return [(f"devices.{field.key.split('.')[1]}.role", '"button"')]
    return []


# --------------------------------------------------------------------------- a fleet push
class Replies:
    """The command routes as the applier sees them: every reply is taken and kept."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bool]] = []

    def reply(self, topic: str, payload: bytes, *, retain: bool = False, what: str = "reply") -> bool:
        self.sent.append((topic, payload, retain))
        return True


def _deliver(applier, payload: bytes) -> None:
    """The push as the control gate hands it on once the fleet's signature checked out
    (gateway/daemon/_control.py; the gate itself: test_security_control.py)."""
    from contracts.control import Opened

    applier.on_verified(Opened("gw-nf", 1, 0.0, "wt.config/1", payload, "k", "d"))


def _push_payload(version: int, config: dict[str, Any]) -> bytes:
    # what a fleet built on Python's json would send: NaN / Infinity / -Infinity tokens
    return json.dumps({"schema": "wt.config/1", "version": version, "hash": f"h{version}", "config": config}).encode()


@pytest.fixture
def running(tmp_path):
    """A gateway running fleet layer version 4 (saved on disk, previous 3) with a good config."""
    data = tmp_path / "data"
    data.mkdir()

    def load(layer):
        return load_config(None, env={}, overrides={"gateway": {"id": "gw-nf", "data_dir": str(data)}}, fleet=layer)
    applied, previous = ConfigPush(4, document(), "h4"), ConfigPush(3, {}, "h3")
    files = LayerFiles(data)
    files.save(applied, previous=previous)
    files.commit(applied)                        # version 4 passed its trial
    state = PushState(load=load, applied=applied)
    current = load(applied.config)
    replies = Replies()
    applier = ConfigPushApplier(gateway_id="gw-nf", current=current, state=state, routes=replies,
                                gate=None)  # type: ignore[arg-type]  # pushes enter after the gate: on_verified
    on_disk = {p.name: p.read_bytes() for p in data.iterdir()}
    return applier, state, replies, files, on_disk, data


@pytest.mark.security
@pytest.mark.parametrize("name", sorted(FLOATS))
@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.key)
def test_F4_a_push_with_a_non_finite_number_is_rejected_naming_the_key_and_nothing_stored_changes(running, field,
                                                                                               name):
    applier, state, replies, files, on_disk, data = running
    payload = _push_payload(5, document({field.path: FLOATS[name]}))
    push = decode_push(payload)
    assert isinstance(push, ConfigPush) and push.refused and field.key in push.refused.replace("config.", "", 1)
    _deliver(applier, payload)
    [(topic, body, retain)] = replies.sent
    report = decode_applied(body)
    assert topic.endswith("/config/applied") and retain
    assert report.version == 5 and report.status.value == "rejected" and report.hash == "h5"
    assert f"{field.key} = {name}: not a finite number; set a " in report.error
    # nothing stored changed: not applied, not queued for a re-bootstrap, the layer files untouched
    assert state.requested is None and not state.reload.is_set()
    assert state.applied == ConfigPush(4, document(), "h4")
    assert {p.name: p.read_bytes() for p in data.iterdir()} == on_disk
    assert files.applied() == ConfigPush(4, document(), "h4") and files.rejected() == {}


def test_a_push_with_non_finite_numbers_outside_config_is_garbage_and_ignored(running):
    applier, state, replies, _, on_disk, data = running
    for payload in (b'{"schema": "wt.config/1", "version": NaN, "config": {}}',
                    b'{"schema": "wt.config/1", "version": 6, "hash": Infinity, "config": {}}',
                    b'{"schema": "wt.config/1", "version": 6, "config": {}, "extra": -Infinity}'):
        assert isinstance(decode_push(payload), str)
        _deliver(applier, payload)
    assert replies.sent == [] and state.requested is None
    assert {p.name: p.read_bytes() for p in data.iterdir()} == on_disk


def test_a_stale_push_with_nan_is_still_only_ignored(running):
    """An older version is ignored before anything else (the retained report stays the applied one)."""
    applier, state, replies, _, _, _ = running
    _deliver(applier, _push_payload(2, {"rules": {"bed": {"max_out_min": math.nan}}}))
    assert replies.sent == [] and state.requested is None

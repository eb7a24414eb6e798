"""Mains input adapters: GPIO/UPS value file (real file), emulated, none."""
from __future__ import annotations

from gateway.config import load_config
from gateway.adapters.mains import EmulatedMainsInput, FileMainsInput, MainsState, NoMainsInput, mains_input_from_config
from gateway.domain.model import EventCode
from gateway.domain.rules import MainsRule
from gateway.testing.clock import FakeClock


def test_file_input_reads_gpio_value_and_unknowns(tmp_path):
    p = tmp_path / "value"
    src = FileMainsInput(p)
    assert src.read() is MainsState.UNKNOWN          # file missing
    p.write_text("1\n")
    assert src.read() is MainsState.ON
    p.write_text("0\n")
    assert src.read() is MainsState.OFF
    p.write_text("")
    assert src.read() is MainsState.UNKNOWN
    assert FileMainsInput(p, on_value="online").read() is MainsState.UNKNOWN
    p.write_text("online")
    assert FileMainsInput(p, on_value="online").read() is MainsState.ON


def test_rule_over_a_real_gpio_file(tmp_path):
    p = tmp_path / "gpio17"
    p.write_text("1")
    clock = FakeClock(0.0, mono=0.0)
    rule = MainsRule("gw-1", FileMainsInput(p), 2, clock)

    def tick(t):                                   # t seconds after start (wall and monotonic)
        clock.advance(t - clock.t)
        return list(rule.tick(t))
    assert tick(0) == [] and tick(3) == []
    p.write_text("0")
    tick(4)
    assert [x.code for x in tick(6)] == [EventCode.MAINS_LOST]
    p.write_text("1")
    tick(7)
    assert [x.code for x in tick(9)] == [EventCode.MAINS_RESTORED]


def test_factory_from_config(tmp_path):
    assert isinstance(mains_input_from_config(load_config(None, env={}).mains), NoMainsInput)
    cfg = load_config(None, env={}, overrides={"mains": {"source": "file", "path": str(tmp_path / "v")}})
    assert isinstance(mains_input_from_config(cfg.mains), FileMainsInput)
    cfg = load_config(None, env={}, overrides={"mains": {"source": "emulated"}})
    assert isinstance(mains_input_from_config(cfg.mains), EmulatedMainsInput)

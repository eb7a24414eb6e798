"""One root exception: every gateway package's root error is a GatewayError with fields."""
from __future__ import annotations

import importlib

import pytest

from gateway.errors import GatewayError

# (module, class): the root error of each package
ROOTS = [
    ("gateway.config", "ConfigError"),
    ("gateway.domain.uplink_errors", "UplinkError"),
    ("gateway.domain.rules", "RuleError"),
    ("gateway.codec", "CodecError"),
    ("gateway.adapters.journal", "JournalError"),
    ("gateway.adapters.transports", "TransportError"),
    ("gateway.adapters.status", "StatusError"),
    ("gateway.adapters.discovery", "DiscoveryError"),
    ("gateway.adapters.upgrade", "UpgradeError"),
    ("gateway.daemon", "DaemonError"),
]


@pytest.mark.parametrize("module,name", ROOTS)
def test_every_package_root_error_subclasses_gateway_error(module, name):
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, GatewayError), f"{module}.{name} must subclass gateway.errors.GatewayError"


def test_the_errors_the_gateway_raises_are_caught_as_gateway_errors():
    from gateway.config import ConfigError, load_config
    from contracts.gateway_config import ConfigError as ContractConfigError

    with pytest.raises(GatewayError) as ei:
        load_config(None, env={}, overrides={"uplink": {"port": 0}})
    assert isinstance(ei.value, ConfigError) and isinstance(ei.value, ContractConfigError)   # both still catch it
    assert ei.value.fields["issues"][0].key == "uplink.port"


def test_fields_are_the_public_attributes():
    from gateway.adapters.upgrade import UpgradeError
    from gateway.codec import CodecError
    from gateway.daemon import DaemonError
    from gateway.domain.uplink_errors import NotConnected

    e = UpgradeError("bad signature", reason="bad_signature", phase="download")
    assert e.fields == {"reason": "bad_signature", "phase": "download"}
    assert e.to_dict() == {"error": "UpgradeError", "message": "bad signature", "reason": "bad_signature",
                           "phase": "download"}
    assert NotConnected("offline", route="primary").fields == {"route": "primary", "code": None}
    assert DaemonError("status.port: busy", what="status.port").message == "status.port: busy"
    assert isinstance(CodecError("too long", field="data"), ValueError)        # still a ValueError
    assert GatewayError("x", where="here").fields == {"where": "here"}

"""Output of a validated configuration: plain dict / JSON / TOML, secrets redacted."""
from __future__ import annotations

import datetime as _dt
import enum
import json
import dataclasses
from typing import Any

from contracts.gateway_config._schema import GatewayConfig
from contracts.roles import Role


def to_plain(obj: Any, *, redact: bool, secret: bool = False) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            out[f.name] = to_plain(v, redact=redact, secret=bool(f.metadata.get("secret")) if f.metadata else False)
        if isinstance(obj, GatewayConfig):
            out["devices"] = {d["id"]: {k: v for k, v in d.items() if k != "id"} for d in out["devices"]}
        return out
    if secret and obj not in (None, "", b""):
        return "<redacted>" if redact else (obj.hex() if isinstance(obj, bytes) else obj)
    if isinstance(obj, enum.Enum):
        return obj.name.lower() if isinstance(obj, Role) else obj.value
    if isinstance(obj, _dt.time):
        return obj.strftime("%H:%M")
    if isinstance(obj, bytes):
        return obj.hex()
    if isinstance(obj, tuple):
        return [to_plain(v, redact=redact) for v in obj]
    return obj


def to_toml(cfg: GatewayConfig) -> str:
    """Render the (redacted) config as TOML for `gateway config check`."""
    plain = cfg.to_dict(redact=True)
    lines: list[str] = []

    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if v is None:
            return '""'
        return json.dumps(v)

    def table(name: str, body: dict[str, Any]) -> None:
        scalars = {k: v for k, v in body.items()
                   if not isinstance(v, dict) and not (isinstance(v, list) and v and isinstance(v[0], dict))}
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {val(v)}" for k, v in scalars.items())
        lines.append("")
        for k, v in body.items():
            if isinstance(v, dict) and k not in scalars:
                table(f"{name}.{k}", v)
            elif isinstance(v, list) and v and isinstance(v[0], dict):
                for item in v:
                    lines.append(f"[[{name}.{k}]]")
                    lines.extend(f"{ik} = {val(iv)}" for ik, iv in item.items())
                    lines.append("")

    for section, body in plain.items():
        if section == "devices":
            for dev_id, dev in body.items():
                table(f"devices.{dev_id}", dev)
        else:
            table(section, body)
    return "\n".join(lines)

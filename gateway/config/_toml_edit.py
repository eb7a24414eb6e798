"""Set keys in a TOML configuration file's text, keeping everything else (comments included).

``set_keys(text, {"uplink.tls.cert": "/etc/…", "trust.release_keys": ["a", "b"]})`` replaces the
line of each key inside its ``[table]``, adds it at the end of the table, or appends the table.
The result is parsed back and compared with what was asked; a layout this line editor does not
understand (inline tables, dotted keys inside a table, multi-line strings) falls back to the
whole file re-rendered from its parsed content plus the keys — valid, but without comments.
Used by ``gateway enrol``.
"""
from __future__ import annotations

import json
import re
import tomllib
from typing import Any, Mapping

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def value(v: Any) -> str:
    """A TOML value: strings as basic strings (JSON escapes are TOML escapes), lists of them."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as a TOML value")


def _get(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


_MISSING = object()


def _line_edit(text: str, keys: Mapping[str, Any]) -> str:
    lines = text.splitlines()
    for dotted, v in keys.items():
        table, _, key = dotted.rpartition(".")
        spans: list[tuple[str, int]] = [("", 0)]
        for i, ln in enumerate(lines):
            m = _HEADER.match(ln)
            if m:
                spans.append((m.group(1).replace(" ", ""), i + 1))
        start = next((s for t, s in spans if t == table), None)
        new = f"{key} = {value(v)}"
        if start is None:
            if lines and lines[-1].strip():
                lines.append("")
            lines += [f"[{table}]", new]
            continue
        end = next((s - 1 for t, s in spans if s > start), len(lines))
        key_re = re.compile(rf"^\s*{re.escape(key)}\s*=")
        hit = next((i for i in range(start, end) if key_re.match(lines[i])), None)
        if hit is not None:
            stop = hit + 1
            if lines[hit].count("[") > lines[hit].count("]"):     # a multi-line array: drop its lines
                depth = lines[hit].count("[") - lines[hit].count("]")
                while stop < end and depth > 0:
                    depth += lines[stop].count("[") - lines[stop].count("]")
                    stop += 1
            lines[hit:stop] = [new]
        else:
            last = end - 1
            while last >= start and not lines[last].strip():
                last -= 1
            lines.insert(last + 1, new)
    return "\n".join(lines) + "\n"


def _render(data: Mapping[str, Any]) -> str:
    out: list[str] = []

    def table(name: str, body: Mapping[str, Any]) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, Mapping)
                   and not (isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v))}
        if name and (scalars or not body):
            out.append(f"[{name}]")
        out.extend(f"{k} = {value(v)}" for k, v in scalars.items())
        if scalars:
            out.append("")
        for k, v in body.items():
            sub = f"{name}.{k}" if name else k
            if isinstance(v, Mapping):
                table(sub, v)
            elif isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v):
                for item in v:
                    out.append(f"[[{sub}]]")
                    out.extend(f"{ik} = {value(iv)}" for ik, iv in item.items())
                    out.append("")

    table("", data)
    return "\n".join(out).rstrip("\n") + "\n"


def set_keys(text: str, keys: Mapping[str, Any]) -> str:
    """``text`` with each dotted key set to its value (tomllib.TOMLDecodeError if ``text`` is not TOML)."""
    data = tomllib.loads(text)
    try:
        edited = _line_edit(text, keys)
        got = tomllib.loads(edited)
        if all(_get(got, k) == (list(v) if isinstance(v, tuple) else v) for k, v in keys.items()):
            return edited
    except (tomllib.TOMLDecodeError, TypeError):
        pass
    for dotted, v in keys.items():          # fall back: the parsed file, the keys set, re-rendered
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = list(v) if isinstance(v, tuple) else v
    return "# rewritten by gateway enrol (its comments could not be kept)\n" + _render(data)

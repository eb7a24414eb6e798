"""`gateway decode frame|adv|gatt HEX`: decode protocol bytes for support staff (JSON out).

Exit codes: 0 decoded, 1 the input was rejected (the JSON rejection names the reason),
2 bad usage (bad hex, unknown UUID, bad key or MAC).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("decode", help="decode a serial frame, BTHome advert or GATT health value (JSON)")
    dsub = p.add_subparsers(dest="decode_command", metavar="KIND")

    f = dsub.add_parser("frame", help="a serial / WT-frame wire frame (COBS, trailing 00 optional; several frames allowed)")
    f.add_argument("hex", help="hex bytes (spaces, colons and 0x prefixes allowed)")
    f.add_argument("--key", help="device key (32 hex digits) to verify the AUTH tag")
    f.add_argument("--body", action="store_true", help="HEX is a frame body (already COBS-decoded)")
    _common(f)
    f.set_defaults(func=cmd_frame)

    a = dsub.add_parser("adv", help="BTHome v2 service data (UUID 0xFCD2 payload)")
    a.add_argument("hex", help="service data hex, starting with the device-info byte (a leading "
                   "'LL 16 d2 fc' AD header or 'd2 fc' UUID is stripped)")
    a.add_argument("--key", help="BTHome key (32 hex digits) to decrypt an encrypted advert")
    a.add_argument("--mac", help="advertiser MAC (AA:BB:CC:DD:EE:FF), needed to decrypt")
    _common(a)
    a.set_defaults(func=cmd_adv)

    g = dsub.add_parser("gatt", help="a GATT health characteristic value")
    g.add_argument("--uuid", required=True, help="characteristic: 2A35, 2A1C, 2A9D, 2A5E, 2A5F or 2A18")
    g.add_argument("hex", help="characteristic value hex")
    _common(g)
    g.set_defaults(func=cmd_gatt)

    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="JSON output (the default and only format)")
    p.add_argument("--compact", action="store_true", help="one-line JSON")


class _Usage(Exception):
    pass


def _hex(text: str, what: str) -> bytes:
    cleaned = text.strip().lower().replace(" ", "").replace(":", "").replace("-", "").replace("0x", "")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise _Usage(f"{what} {text!r} is not hex; give bytes as hex digits, e.g. 0a1b2c") from None


def _key(text: str | None) -> bytes | None:
    if text is None:
        return None
    key = _hex(text, "--key")
    if len(key) != 16:
        raise _Usage(f"--key must be 16 bytes (32 hex digits), got {len(key)} bytes")
    return key


def _out(args: argparse.Namespace, obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=None if args.compact else 2))


def _run(args: argparse.Namespace, body) -> int:
    try:
        return body()
    except _Usage as exc:
        print(f"gateway decode {args.decode_command}: {exc}", file=sys.stderr)
        return 2


def cmd_frame(args: argparse.Namespace) -> int:
    def body() -> int:
        from gateway.codec import Rejection, RejectReason, StreamDecoder, decode_body
        from gateway.codec.jsonify import frame_to_json

        data = _hex(args.hex, "HEX")
        key = _key(args.key)
        if args.body:
            items = [decode_body(data)]
        else:
            if not data.endswith(b"\x00"):
                data += b"\x00"
            items = StreamDecoder().feed(data) or [decode_body(b"")]
        results: list[dict[str, Any]] = []
        rejected = False
        for item in items:
            if isinstance(item, Rejection):
                results.append(item.to_json())
                rejected = True
                continue
            out = frame_to_json(item)
            if key is not None:
                if not item.authenticated:
                    out["auth"] = "absent"
                elif item.verify(key):
                    out["auth"] = "ok"
                else:
                    results.append(Rejection(RejectReason.BAD_AUTH, "tag does not verify with --key", item.device_id).to_json())
                    rejected = True
                    continue
            else:
                out["auth"] = "not checked (no --key)" if item.authenticated else "absent"
            if isinstance(out["fields"], dict) and out["fields"].get("rejected"):
                rejected = True
            results.append(out)
        _out(args, results[0] if len(results) == 1 else results)
        return 1 if rejected else 0
    return _run(args, body)


def cmd_adv(args: argparse.Namespace) -> int:
    def body() -> int:
        from gateway.codec import Rejection, decode_advert
        from gateway.codec.bthome import advert_events, advert_to_json
        from gateway.codec.jsonify import payload_to_json

        data = _hex(args.hex, "HEX")
        key = _key(args.key)
        mac = args.mac
        if mac is not None and len(_hex(mac, "--mac")) != 6:
            raise _Usage(f"--mac {mac!r} must be 6 bytes, e.g. A4:C1:38:0A:1B:2C")
        data, stripped = _strip_ad_header(data)
        adv = decode_advert(data, mac=mac, key=key)
        if isinstance(adv, Rejection):
            _out(args, adv.to_json())
            return 1
        out = advert_to_json(adv)
        if stripped:
            out["stripped"] = stripped
        mapped = advert_events(adv)
        out["events"] = [payload_to_json(e) for e in mapped.events]
        if mapped.rejects:
            out["rejects"] = [r.to_json() for r in mapped.rejects]
        _out(args, out)
        return 0
    return _run(args, body)


def _strip_ad_header(data: bytes) -> tuple[bytes, str | None]:
    """Accept what btmon / scanners show: ``LL 16 d2 fc <service data>`` or ``d2 fc <service data>``.

    Unambiguous: a BTHome v2 device-info byte is never 0xd2 nor 0x16 (version bits)."""
    if len(data) >= 4 and data[1] == 0x16 and data[2:4] == b"\xd2\xfc" and data[0] == len(data) - 1:
        return data[4:], "AD structure header (length, 0x16 service data, UUID 0xFCD2)"
    if len(data) >= 2 and data[:2] == b"\xd2\xfc":
        return data[2:], "UUID 0xFCD2 prefix"
    return data, None


def cmd_gatt(args: argparse.Namespace) -> int:
    def body() -> int:
        from gateway.codec import Rejection, decode_gatt
        from gateway.codec.gatt import SUPPORTED_UUIDS, parse_uuid

        uuid = parse_uuid(args.uuid)
        if uuid is None:
            known = ", ".join(f"{u:04X}" for u in sorted(SUPPORTED_UUIDS))
            raise _Usage(f"--uuid {args.uuid!r} is not a supported health characteristic; use one of {known}")
        reading = decode_gatt(uuid, _hex(args.hex, "HEX"))
        if isinstance(reading, Rejection):
            _out(args, reading.to_json())
            return 1
        _out(args, reading.to_json())
        return 0
    return _run(args, body)

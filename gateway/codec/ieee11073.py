"""IEEE 11073-20601 SFLOAT (16-bit) and FLOAT (32-bit) medical number formats.

SFLOAT: 4-bit signed exponent (high nibble), 12-bit signed mantissa. FLOAT: 8-bit signed
exponent (high byte), 24-bit signed mantissa. value = mantissa × 10^exponent.
Special values are the exact codes with exponent 0 (IEEE 11073-20601): NaN 0x07FF /
0x007FFFFF, NRes 0x0800 / 0x00800000, +INF 0x07FE / 0x007FFFFE, −INF 0x0802 /
0x00800002, reserved 0x0801 / 0x00800001. With a non-zero exponent those mantissas are
ordinary numbers.
"""
from __future__ import annotations

from gateway.codec._result import CodecError

from dataclasses import dataclass

from gateway.codec.enums import SFloatSpecial


@dataclass(frozen=True)
class MedFloat:
    """A decoded SFLOAT/FLOAT: ``mantissa × 10^exponent`` or a special value.

    With exponent 0 the mantissas just outside SFLOAT −2045..+2045 / FLOAT
    −(2^23−3)..+(2^23−3) are the special codes; with any other exponent the full
    twos-complement range is a number.
    """

    mantissa: int
    exponent: int
    special: SFloatSpecial | None = None

    @property
    def value(self) -> float | None:
        """The number, or None for NaN / NRes / reserved; ±inf for the infinities."""
        if self.special is SFloatSpecial.POS_INF:
            return float("inf")
        if self.special is SFloatSpecial.NEG_INF:
            return float("-inf")
        if self.special is not None:
            return None
        if self.exponent >= 0:
            return float(self.mantissa * 10 ** self.exponent)
        return self.mantissa / 10 ** (-self.exponent)

    def to_json(self) -> float | int | str:
        """A JSON number, or the special value's name (``"NaN"``, ``"NRes"``, ``"+INF"``…)."""
        if self.special is not None:
            return self.special.value
        v = self.value
        assert v is not None
        return int(v) if self.exponent >= 0 and abs(v) < 2 ** 53 else v


_SFLOAT_SPECIAL = {0x07FF: SFloatSpecial.NAN, 0x0800: SFloatSpecial.NRES, 0x07FE: SFloatSpecial.POS_INF,
                   0x0802: SFloatSpecial.NEG_INF, 0x0801: SFloatSpecial.RESERVED}
_FLOAT_SPECIAL = {0x007FFFFF: SFloatSpecial.NAN, 0x00800000: SFloatSpecial.NRES, 0x007FFFFE: SFloatSpecial.POS_INF,
                  0x00800002: SFloatSpecial.NEG_INF, 0x00800001: SFloatSpecial.RESERVED}
_SFLOAT_CODE = {v: k for k, v in _SFLOAT_SPECIAL.items()}
_FLOAT_CODE = {v: k for k, v in _FLOAT_SPECIAL.items()}


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def decode_sfloat(raw: int) -> MedFloat:
    raw &= 0xFFFF
    mantissa = _signed(raw & 0x0FFF, 12)
    return MedFloat(mantissa, _signed(raw >> 12, 4), _SFLOAT_SPECIAL.get(raw))


def decode_float(raw: int) -> MedFloat:
    raw &= 0xFFFFFFFF
    mantissa = _signed(raw & 0x00FFFFFF, 24)
    return MedFloat(mantissa, _signed(raw >> 24, 8), _FLOAT_SPECIAL.get(raw))


def encode_sfloat(value: MedFloat) -> int:
    if value.special is not None:
        return _SFLOAT_CODE[value.special]
    if not -8 <= value.exponent <= 7:
        raise CodecError(f"SFLOAT exponent {value.exponent} out of range -8..7", field="exponent", value=value.exponent)
    limit = 2045 if value.exponent == 0 else 2047
    if not -limit - (0 if value.exponent == 0 else 1) <= value.mantissa <= limit:
        raise CodecError(f"SFLOAT mantissa {value.mantissa} / exponent {value.exponent} out of range")
    return ((value.exponent & 0xF) << 12) | (value.mantissa & 0x0FFF)


def encode_float(value: MedFloat) -> int:
    if value.special is not None:
        return _FLOAT_CODE[value.special]
    if not -128 <= value.exponent <= 127:
        raise CodecError(f"FLOAT exponent {value.exponent} out of range -128..127", field="exponent", value=value.exponent)
    limit = 2 ** 23 - 3 if value.exponent == 0 else 2 ** 23 - 1
    if not -limit - (0 if value.exponent == 0 else 1) <= value.mantissa <= limit:
        raise CodecError(f"FLOAT mantissa {value.mantissa} / exponent {value.exponent} out of range")
    return ((value.exponent & 0xFF) << 24) | (value.mantissa & 0x00FFFFFF)


def sfloat(mantissa: int, exponent: int = 0) -> MedFloat:
    return MedFloat(mantissa, exponent)


def special(kind: SFloatSpecial) -> MedFloat:
    return decode_sfloat(_SFLOAT_CODE[kind])

"""PACE 0x25 protection-parameter groups (PbmsTools "Parameter Setting" tab), docs/protocol.md §1.9.11-§1.9.13.

Each group is a frozen dataclass in natural units with `decode(info)` (read reply), `encode()` (write request INFO),
`encode_reply()` (read reply INFO, for the simulator) and `validate()`. The layouts come from PbmsTools captures
only (no vendor document); where a read and a write differ (DOC1 sign, DOC2 length) both are handled here.
"""

import struct
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Self

from .driver import Exchange, ProtocolDriver
from .frame import BmsError, FrameError

KELVIN_OFFSET = 2730
_FLOAT_TOLERANCE = 1e-6


class ParameterRule(StrEnum):
    """The rule a rejected parameter value broke."""

    BELOW_MINIMUM = "below_minimum"
    ABOVE_MAXIMUM = "above_maximum"
    #: Not on the field's step from its minimum (or not a whole number for an integer field).
    OFF_STEP = "off_step"
    #: Inconsistent with another field of the group (`relation` to `other`).
    ORDER = "order"
    #: Cannot be encoded at all.
    WIRE_RANGE = "wire_range"
    UNKNOWN_FIELD = "unknown_field"
    #: NaN or an infinity.
    NOT_FINITE = "not_finite"


class Relation(StrEnum):
    """What an ORDER rule requires of the field, relative to the other field."""

    ABOVE = "above"
    AT_LEAST = "at_least"
    BELOW = "below"
    AT_MOST = "at_most"


class ParameterError(BmsError):
    """A parameter value the BMS would not accept, as data: the integration words it in the user's language.

    `reason` is the rule broken, `field` the field name, `value` what was asked (in `unit`); `minimum`, `maximum`
    and `step` the field's limits where they matter; for ORDER, `other` and `other_value` name the field it
    conflicts with and `relation` what the field must be relative to it. `group` is the parameter group class when
    the error concerns one. The text of the exception itself is for logs and the CLI only.
    """

    def __init__(
        self,
        reason: ParameterRule,
        field: str,
        *,
        value: float | None = None,
        unit: str | None = None,
        minimum: float | None = None,
        maximum: float | None = None,
        step: float | None = None,
        other: str | None = None,
        other_value: float | None = None,
        relation: Relation | None = None,
        group: type[ParameterGroup] | None = None,
    ) -> None:
        self.reason = reason
        self.field = field
        self.value = value
        self.unit = unit
        self.minimum = minimum
        self.maximum = maximum
        self.step = step
        self.other = other
        self.other_value = other_value
        self.relation = relation
        self.group = group
        details = {
            "value": value,
            "minimum": minimum,
            "maximum": maximum,
            "step": step,
            "other": other,
            "other_value": other_value,
            "relation": relation,
        }
        shown = ", ".join(f"{key}={item}" for key, item in details.items() if item is not None)
        where = f"{group.__name__}." if group is not None else ""
        super().__init__(f"{where}{field}: {reason} ({shown}{' ' + unit if unit and value is not None else ''})")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """Unit, step and range of one settable field (PbmsTools ranges, docs/protocol.md §1.9.12)."""

    unit: str | None
    step: float
    minimum: float
    maximum: float


def _unpack(fmt: str, info: bytes, what: str) -> tuple[int, ...]:
    if len(info) != struct.calcsize(fmt):
        raise FrameError(f"{what}: INFO of {len(info)} bytes, expected {struct.calcsize(fmt)}")
    return struct.unpack(fmt, info)


def _pack(fmt: str, values: Sequence[tuple[str, int]]) -> bytes:
    """Pack (field name, wire integer) pairs; an integer the wire cannot hold is a ParameterError for that field."""
    codes = fmt.lstrip(">")
    for code, (name, value) in zip(codes, values, strict=True):
        bits = {"B": 8, "H": 16, "h": 16}[code]
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if code.islower() else (0, (1 << bits) - 1)
        if not low <= value <= high:
            raise ParameterError(ParameterRule.WIRE_RANGE, name)  # the wire integer means nothing to a user
    return struct.pack(fmt, *(value for _, value in values))


def _c(raw: int) -> float:
    return (raw - KELVIN_OFFSET) / 10


def _k(celsius: float) -> int:
    return round(celsius * 10) + KELVIN_OFFSET


def _mv(volts: float) -> int:
    return round(volts * 1000)


def _ds(seconds: float) -> int:
    """Delays in units of 100 ms."""
    return round(seconds * 10)


class ParameterGroup(ABC):
    """Base of every parameter group dataclass."""

    __slots__ = ()
    read_cid2: ClassVar[int]
    write_cid2: ClassVar[int]
    #: Settable fields → unit/step/range. Fields not listed (the constant lead byte) are copied, not validated.
    specs: ClassVar[Mapping[str, FieldSpec]]
    #: (lower, upper, strict) consistency rules within the group.
    order: ClassVar[tuple[tuple[str, str, bool], ...]] = ()

    @classmethod
    @abstractmethod
    def decode(cls, info: bytes) -> Self:
        """The group from a read reply's INFO (FrameError when malformed)."""

    @abstractmethod
    def encode(self) -> bytes:
        """INFO of the write request."""

    def encode_reply(self) -> bytes:
        """INFO of the read reply (differs from the write for some groups)."""
        return self.encode()

    def validate(self) -> None:
        """Raise ParameterError unless every field is in range, on its step, and the group is consistent."""
        group = type(self)
        for name, spec in self.specs.items():
            value = float(getattr(self, name))
            steps = (value - spec.minimum) / spec.step
            if value < spec.minimum - _FLOAT_TOLERANCE:
                rule = ParameterRule.BELOW_MINIMUM
            elif value > spec.maximum + _FLOAT_TOLERANCE:
                rule = ParameterRule.ABOVE_MAXIMUM
            elif abs(steps - round(steps)) > _FLOAT_TOLERANCE:
                rule = ParameterRule.OFF_STEP
            else:
                continue
            raise ParameterError(
                rule,
                name,
                value=value,
                unit=spec.unit,
                minimum=spec.minimum,
                maximum=spec.maximum,
                step=spec.step,
                group=group,
            )
        for lower, upper, strict in self.order:
            low, high = getattr(self, lower), getattr(self, upper)
            if low > high or (strict and low == high):
                # Blame the field that is not the alarm threshold: that is the one set relative to the alarm.
                if "alarm" in lower:
                    field, other, relation = upper, lower, Relation.ABOVE if strict else Relation.AT_LEAST
                else:
                    field, other, relation = lower, upper, Relation.BELOW if strict else Relation.AT_MOST
                raise ParameterError(
                    ParameterRule.ORDER,
                    field,
                    value=getattr(self, field),
                    unit=self.specs[field].unit,
                    other=other,
                    other_value=getattr(self, other),
                    relation=relation,
                    group=group,
                )


def _voltage_specs(minimum: float, maximum: float) -> Mapping[str, FieldSpec]:
    # PbmsTools steps cell thresholds in 10 mV; the same step is used for every voltage (all captures lie on it).
    # The delay range/step (1-20 s in 0.5 s) is documented for cell OV and assumed for the other voltage groups.
    volts = FieldSpec("V", 0.01, minimum, maximum)
    return {
        "alarm_v": volts,
        "protect_v": volts,
        "release_v": volts,
        "delay_s": FieldSpec("s", 0.5, 1.0, 20.0),
    }


#: Over-limit groups: release <= alarm < protect. Release == alarm is allowed because the captured temperature
#: groups of a real pack use it (e.g. environment OT 65/70/65 °C); the capture wins over a strict reading.
_OVER = (("release_v", "alarm_v", False), ("alarm_v", "protect_v", True))
#: Under-limit groups: protect < alarm <= release.
_UNDER = (("protect_v", "alarm_v", True), ("alarm_v", "release_v", False))


@dataclass(frozen=True, slots=True, kw_only=True)
class _VoltageThresholds(ParameterGroup):
    """`01` · alarm · protect · release (u16 mV) · delay (u8, 100 ms)."""

    alarm_v: float
    protect_v: float
    release_v: float
    delay_s: float
    lead: int = 0x01

    @classmethod
    def decode(cls, info: bytes) -> Self:
        lead, alarm, protect, release, delay = _unpack(">BHHHB", info, cls.__name__)
        return cls(
            alarm_v=alarm / 1000, protect_v=protect / 1000, release_v=release / 1000, delay_s=delay / 10, lead=lead
        )

    def encode(self) -> bytes:
        return _pack(
            ">BHHHB",
            (
                ("lead", self.lead),
                ("alarm_v", _mv(self.alarm_v)),
                ("protect_v", _mv(self.protect_v)),
                ("release_v", _mv(self.release_v)),
                ("delay_s", _ds(self.delay_s)),
            ),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CellOverVoltage(_VoltageThresholds):
    """Cell over-voltage (0xD1 read / 0xD0 write)."""

    read_cid2 = 0xD1
    write_cid2 = 0xD0
    specs = _voltage_specs(2.5, 4.5)
    order = _OVER


@dataclass(frozen=True, slots=True, kw_only=True)
class PackOverVoltage(_VoltageThresholds):
    """Pack over-voltage (0xD5 / 0xD4)."""

    read_cid2 = 0xD5
    write_cid2 = 0xD4
    specs = _voltage_specs(20.0, 65.0)
    order = _OVER


@dataclass(frozen=True, slots=True, kw_only=True)
class CellUnderVoltage(_VoltageThresholds):
    """Cell under-voltage (0xD3 / 0xD2)."""

    read_cid2 = 0xD3
    write_cid2 = 0xD2
    specs = _voltage_specs(2.0, 3.5)
    order = _UNDER


@dataclass(frozen=True, slots=True, kw_only=True)
class PackUnderVoltage(_VoltageThresholds):
    """Pack under-voltage (0xD7 / 0xD6)."""

    read_cid2 = 0xD7
    write_cid2 = 0xD6
    specs = _voltage_specs(15.0, 50.0)
    order = _UNDER


#: Current groups: 1-220 A; delay 0.5-25 s in the wire's 100 ms (documented for charge OC, assumed for DOC1).
_CURRENT_SPECS: Mapping[str, FieldSpec] = {
    "alarm_a": FieldSpec("A", 1, 1, 220),
    "protect_a": FieldSpec("A", 1, 1, 220),
    "delay_s": FieldSpec("s", 0.1, 0.5, 25.0),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargeOverCurrent(ParameterGroup):
    """Charge over-current (0xD9 / 0xD8): `01` · alarm u16 A · protect u16 A · delay u8 (100 ms)."""

    read_cid2 = 0xD9
    write_cid2 = 0xD8
    specs = _CURRENT_SPECS
    order = (("alarm_a", "protect_a", True),)

    alarm_a: int
    protect_a: int
    delay_s: float
    lead: int = 0x01

    @classmethod
    def decode(cls, info: bytes) -> Self:
        lead, alarm, protect, delay = _unpack(">BHHB", info, cls.__name__)
        return cls(alarm_a=alarm, protect_a=protect, delay_s=delay / 10, lead=lead)

    def encode(self) -> bytes:
        return _pack(
            ">BHHB",
            (
                ("lead", self.lead),
                ("alarm_a", self.alarm_a),
                ("protect_a", self.protect_a),
                ("delay_s", _ds(self.delay_s)),
            ),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DischargeOverCurrent1(ParameterGroup):
    """Discharge over-current 1 (0xDB / 0xDA). The read reply carries the currents as negative s16 (-105 = FF97),
    the write as positive values; held here as positive amperes."""

    read_cid2 = 0xDB
    write_cid2 = 0xDA
    specs = _CURRENT_SPECS
    order = (("alarm_a", "protect_a", True),)

    alarm_a: int
    protect_a: int
    delay_s: float
    lead: int = 0x01

    @classmethod
    def decode(cls, info: bytes) -> Self:
        lead, alarm, protect, delay = _unpack(">BhhB", info, cls.__name__)
        return cls(alarm_a=abs(alarm), protect_a=abs(protect), delay_s=delay / 10, lead=lead)

    def _encode(self, sign: int) -> bytes:
        return _pack(
            ">BhhB",
            (
                ("lead", self.lead),
                ("alarm_a", sign * self.alarm_a),
                ("protect_a", sign * self.protect_a),
                ("delay_s", _ds(self.delay_s)),
            ),
        )

    def encode(self) -> bytes:
        return self._encode(1)

    def encode_reply(self) -> bytes:
        return self._encode(-1)


@dataclass(frozen=True, slots=True, kw_only=True)
class DischargeOverCurrent2(ParameterGroup):
    """Discharge over-current 2, the fast stage (0xE3 / 0xE2): `00` · protect u8 A · delay u8 (25 ms).

    The read reply repeats those three bytes (6 bytes), the write sends them once.
    """

    read_cid2 = 0xE3
    write_cid2 = 0xE2
    specs: ClassVar[Mapping[str, FieldSpec]] = {
        "protect_a": FieldSpec("A", 5, 5, 255),
        "delay_s": FieldSpec("s", 0.025, 0.1, 2.0),
    }

    protect_a: int
    delay_s: float
    lead: int = 0x00

    @classmethod
    def decode(cls, info: bytes) -> Self:
        if len(info) == 6:
            info = info[:3]
        lead, protect, delay = _unpack(">BBB", info, cls.__name__)
        return cls(protect_a=protect, delay_s=delay * 25 / 1000, lead=lead)

    def encode(self) -> bytes:
        delay = round(self.delay_s * 1000 / 25)
        return _pack(">BBB", (("lead", self.lead), ("protect_a", self.protect_a), ("delay_s", delay)))

    def encode_reply(self) -> bytes:
        return self.encode() * 2


@dataclass(frozen=True, slots=True, kw_only=True)
class ShortCircuit(ParameterGroup):
    """Short-circuit protection delay (0xE5 / 0xE4): u8 in 25 µs units."""

    read_cid2 = 0xE5
    write_cid2 = 0xE4
    specs: ClassVar[Mapping[str, FieldSpec]] = {"delay_us": FieldSpec("μs", 25, 100, 500)}

    delay_us: int

    @classmethod
    def decode(cls, info: bytes) -> Self:
        (delay,) = _unpack(">B", info, cls.__name__)
        return cls(delay_us=delay * 25)

    def encode(self) -> bytes:
        if self.delay_us % 25:
            spec = self.specs["delay_us"]
            raise ParameterError(
                ParameterRule.OFF_STEP,
                "delay_us",
                value=self.delay_us,
                unit=spec.unit,
                minimum=spec.minimum,
                step=spec.step,
                group=type(self),
            )
        return _pack(">B", (("delay_us", self.delay_us // 25),))


@dataclass(frozen=True, slots=True, kw_only=True)
class Balancing(ParameterGroup):
    """Cell balancing (0xB6 / 0xB5): start voltage u16 mV · delta u16 mV."""

    read_cid2 = 0xB6
    write_cid2 = 0xB5
    specs: ClassVar[Mapping[str, FieldSpec]] = {
        "start_v": FieldSpec("V", 0.01, 3.3, 4.5),
        "delta_mv": FieldSpec("mV", 1, 20, 500),
    }

    start_v: float
    delta_mv: int

    @classmethod
    def decode(cls, info: bytes) -> Self:
        start, delta = _unpack(">HH", info, cls.__name__)
        return cls(start_v=start / 1000, delta_mv=delta)

    def encode(self) -> bytes:
        return _pack(">HH", (("start_v", _mv(self.start_v)), ("delta_mv", self.delta_mv)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Sleep(ParameterGroup):
    """Sleep (0xA0 / 0xA8): cell voltage u16 mV · `00` · delay u8 minutes."""

    read_cid2 = 0xA0
    write_cid2 = 0xA8
    specs: ClassVar[Mapping[str, FieldSpec]] = {
        "cell_v": FieldSpec("V", 0.01, 2.0, 4.0),
        "delay_min": FieldSpec("min", 1, 1, 120),
    }

    cell_v: float
    delay_min: int
    reserved: int = 0x00

    @classmethod
    def decode(cls, info: bytes) -> Self:
        cell, reserved, delay = _unpack(">HBB", info, cls.__name__)
        return cls(cell_v=cell / 1000, delay_min=delay, reserved=reserved)

    def encode(self) -> bytes:
        return _pack(">HBB", (("cell_v", _mv(self.cell_v)), ("reserved", self.reserved), ("delay_min", self.delay_min)))


@dataclass(frozen=True, slots=True, kw_only=True)
class FullChargeLowSoc(ParameterGroup):
    """Full charge and low-SOC alarm (0xAF / 0xAE): pack voltage u16 mV · current u16 **mA** · low SOC u8 %.

    The voltage range is not given by PbmsTools; the pack-voltage range of the OV/UV groups (15-65 V) is assumed.
    """

    read_cid2 = 0xAF
    write_cid2 = 0xAE
    specs: ClassVar[Mapping[str, FieldSpec]] = {
        "full_charge_v": FieldSpec("V", 0.01, 15.0, 65.0),
        "full_charge_current_a": FieldSpec("A", 0.001, 0.5, 5.0),
        "low_soc_pct": FieldSpec("%", 1, 0, 100),
    }

    full_charge_v: float
    full_charge_current_a: float
    low_soc_pct: int

    @classmethod
    def decode(cls, info: bytes) -> Self:
        volts, milliamps, soc = _unpack(">HHB", info, cls.__name__)
        return cls(full_charge_v=volts / 1000, full_charge_current_a=milliamps / 1000, low_soc_pct=soc)

    def encode(self) -> bytes:
        return _pack(
            ">HHB",
            (
                ("full_charge_v", _mv(self.full_charge_v)),
                ("full_charge_current_a", round(self.full_charge_current_a * 1000)),
                ("low_soc_pct", self.low_soc_pct),
            ),
        )


def _temperature_specs(names: Sequence[str], minimum: float, maximum: float) -> dict[str, FieldSpec]:
    return dict.fromkeys(names, FieldSpec("°C", 0.1, minimum, maximum))


_CHG_DSG = ("charge_alarm_c", "charge_protect_c", "charge_release_c")
_DSG = ("discharge_alarm_c", "discharge_protect_c", "discharge_release_c")


def _over_order(alarm: str, protect: str, release: str) -> tuple[tuple[str, str, bool], ...]:
    return ((release, alarm, False), (alarm, protect, True))


def _under_order(alarm: str, protect: str, release: str) -> tuple[tuple[str, str, bool], ...]:
    return ((protect, alarm, True), (alarm, release, False))


@dataclass(frozen=True, slots=True, kw_only=True)
class _SixTemperatures(ParameterGroup):
    """`01` · six u16 temperatures (0.1 K, offset 2730) in field order."""

    lead: int = 0x01

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        return tuple(cls.specs)

    @classmethod
    def decode(cls, info: bytes) -> Self:
        lead, *temps = _unpack(">BHHHHHH", info, cls.__name__)
        values: dict[str, float] = {name: _c(raw) for name, raw in zip(cls._names(), temps, strict=True)}
        return cls(lead=lead, **values)

    def encode(self) -> bytes:
        return _pack(">BHHHHHH", (("lead", self.lead), *((name, _k(getattr(self, name))) for name in self._names())))


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargeDischargeOverTemperature(_SixTemperatures):
    """Cell over-temperature while charging / discharging (0xDD / 0xDC): alarm, protect, release each."""

    read_cid2 = 0xDD
    write_cid2 = 0xDC
    specs = _temperature_specs(_CHG_DSG + _DSG, 20.0, 100.0)
    order = _over_order(*_CHG_DSG) + _over_order(*_DSG)

    charge_alarm_c: float
    charge_protect_c: float
    charge_release_c: float
    discharge_alarm_c: float
    discharge_protect_c: float
    discharge_release_c: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargeDischargeUnderTemperature(_SixTemperatures):
    """Cell under-temperature while charging / discharging (0xDF / 0xDE), same order as over-temperature."""

    read_cid2 = 0xDF
    write_cid2 = 0xDE
    specs = _temperature_specs(_CHG_DSG + _DSG, -35.0, 30.0)
    order = _under_order(*_CHG_DSG) + _under_order(*_DSG)

    charge_alarm_c: float
    charge_protect_c: float
    charge_release_c: float
    discharge_alarm_c: float
    discharge_protect_c: float
    discharge_release_c: float


_ENV_UT = ("under_alarm_c", "under_protect_c", "under_release_c")
_ENV_OT = ("over_alarm_c", "over_protect_c", "over_release_c")


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvironmentTemperature(_SixTemperatures):
    """Environment under/over-temperature (0xE7 / 0xE6). PbmsTools gives no range; the cell UT (-35-30 °C) and
    OT (20-100 °C) ranges are assumed."""

    read_cid2 = 0xE7
    write_cid2 = 0xE6
    specs = _temperature_specs(_ENV_UT, -35.0, 30.0) | _temperature_specs(_ENV_OT, 20.0, 100.0)
    order = _under_order(*_ENV_UT) + _over_order(*_ENV_OT)

    under_alarm_c: float
    under_protect_c: float
    under_release_c: float
    over_alarm_c: float
    over_protect_c: float
    over_release_c: float


@dataclass(frozen=True, slots=True, kw_only=True)
class MosfetOverTemperature(ParameterGroup):
    """MOSFET over-temperature (0xE1 / 0xE0): `01` · alarm · protect · release (LENID 0x00E as captured)."""

    read_cid2 = 0xE1
    write_cid2 = 0xE0
    specs = _temperature_specs(("alarm_c", "protect_c", "release_c"), 30.0, 120.0)
    order = _over_order("alarm_c", "protect_c", "release_c")

    alarm_c: float
    protect_c: float
    release_c: float
    lead: int = 0x01

    @classmethod
    def decode(cls, info: bytes) -> Self:
        lead, alarm, protect, release = _unpack(">BHHH", info, cls.__name__)
        return cls(alarm_c=_c(alarm), protect_c=_c(protect), release_c=_c(release), lead=lead)

    def encode(self) -> bytes:
        return _pack(
            ">BHHH",
            (
                ("lead", self.lead),
                ("alarm_c", _k(self.alarm_c)),
                ("protect_c", _k(self.protect_c)),
                ("release_c", _k(self.release_c)),
            ),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LimiterStartCurrent(ParameterGroup):
    """Charge-limiter start current (0xED read / 0xEE write): lead byte (`00`, maybe an address) · A u8."""

    read_cid2 = 0xED
    write_cid2 = 0xEE
    specs: ClassVar[Mapping[str, FieldSpec]] = {"current_a": FieldSpec("A", 1, 5, 150)}

    current_a: int
    lead: int = 0x00

    @classmethod
    def decode(cls, info: bytes) -> Self:
        lead, current = _unpack(">BB", info, cls.__name__)
        return cls(current_a=current, lead=lead)

    def encode(self) -> bytes:
        return _pack(">BB", (("lead", self.lead), ("current_a", self.current_a)))


#: §1.9.13 CAN protocol byte. Lists differ between PbmsTools builds: unknown codes are kept as plain ints.
CAN_PROTOCOLS: Mapping[int, str] = {
    0xFF: "Off",
    0x00: "PACE",
    0x01: "Pylon",
    0x02: "Growatt/Sacolar",
    0x03: "Victron",
    0x04: "Schneider/SE/SMA",
    0x05: "LuxPower",
    0x06: "SoroTec/SRD",
    0x07: "SMA/Studer",
    0x08: "GoodWe",
    0x09: "Studer",
    0x0A: "Sofar",
    0x0B: "Must/PV",
    0x0C: "Solis/Jinlang",
    0x0D: "DIDU/TBB",
    0x0E: "Senergy/Aifu",
    0x0F: "TBB",
    0x10: "Pylon_V202",
    0x11: "Growatt_V109",
    0x12: "Must_V202",
    0x13: "Afore",
    0x14: "INVT/YWT",
    0x15: "FUJI",
    0x16: "Sofar_V21003",
}
#: §1.9.13 RS485 protocol byte.
RS485_PROTOCOLS: Mapping[int, str] = {
    0xFF: "Off",
    0x00: "PACE Modbus",
    0x01: "Pylon",
    0x02: "Growatt",
    0x03: "Voltronic",
    0x04: "Schneider/SE",
    0x05: "PHOCOS",
    0x06: "LuxPower",
    0x07: "Solar",
    0x08: "Lithium/SMARK",
    0x09: "EP/MSL",
    0x0A: "RTU04",
    0x0B: "LuxPower_V01",
    0x0C: "LuxPower_V03",
    0x0D: "SRNE/WOW",
    0x0E: "LEOCH",
    0x0F: "Pylon_F",
    0x10: "Afore",
    0x11: "UPS_AGXN",
    0x12: "Orex_Sunpolo",
    0x13: "XIONGTAO",
    0x14: "RONGKE",
    0x15: "XINRUI",
    0x16: "ELTEK",
    0x17: "GT",
    0x18: "Leoch_V106",
}
#: §1.9.13 selection type byte.
PROTOCOL_TYPES: Mapping[int, str] = {0x00: "Auto", 0x01: "Manual", 0xFF: "Off"}


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolSelection(ParameterGroup):
    """Inverter protocol selection (0xEB / 0xEC): CAN code · RS485 code · type. Codes stay raw integers."""

    read_cid2 = 0xEB
    write_cid2 = 0xEC
    specs: ClassVar[Mapping[str, FieldSpec]] = dict.fromkeys(
        ("can_protocol", "rs485_protocol", "selection_type"), FieldSpec(None, 1, 0, 0xFF)
    )

    can_protocol: int
    rs485_protocol: int
    selection_type: int

    @classmethod
    def decode(cls, info: bytes) -> Self:
        can, rs485, kind = _unpack(">BBB", info, cls.__name__)
        return cls(can_protocol=can, rs485_protocol=rs485, selection_type=kind)

    def encode(self) -> bytes:
        return _pack(
            ">BBB",
            (
                ("can_protocol", self.can_protocol),
                ("rs485_protocol", self.rs485_protocol),
                ("selection_type", self.selection_type),
            ),
        )

    @property
    def can_protocol_name(self) -> str | None:
        return CAN_PROTOCOLS.get(self.can_protocol)

    @property
    def rs485_protocol_name(self) -> str | None:
        return RS485_PROTOCOLS.get(self.rs485_protocol)

    @property
    def selection_type_name(self) -> str | None:
        return PROTOCOL_TYPES.get(self.selection_type)


#: Every group, in PbmsTools tab order.
PARAMETER_GROUPS: tuple[type[ParameterGroup], ...] = (
    CellOverVoltage,
    PackOverVoltage,
    CellUnderVoltage,
    PackUnderVoltage,
    ChargeOverCurrent,
    DischargeOverCurrent1,
    DischargeOverCurrent2,
    ShortCircuit,
    Balancing,
    Sleep,
    FullChargeLowSoc,
    ChargeDischargeOverTemperature,
    ChargeDischargeUnderTemperature,
    MosfetOverTemperature,
    EnvironmentTemperature,
    LimiterStartCurrent,
    ProtocolSelection,
)
#: Read CID2 → group, for the simulator.
GROUP_BY_READ_CID2: Mapping[int, type[ParameterGroup]] = {group.read_cid2: group for group in PARAMETER_GROUPS}
#: Write CID2 → group, for the simulator.
GROUP_BY_WRITE_CID2: Mapping[int, type[ParameterGroup]] = {group.write_cid2: group for group in PARAMETER_GROUPS}


async def read_group[G: ParameterGroup](exchange: Exchange, driver: ProtocolDriver, adr: int, group: type[G]) -> G:
    """Read one group from the directly connected pack (parameters are not relayed by a master, §1.7.1)."""
    frame = await exchange.exchange(driver.request(adr, group.read_cid2))
    return group.decode(frame.check_rtn().info)

"""Payload codecs of the VER 0x20 family: Pylontech (and Pylon-protocol clones), Seplos V2 and EG4 LifePower4.

Layouts follow docs/protocol.md §1.10; auto-detection helpers follow §1.11 steps 5 and 7. Every decoder raises only
FrameError for a malformed payload; every `encode_*` function is the exact inverse of its decoder (it builds the
INFO the simulator puts into a reply frame) and raises FrameError when a value does not fit its wire field.
"""

import math
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import ClassVar

from .codec import Reader
from .driver import ALL_PACKS, Exchange, ProtocolDriver, ProtocolName, Strategy
from .frame import Frame, FrameError, Rtn, RtnError
from .models import Condition, Fault, PackAnalog, PackIdentity, PackStatus

VER_20 = 0x20
CID1_LIFEPO4 = 0x46
CID1_EG4 = 0x4A

#: Temperatures are 0.1 K with this offset in the whole family (°C = (raw - 2731) / 10).
KELVIN_OFFSET = 2731
#: Upper bounds for counts in a record; larger counts mean we are reading the wrong layout.
MAX_CELLS = 32
MAX_TEMPERATURES = 16

#: The "user-defined" byte that tells the 0x42 layouts apart (§1.11 step 5).
PYLON_UD_SMALL = 2  # remaining/total capacity as u16 mAh
PYLON_UD_LARGE = 4  # plus 3-byte remaining/total capacities (u16 fields read 0xFFFF)
SEPLOS_UD = 10
EG4_UD = 15
SEPLOS_STATUS_UD = 20
EG4_STATUS_UD = 9

_U16_UNUSED = 0xFFFF


class Cid2(IntEnum):
    """Commands of the 0x20 family this module speaks (docs/protocol.md §1.8)."""

    ANALOG = 0x42
    STATUS = 0x44
    SYSTEM_PARAMETERS = 0x47
    CLOCK_READ = 0x4D
    CLOCK_WRITE = 0x4E
    PROTOCOL_VERSION = 0x4F
    MANUFACTURER_INFO = 0x51
    CHARGE_MANAGEMENT = 0x92
    SERIAL_NUMBER = 0x93
    SOFTWARE_VERSION = 0x96


# --------------------------------------------------------------------------------------------------------------
# Byte-level reading and writing


def _uint(value: int, size: int, what: str) -> bytes:
    try:
        return value.to_bytes(size, "big")
    except OverflowError as err:
        raise FrameError(f"{what} {value} does not fit in {size} unsigned byte(s)") from err


def _sint(value: int, size: int, what: str) -> bytes:
    try:
        return value.to_bytes(size, "big", signed=True)
    except OverflowError as err:
        raise FrameError(f"{what} {value} does not fit in {size} signed byte(s)") from err


def _scaled(value: float, unit: float, what: str) -> int:
    """Wire integer for `value` in steps of `unit`; non-finite input cannot be sent."""
    if not math.isfinite(value):
        raise FrameError(f"{what} is not a finite number: {value}")
    return round(value / unit)


def _temperature_c(raw: int) -> float:
    return (raw - KELVIN_OFFSET) / 10


def _temperature_raw(celsius: float) -> bytes:
    return _uint(_scaled(celsius, 0.1, "temperature") + KELVIN_OFFSET, 2, "temperature")


def _ascii(data: bytes) -> str:
    """Fixed-width ASCII field: padding (spaces, NUL, 0xFF) removed; undecodable bytes become U+FFFD."""
    return data.rstrip(b" \x00\xff").decode("ascii", errors="replace")


def _ascii_field(text: str, width: int, what: str) -> bytes:
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError as err:
        raise FrameError(f"{what} is not ASCII: {text!r}") from err
    if len(data) > width:
        raise FrameError(f"{what} longer than {width} characters: {text!r}")
    return data.ljust(width, b" ")


def _bits(value: int, width: int) -> tuple[int, ...]:
    """1-based numbers of the set bits (bit 0 = 1)."""
    return tuple(bit + 1 for bit in range(width) if value >> bit & 1)


def _mask(numbers: Iterable[int], width: int, what: str) -> int:
    value = 0
    for number in numbers:
        if not 1 <= number <= width:
            raise FrameError(f"{what} {number} outside 1..{width}")
        value |= 1 << (number - 1)
    return value


# (bit, condition, is_protection): the first row of a (condition, level) pair is the one the encoder sets.
type _ConditionBits = tuple[tuple[int, Condition, bool], ...]
type _FaultBits = tuple[tuple[int, Fault], ...]


def _read_conditions(value: int, table: _ConditionBits, warnings: set[Condition], protections: set[Condition]) -> None:
    for bit, condition, protection in table:
        if value >> bit & 1:
            (protections if protection else warnings).add(condition)


def _write_conditions(
    table: _ConditionBits, warnings: Collection[Condition], protections: Collection[Condition]
) -> int:
    value = 0
    done: set[tuple[Condition, bool]] = set()
    for bit, condition, protection in table:
        if (condition, protection) not in done and condition in (protections if protection else warnings):
            value |= 1 << bit
            done.add((condition, protection))
    return value


def _read_faults(value: int, table: _FaultBits, faults: set[Fault]) -> None:
    faults.update(fault for bit, fault in table if value >> bit & 1)


def _write_faults(table: _FaultBits, faults: Collection[Fault]) -> int:
    value = 0
    done: set[Fault] = set()
    for bit, fault in table:
        if fault in faults and fault not in done:
            value |= 1 << bit
            done.add(fault)
    return value


def _derived_soc(remaining_ah: float, full_ah: float) -> float:
    """SOC from capacities for protocols that do not send it, clamped to 0..100 %."""
    if full_ah <= 0:
        return 0.0
    return round(min(max(remaining_ah / full_ah * 100, 0.0), 100.0), 1)


def _record_addresses(frame_adr: int, command: int, records: int) -> list[int]:
    """Addresses of the records of a 0x42/0x44 reply.

    Several records = a broadcast to the master (byte 2 is the module count); they are numbered up from the
    master's ADR (Pylon §1.7.2). One record: byte 2 echoes the requested pack (relay or bus), except the count 1
    of a one-pack broadcast, which is answered by the master itself.
    """
    if records > 1:
        return [frame_adr + index for index in range(records)]
    return [command if command > 1 else frame_adr]


def _command_byte(packs: Sequence[object], command: int) -> bytes:
    return _uint(len(packs) if command == ALL_PACKS else command, 1, "command")


def _single(packs: Sequence[PackAnalog] | Sequence[PackStatus], protocol: str) -> None:
    if len(packs) != 1:
        raise FrameError(f"a {protocol} reply carries exactly one pack, got {len(packs)}")


# --------------------------------------------------------------------------------------------------------------
# Pylontech 0x42 and the clone scaling check


@dataclass(frozen=True, slots=True)
class PylonScale:
    """Wire units of one firmware's 0x42 fields. Genuine Pylontech: mV, 100 mA, mAh (§1.10.1)."""

    voltage_mv: int = 1
    current_ma: int = 100
    capacity_mah: int = 1


PYLON_GENUINE = PylonScale()
#: PACE-type clones answering the Pylon protocol in their native units (I-NK58, nkinnan's "PYLON" variant).
PYLON_PACE_CLONE = PylonScale(current_ma=10, capacity_mah=10)

#: Plausible full capacity of one 48/51.2 V pack.
PLAUSIBLE_AH = (5.0, 1000.0)
#: When both capacity units are plausible, pick the reading nearer (log scale) to this typical module size.
#: 100 Ah keeps genuine u16-mAh modules (≤ 65.5 Ah) right down to 31.6 Ah and 10 mAh clones right up to 316 Ah.
TYPICAL_AH = 100.0
#: A current above this many C means the 100 mA unit is wrong.
MAX_C_RATE = 3.0


def choose_pylon_scale(
    cells_mv: Sequence[int], voltage_raw: int, current_raw: int, remaining_raw: int, full_raw: int
) -> PylonScale | None:
    """Pick the units that make one 0x42 record self-consistent (§1.10.1 caveat, §1.11 step 7, §5 item 10).

    * voltage: mV or 10 mV, whichever is nearer to the sum of the cell voltages;
    * capacity: mAh or 10 mAh, whichever gives a plausible full capacity (5..1000 Ah), the more typical one if both;
    * current: 10 mA for clones reporting 10 mAh (PACE-native units), or when 100 mA would mean more than 3 C.

    Returns None when the record cannot tell (absent pack, no capacity, remaining above full so SOC > 100 %).
    """
    cell_sum = sum(cells_mv)
    if cell_sum <= 0 or voltage_raw <= 0 or full_raw <= 0 or remaining_raw > full_raw * 1.05:
        return None
    voltage_mv = 10 if abs(voltage_raw * 10 - cell_sum) < abs(voltage_raw - cell_sum) else 1
    plausible = [unit for unit in (1, 10) if PLAUSIBLE_AH[0] <= full_raw * unit / 1000 <= PLAUSIBLE_AH[1]]
    if not plausible:
        return None
    capacity_mah = min(plausible, key=lambda unit: abs(math.log10(full_raw * unit / 1000 / TYPICAL_AH)))
    full_ah = full_raw * capacity_mah / 1000
    current_ma = 10 if capacity_mah == 10 or abs(current_raw) * 0.1 > MAX_C_RATE * full_ah else 100
    return PylonScale(voltage_mv=voltage_mv, current_ma=current_ma, capacity_mah=capacity_mah)


@dataclass(frozen=True, slots=True)
class _PylonRecord:
    """Wire integers of one Pylon 0x42 module record, before the units are known."""

    cells: tuple[int, ...]
    temperatures: tuple[int, ...]
    current: int
    voltage: int
    remaining: int
    user_defined: int
    full: int
    cycles: int

    def scale(self) -> PylonScale | None:
        return choose_pylon_scale(self.cells, self.voltage, self.current, self.remaining, self.full)


def _read_pylon_record(reader: Reader) -> _PylonRecord:
    cells = tuple(reader.s16() for _ in range(reader.count(MAX_CELLS, "cell")))
    temperatures = reader.u16s(reader.count(MAX_TEMPERATURES, "temperature"))
    current = reader.s16()
    voltage = reader.u16()
    remaining = reader.u16()
    user_defined = reader.u8()
    if user_defined not in (PYLON_UD_SMALL, PYLON_UD_LARGE):
        raise FrameError(f"Pylon user-defined count {user_defined}, expected 2 or 4")
    full = reader.u16()
    cycles = reader.u16()
    if user_defined == PYLON_UD_LARGE:
        remaining = reader.uint(3)
        full = reader.uint(3)
    return _PylonRecord(cells, temperatures, current, voltage, remaining, user_defined, full, cycles)


def _read_records[T](info: bytes, read: Callable[[Reader], T]) -> tuple[int, list[T], bytes]:
    """INFOFLAG, command/count byte, then records until the payload ends.

    Bytes after the last complete record that do not form another record are returned as the tail.
    """
    reader = Reader(info)
    reader.u8()  # INFOFLAG / DATA FLAG carries nothing we use
    command = reader.u8()
    records = [read(reader)]
    while reader.remaining:
        start = reader.pos
        try:
            records.append(read(reader))
        except FrameError:
            reader.pos = start
            return command, records, reader.rest()
    return command, records, b""


def _pylon_analog(record: _PylonRecord, address: int, scale: PylonScale, tail: bytes) -> PackAnalog:
    temperatures = tuple(_temperature_c(raw) for raw in record.temperatures)
    # T1 is the BMS board (where the MOSFETs sit) unless a 6th, dedicated MOSFET sensor exists (US3000B).
    mosfet = temperatures[5] if len(temperatures) > 5 else (temperatures[0] if temperatures else None)
    remaining_ah = record.remaining * scale.capacity_mah / 1000
    full_ah = record.full * scale.capacity_mah / 1000
    return PackAnalog(
        address=address,
        cell_voltages_mv=record.cells,
        temperatures_c=temperatures,
        cell_temperatures_c=temperatures[1:5],
        mosfet_temperature_c=mosfet,
        environment_temperature_c=None,
        current_a=record.current * scale.current_ma / 1000,
        voltage_v=record.voltage * scale.voltage_mv / 1000,
        remaining_ah=remaining_ah,
        full_ah=full_ah,
        design_ah=None,
        cycles=record.cycles,
        soc_pct=_derived_soc(remaining_ah, full_ah),
        soh_pct=None,
        marker=record.user_defined,
        tail=tail,
    )


def _parse_pylon_analog(info: bytes, adr: int) -> tuple[list[int], list[_PylonRecord], bytes]:
    command, records, tail = _read_records(info, _read_pylon_record)
    return _record_addresses(adr, command, len(records)), records, tail


def decode_pylon_analog_info(info: bytes, adr: int, scale: PylonScale | None = None) -> list[PackAnalog]:
    """Every module record of a Pylon 0x42 reply; `scale` None = judge each record by choose_pylon_scale."""
    addresses, records, tail = _parse_pylon_analog(info, adr)
    last = len(records) - 1
    return [
        _pylon_analog(record, address, scale or record.scale() or PYLON_GENUINE, tail if index == last else b"")
        for index, (address, record) in enumerate(zip(addresses, records, strict=True))
    ]


def encode_pylon_analog_info(
    packs: Sequence[PackAnalog], command: int, *, scale: PylonScale = PYLON_GENUINE, info_flag: int = 0x11
) -> bytes:
    """INFO of a Pylon 0x42 reply. `command` ALL_PACKS writes the module count, otherwise the echoed address.

    The 3-byte capacity form (user-defined 4) is used when a pack's marker asks for it or a capacity needs it.
    Only the last pack may carry a tail (a tail in the middle would shift every following record).
    """
    if not packs:
        raise FrameError("a 0x42 reply needs at least one pack")
    if any(pack.tail for pack in packs[:-1]):
        raise FrameError("only the last record of a reply can carry a tail")
    out = bytearray(_uint(info_flag, 1, "INFOFLAG") + _command_byte(packs, command))
    for pack in packs:
        out += _uint(len(pack.cell_voltages_mv), 1, "cell count")
        for mv in pack.cell_voltages_mv:
            out += _sint(mv, 2, "cell voltage")
        out += _uint(len(pack.temperatures_c), 1, "temperature count")
        for celsius in pack.temperatures_c:
            out += _temperature_raw(celsius)
        out += _sint(_scaled(pack.current_a, scale.current_ma / 1000, "current"), 2, "current")
        out += _uint(_scaled(pack.voltage_v, scale.voltage_mv / 1000, "voltage"), 2, "voltage")
        remaining = _scaled(pack.remaining_ah, scale.capacity_mah / 1000, "remaining capacity")
        full = _scaled(pack.full_ah, scale.capacity_mah / 1000, "full capacity")
        cycles = _uint(pack.cycles, 2, "cycles")
        if pack.marker == PYLON_UD_LARGE or max(remaining, full) >= _U16_UNUSED:
            out += _uint(_U16_UNUSED, 2, "") + bytes([PYLON_UD_LARGE]) + _uint(_U16_UNUSED, 2, "") + cycles
            out += _uint(remaining, 3, "remaining capacity") + _uint(full, 3, "full capacity")
        else:
            out += _uint(remaining, 2, "remaining capacity") + bytes([PYLON_UD_SMALL])
            out += _uint(full, 2, "full capacity") + cycles
        out += pack.tail
    return bytes(out)


# --------------------------------------------------------------------------------------------------------------
# Pylontech 0x44

_PYLON_STATUS1: _ConditionBits = (
    (7, Condition.PACK_UNDERVOLTAGE, True),
    (6, Condition.CHARGE_OVERTEMPERATURE, True),
    (5, Condition.DISCHARGE_OVERTEMPERATURE, True),
    (4, Condition.DISCHARGE_OVERCURRENT, True),
    (2, Condition.CHARGE_OVERCURRENT, True),
    (1, Condition.CELL_UNDERVOLTAGE, True),
    (0, Condition.PACK_OVERVOLTAGE, True),
)
#: Alarm value codes shared with PACE (00 normal, 01 below limit, 02 above limit, F0 other).
CODE_BELOW = 0x01
CODE_ABOVE = 0x02


@dataclass(frozen=True, slots=True)
class _PylonStatusRecord:
    cell_codes: tuple[int, ...]
    temperature_codes: tuple[int, ...]
    charge_current_code: int
    voltage_code: int
    discharge_current_code: int
    status: bytes  # Status 1..5
    raw: bytes


def _read_pylon_status_record(reader: Reader) -> _PylonStatusRecord:
    start = reader.pos
    cells = tuple(reader.take(reader.count(MAX_CELLS, "cell")))
    temperatures = tuple(reader.take(reader.count(MAX_TEMPERATURES, "temperature")))
    charge_current, voltage, discharge_current = reader.take(3)
    status = reader.take(5)
    # Some firmwares append one byte after Status 5 (I-TC7); swallow it when it is all that is left.
    if reader.remaining == 1:
        reader.take(1)
    end = reader.pos
    reader.pos = start
    raw = reader.take(end - start)
    return _PylonStatusRecord(cells, temperatures, charge_current, voltage, discharge_current, status, raw)


def _pylon_status(record: _PylonStatusRecord, address: int) -> PackStatus:
    status1, status2, status3, status4, status5 = record.status
    warnings: set[Condition] = set()
    protections: set[Condition] = set()
    _read_conditions(status1, _PYLON_STATUS1, warnings, protections)
    charging = bool(status3 & 0x80)
    for code in record.cell_codes:
        if code == CODE_BELOW:
            warnings.add(Condition.CELL_UNDERVOLTAGE)
        elif code == CODE_ABOVE:
            warnings.add(Condition.CELL_OVERVOLTAGE)
    # Temperature codes do not say charge or discharge limit: the one that applies is the current direction.
    for code in record.temperature_codes:
        if code == CODE_BELOW:
            warnings.add(Condition.CHARGE_UNDERTEMPERATURE if charging else Condition.DISCHARGE_UNDERTEMPERATURE)
        elif code == CODE_ABOVE:
            warnings.add(Condition.CHARGE_OVERTEMPERATURE if charging else Condition.DISCHARGE_OVERTEMPERATURE)
    if record.charge_current_code == CODE_ABOVE:
        warnings.add(Condition.CHARGE_OVERCURRENT)
    if record.discharge_current_code == CODE_ABOVE:
        warnings.add(Condition.DISCHARGE_OVERCURRENT)
    if record.voltage_code == CODE_BELOW:
        warnings.add(Condition.PACK_UNDERVOLTAGE)
    elif record.voltage_code == CODE_ABOVE:
        warnings.add(Condition.PACK_OVERVOLTAGE)
    return PackStatus(
        address=address,
        protections=frozenset(protections),
        warnings=frozenset(warnings),
        faults=frozenset({Fault.CELL} if status4 or status5 else ()),
        charge_mos_on=bool(status2 & 0x02),
        discharge_mos_on=bool(status2 & 0x04),
        charging=charging,
        discharging=bool(status3 & 0x40),
        heater_on=bool(status3 & 0x20),
        fully_charged=bool(status3 & 0x08),
        buzzer_enabled=bool(status3 & 0x01),
        cell_alarm_codes=record.cell_codes,
        temperature_alarm_codes=record.temperature_codes,
        charge_current_alarm_code=record.charge_current_code,
        pack_voltage_alarm_code=record.voltage_code,
        discharge_current_alarm_code=record.discharge_current_code,
        raw=record.raw,
    )


def decode_pylon_status_info(info: bytes, adr: int) -> list[PackStatus]:
    """Every module record of a Pylon 0x44 reply (Status 1..5 per module, §1.10.1)."""
    command, records, tail = _read_records(info, _read_pylon_status_record)
    if tail:
        raise FrameError(f"{len(tail)} unexpected byte(s) after the last 0x44 record")
    addresses = _record_addresses(adr, command, len(records))
    return [_pylon_status(record, address) for address, record in zip(addresses, records, strict=True)]


def _code(code: int | None, warnings: Collection[Condition], below: Condition | None, above: Condition) -> int:
    """The value code as given, else the one the pack-level warnings imply."""
    if code is not None:
        return code
    if below is not None and below in warnings:
        return CODE_BELOW
    return CODE_ABOVE if above in warnings else 0


def encode_pylon_status_info(packs: Sequence[PackStatus], command: int, *, info_flag: int = 0x11) -> bytes:
    """INFO of a Pylon 0x44 reply. Alarm codes come from the *_alarm_code(s) fields (for the pack-level codes,
    from the warnings when the field is None); Fault.CELL sets the cell-1 bit of Status 4 (PackStatus does not
    say which cell)."""
    if not packs:
        raise FrameError("a 0x44 reply needs at least one pack")
    out = bytearray(_uint(info_flag, 1, "INFOFLAG") + _command_byte(packs, command))
    for status in packs:
        out += _uint(len(status.cell_alarm_codes), 1, "cell count") + _codes(status.cell_alarm_codes)
        out += _uint(len(status.temperature_alarm_codes), 1, "temperature count")
        out += _codes(status.temperature_alarm_codes)
        warnings = status.warnings
        out += _uint(_code(status.charge_current_alarm_code, warnings, None, Condition.CHARGE_OVERCURRENT), 1, "")
        out += _uint(
            _code(status.pack_voltage_alarm_code, warnings, Condition.PACK_UNDERVOLTAGE, Condition.PACK_OVERVOLTAGE),
            1,
            "",
        )
        out += _uint(_code(status.discharge_current_alarm_code, warnings, None, Condition.DISCHARGE_OVERCURRENT), 1, "")
        out.append(_write_conditions(_PYLON_STATUS1, status.warnings, status.protections))
        out.append(0x02 * bool(status.charge_mos_on) | 0x04 * bool(status.discharge_mos_on))
        out.append(
            0x80 * bool(status.charging)
            | 0x40 * bool(status.discharging)
            | 0x20 * bool(status.heater_on)
            | 0x08 * bool(status.fully_charged)
            | 0x01 * bool(status.buzzer_enabled)
        )
        out += bytes([0x01 if Fault.CELL in status.faults else 0, 0])
    return bytes(out)


def _codes(codes: Sequence[int]) -> bytes:
    return b"".join(_uint(code, 1, "alarm code") for code in codes)


# --------------------------------------------------------------------------------------------------------------
# Pylontech identity and parameter commands


@dataclass(frozen=True, slots=True)
class ManufacturerInfo:
    """0x51 of Pylon and Seplos: device name (10 ASCII), software version (2 bytes), manufacturer (20 ASCII)."""

    device_name: str
    software_version: tuple[int, int]
    manufacturer: str

    @property
    def firmware(self) -> str:
        return f"{self.software_version[0]}.{self.software_version[1]}"


def decode_manufacturer_info(info: bytes) -> ManufacturerInfo:
    reader = Reader(info)
    name = _ascii(reader.take(10))
    major, minor = reader.take(2)
    return ManufacturerInfo(device_name=name, software_version=(major, minor), manufacturer=_ascii(reader.take(20)))


def encode_manufacturer_info(value: ManufacturerInfo) -> bytes:
    return (
        _ascii_field(value.device_name, 10, "device name")
        + b"".join(_uint(part, 1, "software version") for part in value.software_version)
        + _ascii_field(value.manufacturer, 20, "manufacturer")
    )


@dataclass(frozen=True, slots=True)
class PylonProtocolVersion:
    """0x4F: the reply's VER field is the version (0x20 → 2.0)."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


def decode_pylon_protocol_version(frame: Frame) -> PylonProtocolVersion:
    return PylonProtocolVersion(major=frame.ver >> 4, minor=frame.ver & 0x0F)


@dataclass(frozen=True, slots=True, kw_only=True)
class PylonSystemParameters:
    """0x47 limits. Voltages in V (wire mV), temperatures in °C, currents in A (wire 100 mA)."""

    cell_high_voltage_v: float
    cell_low_voltage_v: float
    cell_undervoltage_v: float
    charge_high_temperature_c: float
    charge_low_temperature_c: float
    charge_current_limit_a: float
    module_high_voltage_v: float
    module_low_voltage_v: float
    module_undervoltage_v: float
    discharge_high_temperature_c: float
    discharge_low_temperature_c: float
    discharge_current_limit_a: float


# Field kinds of 0x47 in wire order. The document says 12 s16 fields, but module voltages such as 54000 mV only fit
# unsigned, so voltages are read as u16 and only currents are signed.
_VOLT, _TEMP, _AMP = "v", "t", "a"
_SYSTEM_PARAMETER_KINDS = (_VOLT, _VOLT, _VOLT, _TEMP, _TEMP, _AMP, _VOLT, _VOLT, _VOLT, _TEMP, _TEMP, _AMP)
_SYSTEM_PARAMETER_NAMES = tuple(PylonSystemParameters.__dataclass_fields__)


def _read_quantity(reader: Reader, kind: str) -> float:
    if kind == _VOLT:
        return reader.u16() / 1000
    if kind == _TEMP:
        return _temperature_c(reader.u16())
    return reader.s16() / 10


def _write_quantity(value: float, kind: str, what: str) -> bytes:
    if kind == _VOLT:
        return _uint(_scaled(value, 0.001, what), 2, what)
    if kind == _TEMP:
        return _temperature_raw(value)
    return _sint(_scaled(value, 0.1, what), 2, what)


def decode_pylon_system_parameters(info: bytes) -> PylonSystemParameters:
    reader = Reader(info)
    reader.u8()  # INFOFLAG
    values = {
        name: _read_quantity(reader, kind)
        for name, kind in zip(_SYSTEM_PARAMETER_NAMES, _SYSTEM_PARAMETER_KINDS, strict=True)
    }
    return PylonSystemParameters(**values)


def encode_pylon_system_parameters(value: PylonSystemParameters, *, info_flag: int = 0x11) -> bytes:
    return _uint(info_flag, 1, "INFOFLAG") + b"".join(
        _write_quantity(getattr(value, name), kind, name)
        for name, kind in zip(_SYSTEM_PARAMETER_NAMES, _SYSTEM_PARAMETER_KINDS, strict=True)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PylonChargeManagement:
    """0x92: the limits the module asks the inverter for (discharge current is negative on the wire)."""

    address: int
    charge_voltage_limit_v: float
    discharge_voltage_limit_v: float
    charge_current_limit_a: float
    discharge_current_limit_a: float
    charge_enabled: bool
    discharge_enabled: bool
    force_charge_1: bool
    force_charge_2: bool
    full_charge_request: bool


def decode_pylon_charge_management(info: bytes) -> PylonChargeManagement:
    reader = Reader(info)
    address = reader.u8()
    charge_v, discharge_v = reader.u16() / 1000, reader.u16() / 1000
    charge_a, discharge_a = reader.s16() / 10, reader.s16() / 10
    flags = reader.u8()
    return PylonChargeManagement(
        address=address,
        charge_voltage_limit_v=charge_v,
        discharge_voltage_limit_v=discharge_v,
        charge_current_limit_a=charge_a,
        discharge_current_limit_a=discharge_a,
        charge_enabled=bool(flags & 0x80),
        discharge_enabled=bool(flags & 0x40),
        force_charge_1=bool(flags & 0x20),
        force_charge_2=bool(flags & 0x10),
        full_charge_request=bool(flags & 0x08),
    )


def encode_pylon_charge_management(value: PylonChargeManagement) -> bytes:
    flags = (
        0x80 * value.charge_enabled
        | 0x40 * value.discharge_enabled
        | 0x20 * value.force_charge_1
        | 0x10 * value.force_charge_2
        | 0x08 * value.full_charge_request
    )
    return (
        _uint(value.address, 1, "address")
        + _write_quantity(value.charge_voltage_limit_v, _VOLT, "charge voltage limit")
        + _write_quantity(value.discharge_voltage_limit_v, _VOLT, "discharge voltage limit")
        + _write_quantity(value.charge_current_limit_a, _AMP, "charge current limit")
        + _write_quantity(value.discharge_current_limit_a, _AMP, "discharge current limit")
        + bytes([flags])
    )


@dataclass(frozen=True, slots=True)
class PylonSerialNumber:
    """0x93: module serial number (16 ASCII)."""

    address: int
    serial: str


def decode_pylon_serial_number(info: bytes) -> PylonSerialNumber:
    reader = Reader(info)
    return PylonSerialNumber(address=reader.u8(), serial=_ascii(reader.take(16)))


def encode_pylon_serial_number(value: PylonSerialNumber) -> bytes:
    return _uint(value.address, 1, "address") + _ascii_field(value.serial, 16, "serial")


@dataclass(frozen=True, slots=True)
class PylonSoftwareVersion:
    """0x96: manufacturer version (2 bytes) and main-line version (3 bytes)."""

    address: int
    manufacturer_version: tuple[int, int]
    mainline_version: tuple[int, int, int]

    @property
    def mainline(self) -> str:
        return ".".join(str(part) for part in self.mainline_version)


def decode_pylon_software_version(info: bytes) -> PylonSoftwareVersion:
    reader = Reader(info)
    address = reader.u8()
    m1, m2 = reader.take(2)
    v1, v2, v3 = reader.take(3)
    return PylonSoftwareVersion(address=address, manufacturer_version=(m1, m2), mainline_version=(v1, v2, v3))


def encode_pylon_software_version(value: PylonSoftwareVersion) -> bytes:
    parts = (value.address, *value.manufacturer_version, *value.mainline_version)
    return b"".join(_uint(part, 1, "software version") for part in parts)


# --------------------------------------------------------------------------------------------------------------
# Seplos V2


def _six_sensor_layout(temperatures: tuple[float, ...]) -> tuple[tuple[float, ...], float | None, float | None]:
    """Seplos order: cell sensors, then environment, then power (MOSFET) as the last two (§1.10.2)."""
    if len(temperatures) < 3:
        return temperatures, None, None
    return temperatures[:-2], temperatures[-2], temperatures[-1]


def decode_seplos_analog_info(info: bytes, adr: int) -> PackAnalog:
    """Seplos 0x42 (§1.10.2). The pack address is the echoed COMMAND GROUP; `adr` is unused (same on RS485)."""
    del adr
    reader = Reader(info)
    reader.u8()  # DATA FLAG
    address = reader.u8()
    cells = reader.u16s(reader.count(MAX_CELLS, "cell"))
    temperatures = tuple(_temperature_c(raw) for raw in reader.u16s(reader.count(MAX_TEMPERATURES, "temperature")))
    current = reader.s16()
    voltage = reader.u16()
    remaining = reader.u16()
    user_defined = reader.u8()
    if user_defined < 5:
        raise FrameError(f"Seplos user-defined count {user_defined}, need at least 5")
    full, soc, rated, cycles, soh = reader.u16s(5)
    extra: dict[str, float] = {}
    if user_defined >= 6 and reader.remaining >= 2:
        extra["port_voltage_v"] = reader.u16() / 100
    cell_temps, environment, mosfet = _six_sensor_layout(temperatures)
    return PackAnalog(
        address=address,
        cell_voltages_mv=cells,
        temperatures_c=temperatures,
        cell_temperatures_c=cell_temps,
        mosfet_temperature_c=mosfet,
        environment_temperature_c=environment,
        current_a=current / 100,
        voltage_v=voltage / 100,
        remaining_ah=remaining / 100,
        full_ah=full / 100,
        design_ah=rated / 100,
        cycles=cycles,
        soc_pct=soc / 10,
        soh_pct=soh / 10,
        soc_reported=True,
        marker=user_defined,
        tail=reader.rest(),
        extra=extra,
    )


def encode_seplos_analog_info(packs: Sequence[PackAnalog], command: int, *, data_flag: int = 0x00) -> bytes:
    """INFO of a Seplos 0x42 reply (one pack). P is the pack's marker (default 10 = port voltage + 4 reserved
    words, which the caller supplies as an 8-byte tail); the port voltage comes from extra["port_voltage_v"]."""
    _single(packs, "Seplos")
    pack = packs[0]
    user_defined = SEPLOS_UD if pack.marker is None else pack.marker
    out = bytearray(_uint(data_flag, 1, "DATA FLAG") + _uint(command, 1, "command"))
    out += _uint(len(pack.cell_voltages_mv), 1, "cell count")
    out += b"".join(_uint(mv, 2, "cell voltage") for mv in pack.cell_voltages_mv)
    out += _uint(len(pack.temperatures_c), 1, "temperature count")
    out += b"".join(_temperature_raw(celsius) for celsius in pack.temperatures_c)
    out += _sint(_scaled(pack.current_a, 0.01, "current"), 2, "current")
    out += _uint(_scaled(pack.voltage_v, 0.01, "voltage"), 2, "voltage")
    out += _uint(_scaled(pack.remaining_ah, 0.01, "remaining"), 2, "remaining capacity")
    out += _uint(user_defined, 1, "user-defined count")
    out += _uint(_scaled(pack.full_ah, 0.01, "full"), 2, "full capacity")
    out += _uint(_scaled(pack.soc_pct, 0.1, "SOC"), 2, "SOC")
    out += _uint(_scaled(pack.design_ah or 0.0, 0.01, "rated"), 2, "rated capacity")
    out += _uint(pack.cycles, 2, "cycles")
    out += _uint(_scaled(pack.soh_pct or 0.0, 0.1, "SOH"), 2, "SOH")
    if "port_voltage_v" in pack.extra:
        out += _uint(_scaled(pack.extra["port_voltage_v"], 0.01, "port voltage"), 2, "port voltage")
    return bytes(out + pack.tail)


_SEPLOS_EVENT1: _FaultBits = (
    (0, Fault.VOLTAGE_SENSOR),
    (1, Fault.TEMPERATURE_SENSOR),
    (2, Fault.CURRENT_SENSOR),
    (3, Fault.POWER_SWITCH),
    (4, Fault.CELL),
    (5, Fault.CHARGE_MOSFET),
    (6, Fault.DISCHARGE_MOSFET),
    (7, Fault.CURRENT_LIMITER),
)
#: Voltage event layout shared by Seplos alarm event 2 and the EG4 voltage event.
_VOLTAGE_EVENT: _ConditionBits = (
    (0, Condition.CELL_OVERVOLTAGE, False),
    (1, Condition.CELL_OVERVOLTAGE, True),
    (2, Condition.CELL_UNDERVOLTAGE, False),
    (3, Condition.CELL_UNDERVOLTAGE, True),
    (4, Condition.PACK_OVERVOLTAGE, False),
    (5, Condition.PACK_OVERVOLTAGE, True),
    (6, Condition.PACK_UNDERVOLTAGE, False),
    (7, Condition.PACK_UNDERVOLTAGE, True),
)
#: Seplos alarm event 3 and 4 as one u16 (event 4 in the high byte); the low 12 bits equal the EG4 temperature event.
_TEMPERATURE_EVENT: _ConditionBits = (
    (0, Condition.CHARGE_OVERTEMPERATURE, False),
    (1, Condition.CHARGE_OVERTEMPERATURE, True),
    (2, Condition.CHARGE_UNDERTEMPERATURE, False),
    (3, Condition.CHARGE_UNDERTEMPERATURE, True),
    (4, Condition.DISCHARGE_OVERTEMPERATURE, False),
    (5, Condition.DISCHARGE_OVERTEMPERATURE, True),
    (6, Condition.DISCHARGE_UNDERTEMPERATURE, False),
    (7, Condition.DISCHARGE_UNDERTEMPERATURE, True),
    (8, Condition.ENVIRONMENT_OVERTEMPERATURE, False),
    (9, Condition.ENVIRONMENT_OVERTEMPERATURE, True),
    (10, Condition.ENVIRONMENT_UNDERTEMPERATURE, False),
    (11, Condition.ENVIRONMENT_UNDERTEMPERATURE, True),
)
# Seplos V2.0 doc: event 4 bit 4 = power (MOS) over-temperature protection, bit 5 = high-temperature alarm.
_SEPLOS_TEMPERATURE_EVENT: _ConditionBits = (
    *_TEMPERATURE_EVENT,
    (12, Condition.MOSFET_OVERTEMPERATURE, True),
    (13, Condition.MOSFET_OVERTEMPERATURE, False),
)
_EG4_TEMPERATURE_EVENT: _ConditionBits = (
    *_TEMPERATURE_EVENT,
    (12, Condition.MOSFET_OVERTEMPERATURE, True),
    (13, Condition.FIRE, False),
)
#: Current event layout shared by Seplos alarm event 5 and the EG4 current event; lock-outs map to their protection.
_CURRENT_EVENT: _ConditionBits = (
    (0, Condition.CHARGE_OVERCURRENT, False),
    (1, Condition.CHARGE_OVERCURRENT, True),
    (2, Condition.DISCHARGE_OVERCURRENT, False),
    (3, Condition.DISCHARGE_OVERCURRENT, True),
    (4, Condition.DISCHARGE_OVERCURRENT_2, True),
    (5, Condition.SHORT_CIRCUIT, True),
    (6, Condition.DISCHARGE_OVERCURRENT_2, True),
    (7, Condition.SHORT_CIRCUIT, True),
)
_SEPLOS_EVENT6: _ConditionBits = (
    (0, Condition.CHARGER_OVERVOLTAGE, True),
    (2, Condition.LOW_SOC, False),
    (3, Condition.LOW_SOC, True),
)
_SEPLOS_EVENT8: _FaultBits = ((0, Fault.EEPROM), (1, Fault.CLOCK))


@dataclass(frozen=True, slots=True)
class _CodeBlock:
    """Address, cell/temperature value codes and the pack-level codes that open every 0x44 record."""

    address: int
    cell_codes: tuple[int, ...]
    temperature_codes: tuple[int, ...]


def _read_code_block(reader: Reader, extra_temperatures: int = 0) -> _CodeBlock:
    reader.u8()  # DATA FLAG
    address = reader.u8()
    cells = tuple(reader.take(reader.count(MAX_CELLS, "cell")))
    temperatures = tuple(reader.take(reader.count(MAX_TEMPERATURES, "temperature") + extra_temperatures))
    return _CodeBlock(address, cells, temperatures)


def _write_code_block(status: PackStatus, command: int, data_flag: int, extra_temperatures: int = 0) -> bytes:
    temperature_count = len(status.temperature_alarm_codes) - extra_temperatures
    if temperature_count < 0:
        raise FrameError(f"need at least {extra_temperatures} temperature alarm codes")
    return (
        _uint(data_flag, 1, "DATA FLAG")
        + _uint(command, 1, "command")
        + _uint(len(status.cell_alarm_codes), 1, "cell count")
        + _codes(status.cell_alarm_codes)
        + _uint(temperature_count, 1, "temperature count")
        + _codes(status.temperature_alarm_codes)
    )


def decode_seplos_status_info(info: bytes, adr: int) -> PackStatus:
    """Seplos 0x44 with its 20 custom bytes (§1.10.2); conditions come from the alarm events."""
    del adr
    reader = Reader(info)
    block = _read_code_block(reader)
    reader.take(2)  # current and total-voltage value codes; the alarm events carry the same, split by level
    custom = reader.u8()
    if custom < 14:
        raise FrameError(f"Seplos custom alarm count {custom}, need at least 14")
    events = reader.take(custom)
    warnings: set[Condition] = set()
    protections: set[Condition] = set()
    faults: set[Fault] = set()
    _read_faults(events[0], _SEPLOS_EVENT1, faults)
    _read_conditions(events[1], _VOLTAGE_EVENT, warnings, protections)
    _read_conditions(events[2] | events[3] << 8, _SEPLOS_TEMPERATURE_EVENT, warnings, protections)
    _read_conditions(events[4], _CURRENT_EVENT, warnings, protections)
    _read_conditions(events[5], _SEPLOS_EVENT6, warnings, protections)
    switches, balance1, balance2, system = events[6:10]
    if events[10] or events[11]:
        faults.add(Fault.SAMPLING)  # disconnection state = open cell sense wire
    _read_faults(events[13], _SEPLOS_EVENT8, faults)
    return PackStatus(
        address=block.address,
        protections=frozenset(protections),
        warnings=frozenset(warnings),
        faults=frozenset(faults),
        discharge_mos_on=bool(switches & 0x01),
        charge_mos_on=bool(switches & 0x02),
        limiter_enabled=bool(switches & 0x04),
        heater_on=bool(switches & 0x08),
        discharging=bool(system & 0x01),
        charging=bool(system & 0x02),
        fully_charged=bool(system & 0x04),  # floating charge
        balancing_cells=_bits(balance1 | balance2 << 8, 16),
        cell_alarm_codes=block.cell_codes,
        temperature_alarm_codes=block.temperature_codes,
        raw=info,
    )


def encode_seplos_status_info(packs: Sequence[PackStatus], command: int, *, data_flag: int = 0x00) -> bytes:
    """INFO of a Seplos 0x44 reply (one pack, 20 custom bytes). Fault.SAMPLING sets the cell-1 open-wire bit;
    faults and conditions Seplos cannot report are left out."""
    _single(packs, "Seplos")
    status = packs[0]
    temperature_event = _write_conditions(_SEPLOS_TEMPERATURE_EVENT, status.warnings, status.protections)
    balance = _mask(status.balancing_cells, 16, "balancing cell")
    events = bytearray(SEPLOS_STATUS_UD)
    events[0] = _write_faults(_SEPLOS_EVENT1, status.faults)
    events[1] = _write_conditions(_VOLTAGE_EVENT, status.warnings, status.protections)
    events[2], events[3] = temperature_event & 0xFF, temperature_event >> 8
    events[4] = _write_conditions(_CURRENT_EVENT, status.warnings, status.protections)
    events[5] = _write_conditions(_SEPLOS_EVENT6, status.warnings, status.protections)
    events[6] = (
        0x01 * bool(status.discharge_mos_on)
        | 0x02 * bool(status.charge_mos_on)
        | 0x04 * bool(status.limiter_enabled)
        | 0x08 * bool(status.heater_on)
    )
    events[7], events[8] = balance & 0xFF, balance >> 8
    events[9] = 0x01 * bool(status.discharging) | 0x02 * bool(status.charging) | 0x04 * bool(status.fully_charged)
    events[10] = 0x01 if Fault.SAMPLING in status.faults else 0
    events[13] = _write_faults(_SEPLOS_EVENT8, status.faults)
    return _write_code_block(status, command, data_flag) + bytes([0, 0, SEPLOS_STATUS_UD]) + bytes(events)


# --------------------------------------------------------------------------------------------------------------
# EG4 LifePower4

#: EG4 cumulative counters (PackAnalog.extra keys) in wire order: (key, bytes, unit of one LSB).
EG4_COUNTERS: tuple[tuple[str, int, float], ...] = (
    ("cumulative_charge_ah", 4, 0.01),
    ("cumulative_discharge_ah", 4, 0.01),
    ("cumulative_charge_kwh", 4, 0.001),
    ("cumulative_discharge_kwh", 4, 0.001),
    ("cumulative_charge_hours", 4, 1),
    ("cumulative_discharge_hours", 4, 1),
    ("charge_count", 2, 1),
    ("discharge_count", 2, 1),
)


def _counter_value(raw: int, unit: float) -> float:
    # Divide by an integer power of ten rather than multiply by 0.01 so that 21 → 0.21 exactly as printed.
    return raw / round(1 / unit) if unit < 1 else raw


def decode_eg4_analog_info(info: bytes, adr: int) -> PackAnalog:
    """EG4 0x42 (§1.10.3): N + 2 temperatures, 10 mV / 10 mA / 10 mAh, UD 0x0F, SOC/SOH in %, counters in extra.

    The record's max/min cell voltage and temperature fields repeat what the cells and sensors say and are not
    kept (PackAnalog.cells has them). The pack address is the ADR the reply came from.
    """
    reader = Reader(info)
    reader.u8()  # DATA_FLAG
    reader.u8()  # PACK group
    cells = reader.u16s(reader.count(MAX_CELLS, "cell"))
    cell_sensors = reader.count(MAX_TEMPERATURES, "temperature")
    temperatures = tuple(_temperature_c(raw) for raw in reader.u16s(cell_sensors + 2))
    current = reader.s16()
    voltage, remaining, full, cycles = reader.u16s(4)
    user_defined = reader.u8()
    if user_defined != EG4_UD:
        raise FrameError(f"EG4 user-defined count {user_defined}, expected {EG4_UD}")
    soc, soh = reader.u16s(2)
    reader.take(10)  # max/min/delta cell mV, max/min cell temperature
    extra = {key: _counter_value(reader.uint(size), unit) for key, size, unit in EG4_COUNTERS}
    return PackAnalog(
        address=adr,
        cell_voltages_mv=cells,
        temperatures_c=temperatures,
        cell_temperatures_c=temperatures[:cell_sensors],
        mosfet_temperature_c=temperatures[cell_sensors + 1],
        environment_temperature_c=temperatures[cell_sensors],
        current_a=current / 100,
        voltage_v=voltage / 100,
        remaining_ah=remaining / 100,
        full_ah=full / 100,
        design_ah=None,
        cycles=cycles,
        soc_pct=float(soc),
        soh_pct=float(soh),
        soc_reported=True,
        marker=user_defined,
        tail=reader.rest(),
        extra=extra,
    )


def encode_eg4_analog_info(packs: Sequence[PackAnalog], command: int, *, data_flag: int = 0x01) -> bytes:
    """INFO of an EG4 0x42 reply (one pack). The last two temperatures are environment and MOSFET; the
    max/min fields are computed from the cells and cell sensors; missing counters are sent as 0."""
    _single(packs, "EG4")
    pack = packs[0]
    if len(pack.temperatures_c) < 2:
        raise FrameError("EG4 needs the environment and MOSFET temperatures")
    cell_sensors = pack.temperatures_c[:-2] or pack.temperatures_c
    cells = pack.cell_voltages_mv or (0,)
    out = bytearray(_uint(data_flag, 1, "DATA_FLAG") + _uint(command, 1, "pack group"))
    out += _uint(len(pack.cell_voltages_mv), 1, "cell count")
    out += b"".join(_uint(mv, 2, "cell voltage") for mv in pack.cell_voltages_mv)
    out += _uint(len(pack.temperatures_c) - 2, 1, "temperature count")
    out += b"".join(_temperature_raw(celsius) for celsius in pack.temperatures_c)
    out += _sint(_scaled(pack.current_a, 0.01, "current"), 2, "current")
    out += _uint(_scaled(pack.voltage_v, 0.01, "voltage"), 2, "voltage")
    out += _uint(_scaled(pack.remaining_ah, 0.01, "remaining"), 2, "remaining capacity")
    out += _uint(_scaled(pack.full_ah, 0.01, "full"), 2, "full capacity")
    out += _uint(pack.cycles, 2, "cycles") + bytes([EG4_UD])
    out += _uint(_scaled(pack.soc_pct, 1, "SOC"), 2, "SOC")
    out += _uint(_scaled(pack.soh_pct or 0.0, 1, "SOH"), 2, "SOH")
    out += _uint(max(cells), 2, "max cell") + _uint(min(cells), 2, "min cell")
    out += _uint(max(cells) - min(cells), 2, "cell delta")
    out += _temperature_raw(max(cell_sensors)) + _temperature_raw(min(cell_sensors))
    for key, size, unit in EG4_COUNTERS:
        out += _uint(_scaled(pack.extra.get(key, 0.0), unit, key), size, key)
    return bytes(out + pack.tail)


_EG4_BALANCE_EVENT_FAULTS: _FaultBits = ((5, Fault.CHARGE_MOSFET), (6, Fault.DISCHARGE_MOSFET))
_EG4_BALANCE_EVENT: _ConditionBits = ((4, Condition.CELL_IMBALANCE, False),)
_EG4_CAPACITY_EVENT: _ConditionBits = ((0, Condition.LOW_SOC, False),)


def decode_eg4_status_info(info: bytes, adr: int) -> PackStatus:
    """EG4 0x44 (§1.10.3): N + 2 temperature codes, UD 0x09, then the event bytes."""
    reader = Reader(info)
    block = _read_code_block(reader, extra_temperatures=2)
    reader.take(2)  # pack current and pack voltage value codes; the events carry the same, split by level
    user_defined = reader.u8()
    if user_defined != EG4_STATUS_UD:
        raise FrameError(f"EG4 status user-defined count {user_defined}, expected {EG4_STATUS_UD}")
    balance_event, voltage_event = reader.take(2)
    temperature_event = reader.u16()
    current_event, capacity_event, fets, system = reader.take(4)
    balancing = reader.uint(4)
    warnings: set[Condition] = set()
    protections: set[Condition] = set()
    faults: set[Fault] = set()
    _read_faults(balance_event, _EG4_BALANCE_EVENT_FAULTS, faults)
    _read_conditions(balance_event, _EG4_BALANCE_EVENT, warnings, protections)
    _read_conditions(voltage_event, _VOLTAGE_EVENT, warnings, protections)
    _read_conditions(temperature_event, _EG4_TEMPERATURE_EVENT, warnings, protections)
    _read_conditions(current_event, _CURRENT_EVENT, warnings, protections)
    _read_conditions(capacity_event, _EG4_CAPACITY_EVENT, warnings, protections)
    return PackStatus(
        address=adr,
        protections=frozenset(protections),
        warnings=frozenset(warnings),
        faults=frozenset(faults),
        discharge_mos_on=bool(fets & 0x01),
        charge_mos_on=bool(fets & 0x02),
        limiter_enabled=bool(fets & 0x04),
        heater_on=bool(fets & 0x08),
        discharging=bool(system & 0x01),
        charging=bool(system & 0x02),
        balancing_cells=_bits(balancing, 32),
        cell_alarm_codes=block.cell_codes,
        temperature_alarm_codes=block.temperature_codes,
        raw=info,
    )


def encode_eg4_status_info(packs: Sequence[PackStatus], command: int, *, data_flag: int = 0x01) -> bytes:
    """INFO of an EG4 0x44 reply (one pack). temperature_alarm_codes holds all N + 2 sensor codes."""
    _single(packs, "EG4")
    status = packs[0]
    balance_event = _write_faults(_EG4_BALANCE_EVENT_FAULTS, status.faults) | _write_conditions(
        _EG4_BALANCE_EVENT, status.warnings, status.protections
    )
    fets = (
        0x01 * bool(status.discharge_mos_on)
        | 0x02 * bool(status.charge_mos_on)
        | 0x04 * bool(status.limiter_enabled)
        | 0x08 * bool(status.heater_on)
    )
    return (
        _write_code_block(status, command, data_flag, extra_temperatures=2)
        + bytes([0, 0, EG4_STATUS_UD, balance_event])
        + bytes([_write_conditions(_VOLTAGE_EVENT, status.warnings, status.protections)])
        + _uint(_write_conditions(_EG4_TEMPERATURE_EVENT, status.warnings, status.protections), 2, "")
        + bytes([_write_conditions(_CURRENT_EVENT, status.warnings, status.protections)])
        + bytes([_write_conditions(_EG4_CAPACITY_EVENT, status.warnings, status.protections)])
        + bytes([fets, 0x01 * bool(status.discharging) | 0x02 * bool(status.charging)])
        + _uint(_mask(status.balancing_cells, 32, "balancing cell"), 4, "")
        + b"\x00"
    )


def decode_eg4_clock(info: bytes) -> datetime:
    """EG4 0x4D reply: 2-byte year, month, day, hour, minute, second (§1.10.3)."""
    reader = Reader(info)
    year = reader.u16()
    month, day, hour, minute, second = reader.take(5)
    try:
        return datetime(year, month, day, hour, minute, second)  # the BMS clock has no zone
    except ValueError as err:
        raise FrameError(f"invalid BMS date/time: {info.hex()}") from err


def encode_eg4_clock(when: datetime) -> bytes:
    """INFO of an EG4 0x4E write request and of a 0x4D reply."""
    return _uint(when.year, 2, "year") + bytes([when.month, when.day, when.hour, when.minute, when.second])


@dataclass(frozen=True, slots=True)
class Eg4HardwareInfo:
    """EG4 0x51: one space-padded ASCII block (layout not published; contains e.g. `QTHN`)."""

    text: str


def decode_eg4_hardware_info(info: bytes) -> Eg4HardwareInfo:
    return Eg4HardwareInfo(text=" ".join(info.replace(b"\x00", b" ").decode("ascii", errors="replace").split()))


def encode_eg4_hardware_info(value: Eg4HardwareInfo) -> bytes:
    return _ascii_field(value.text, len(value.text), "hardware info")


# --------------------------------------------------------------------------------------------------------------
# Variant detection (§1.11 step 5)


def classify_analog_reply(frame: Frame) -> ProtocolName | None:
    """Tell Pylon, Seplos and EG4 apart from a 0x42 reply, or None when it is none of them.

    The user-defined byte after *remaining capacity* (N temperatures) is 2/4 for Pylon and 10 for Seplos; EG4 has
    0x0F after *cycles* with N + 2 temperatures. The candidate must then decode cleanly with its own layout.
    """
    if frame.rtn != Rtn.OK:
        return None
    info = frame.info
    reader = Reader(info, 2)
    try:
        cells = reader.count(MAX_CELLS, "cell")
        reader.take(2 * cells)
        temperatures = reader.count(MAX_TEMPERATURES, "temperature")
    except FrameError:
        return None
    ud_after_remaining = reader.pos + 2 * temperatures + 6
    ud_after_cycles = reader.pos + 2 * (temperatures + 2) + 10
    candidates: list[tuple[ProtocolName, Callable[[bytes, int], object]]] = []
    if ud_after_remaining < len(info) and info[ud_after_remaining] in (PYLON_UD_SMALL, PYLON_UD_LARGE):
        candidates.append((ProtocolName.PYLON, decode_pylon_analog_info))
    if ud_after_remaining < len(info) and info[ud_after_remaining] == SEPLOS_UD:
        candidates.append((ProtocolName.SEPLOS, decode_seplos_analog_info))
    if ud_after_cycles < len(info) and info[ud_after_cycles] == EG4_UD:
        candidates.append((ProtocolName.EG4, decode_eg4_analog_info))
    for name, decode in candidates:
        try:
            decode(info, frame.adr)
        except FrameError:
            continue
        return name
    return None


# --------------------------------------------------------------------------------------------------------------
# Drivers


async def _optional[T](exchange: Exchange, request: bytes, decode: Callable[[Frame], T]) -> T | None:
    """The decoded reply, or None when the BMS refuses the command (RTN ≠ 0)."""
    try:
        reply = await exchange.exchange(request)
    except RtnError:
        return None
    return decode(reply)


def _info[T](decode: Callable[[bytes], T]) -> Callable[[Frame], T]:
    return lambda frame: decode(frame.info)


def _text_or_none(text: str | None) -> str | None:
    return text.strip() or None if text is not None else None


class PylonDriver(ProtocolDriver):
    """Pylontech RS485/RS232 (and Pylon-protocol clones, with the units chosen by choose_pylon_scale)."""

    name: ClassVar[ProtocolName] = ProtocolName.PYLON
    default_ver: ClassVar[int] = VER_20
    default_cid1: ClassVar[int] = CID1_LIFEPO4
    strategies: ClassVar[tuple[Strategy, ...]] = (Strategy.BUS, Strategy.BROADCAST)
    #: Pylon numbers the master 2 and the slaves 3… (§1.7.2).
    first_address: ClassVar[int] = 2

    def __init__(self, ver: int | None = None, cid1: int | None = None, scale: PylonScale | None = None) -> None:
        super().__init__(ver, cid1)
        #: The units in use: given by the user, or locked in by the first record that could be judged.
        self.scale: PylonScale | None = scale

    def analog_request(self, adr: int, pack: int) -> bytes:
        return self.request(adr, Cid2.ANALOG, bytes([pack]))

    def status_request(self, adr: int, pack: int) -> bytes:
        return self.request(adr, Cid2.STATUS, bytes([pack]))

    def decode_analog(self, frame: Frame, command: int | None = None) -> list[PackAnalog]:
        addresses, records, tail = _parse_pylon_analog(frame.info, frame.adr)
        if self.scale is None:
            self.scale = next((scale for record in records if (scale := record.scale()) is not None), None)
        scale = self.scale or PYLON_GENUINE
        last = len(records) - 1
        return [
            _pylon_analog(record, address, scale, tail if index == last else b"")
            for index, (address, record) in enumerate(zip(addresses, records, strict=True))
        ]

    def decode_status(self, frame: Frame, command: int | None = None) -> list[PackStatus]:
        return decode_pylon_status_info(frame.info, frame.adr)

    def protocol_version_request(self, adr: int) -> bytes:
        return self.request(adr, Cid2.PROTOCOL_VERSION)

    def manufacturer_info_request(self, adr: int) -> bytes:
        return self.request(adr, Cid2.MANUFACTURER_INFO)

    def system_parameters_request(self, adr: int) -> bytes:
        return self.request(adr, Cid2.SYSTEM_PARAMETERS)

    def charge_management_request(self, adr: int) -> bytes:
        return self.request(adr, Cid2.CHARGE_MANAGEMENT, bytes([adr]))

    def serial_number_request(self, adr: int) -> bytes:
        return self.request(adr, Cid2.SERIAL_NUMBER, bytes([adr]))

    def software_version_request(self, adr: int) -> bytes:
        return self.request(adr, Cid2.SOFTWARE_VERSION, bytes([adr]))

    async def read_identity(self, exchange: Exchange, adr: int) -> PackIdentity:
        """0x51 (model, manufacturer, firmware), 0x93 (module serial), 0x96 (main-line firmware, preferred)."""
        info = await _optional(exchange, self.manufacturer_info_request(adr), _info(decode_manufacturer_info))
        serial = await _optional(exchange, self.serial_number_request(adr), _info(decode_pylon_serial_number))
        version = await _optional(exchange, self.software_version_request(adr), _info(decode_pylon_software_version))
        firmware = version.mainline if version is not None else (info.firmware if info is not None else None)
        return PackIdentity(
            model=_text_or_none(info.device_name if info else None),
            firmware=firmware,
            manufacturer=_text_or_none(info.manufacturer.rstrip("-") if info else None),
            pack_serial=_text_or_none(serial.serial if serial else None),
        )


class SeplosDriver(ProtocolDriver):
    """Seplos V2 (EMU10xx/11xx, 1101-SPxx): every pack answers on the RS485 bus itself."""

    name: ClassVar[ProtocolName] = ProtocolName.SEPLOS
    default_ver: ClassVar[int] = VER_20
    default_cid1: ClassVar[int] = CID1_LIFEPO4
    strategies: ClassVar[tuple[Strategy, ...]] = (Strategy.BUS,)
    first_address: ClassVar[int] = 0

    def analog_request(self, adr: int, pack: int) -> bytes:
        return self.request(adr, Cid2.ANALOG, bytes([pack]))

    def status_request(self, adr: int, pack: int) -> bytes:
        return self.request(adr, Cid2.STATUS, bytes([pack]))

    def decode_analog(self, frame: Frame, command: int | None = None) -> list[PackAnalog]:
        return [decode_seplos_analog_info(frame.info, frame.adr)]

    def decode_status(self, frame: Frame, command: int | None = None) -> list[PackStatus]:
        return [decode_seplos_status_info(frame.info, frame.adr)]

    def manufacturer_info_request(self, adr: int) -> bytes:
        return self.request(adr, Cid2.MANUFACTURER_INFO)

    async def read_identity(self, exchange: Exchange, adr: int) -> PackIdentity:
        info = await _optional(exchange, self.manufacturer_info_request(adr), _info(decode_manufacturer_info))
        if info is None:
            return PackIdentity()
        return PackIdentity(
            model=_text_or_none(info.device_name), firmware=info.firmware, manufacturer=_text_or_none(info.manufacturer)
        )


class Eg4Driver(ProtocolDriver):
    """EG4 LifePower4 / Qualtech (CID1 0x4A): 0x42/0x44 requests carry no INFO, the ADR selects the pack."""

    name: ClassVar[ProtocolName] = ProtocolName.EG4
    default_ver: ClassVar[int] = VER_20
    default_cid1: ClassVar[int] = CID1_EG4
    strategies: ClassVar[tuple[Strategy, ...]] = (Strategy.BUS,)
    first_address: ClassVar[int] = 1

    def analog_request(self, adr: int, pack: int) -> bytes:
        del pack  # no INFO: on the bus the ADR is the pack
        return self.request(adr, Cid2.ANALOG)

    def status_request(self, adr: int, pack: int) -> bytes:
        del pack
        return self.request(adr, Cid2.STATUS)

    def decode_analog(self, frame: Frame, command: int | None = None) -> list[PackAnalog]:
        return [decode_eg4_analog_info(frame.info, frame.adr)]

    def decode_status(self, frame: Frame, command: int | None = None) -> list[PackStatus]:
        return [decode_eg4_status_info(frame.info, frame.adr)]

    def clock_read_request(self, adr: int) -> bytes:
        return self.request(adr, Cid2.CLOCK_READ)

    def clock_write_request(self, adr: int, when: datetime) -> bytes:
        return self.request(adr, Cid2.CLOCK_WRITE, encode_eg4_clock(when))

    def hardware_info_request(self, adr: int) -> bytes:
        return self.request(adr, Cid2.MANUFACTURER_INFO)

    async def read_identity(self, exchange: Exchange, adr: int) -> PackIdentity:
        info = await _optional(exchange, self.hardware_info_request(adr), _info(decode_eg4_hardware_info))
        return PackIdentity(model=_text_or_none(info.text if info else None))


__all__ = [
    "PYLON_GENUINE",
    "PYLON_PACE_CLONE",
    "Cid2",
    "Eg4Driver",
    "Eg4HardwareInfo",
    "ManufacturerInfo",
    "PylonChargeManagement",
    "PylonDriver",
    "PylonProtocolVersion",
    "PylonScale",
    "PylonSerialNumber",
    "PylonSoftwareVersion",
    "PylonSystemParameters",
    "SeplosDriver",
    "choose_pylon_scale",
    "classify_analog_reply",
    "decode_eg4_analog_info",
    "decode_eg4_clock",
    "decode_eg4_hardware_info",
    "decode_eg4_status_info",
    "decode_manufacturer_info",
    "decode_pylon_analog_info",
    "decode_pylon_charge_management",
    "decode_pylon_protocol_version",
    "decode_pylon_serial_number",
    "decode_pylon_software_version",
    "decode_pylon_status_info",
    "decode_pylon_system_parameters",
    "decode_seplos_analog_info",
    "decode_seplos_status_info",
    "encode_eg4_analog_info",
    "encode_eg4_clock",
    "encode_eg4_hardware_info",
    "encode_eg4_status_info",
    "encode_manufacturer_info",
    "encode_pylon_analog_info",
    "encode_pylon_charge_management",
    "encode_pylon_serial_number",
    "encode_pylon_software_version",
    "encode_pylon_status_info",
    "encode_pylon_system_parameters",
    "encode_seplos_analog_info",
    "encode_seplos_status_info",
]

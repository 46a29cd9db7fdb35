"""PACE Modbus-RTU ("PACE BMS Modbus Protocol for RS485" V1.3, 2017-06-27; docs/protocol.md §2.1).

The pack answers FC 0x03 (read holding registers) and 0x10 (write registers) at its DIP address, 9600 8N1 by
default. Register numbers below are the document's decimal ones. One read of registers 0-36 carries everything a
poll needs (analog values, the four flag words, balancing); 60-114 are the protection parameters (read/write),
150-179 the identity strings. The map has no MOSFET switch, no clock and no history.
"""

from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, ClassVar, get_type_hints

from .. import pace_params as pp
from ..driver import ProtocolName
from ..frame import FrameError
from ..models import Condition, Fault, PackAnalog, PackIdentity, PackStatus
from .base import ModbusDriver
from .codec import FunctionCode, ModbusExceptionError, ModbusExchange, ModbusRequest, registers

BAUDRATE = 9600
#: Registers 0-36: current … environment temperature.
STATUS_START = 0
STATUS_COUNT = 37
CELL_REGISTERS = range(15, 31)
CELL_TEMPERATURE_REGISTERS = range(31, 35)
MOSFET_TEMPERATURE_REGISTER = 35
ENVIRONMENT_TEMPERATURE_REGISTER = 36
#: 150-159 version information, 160-169 model (BMS) SN, 170-179 pack SN (added in V1.3): 20 ASCII each.
VERSION_START = 150
PACK_SN_START = 170
TEXT_REGISTERS = 10

#: Register 9 (warning flag), description-1 of the document.
WARNING_BITS: Mapping[int, Condition] = {
    0: Condition.CELL_OVERVOLTAGE,
    1: Condition.CELL_UNDERVOLTAGE,
    2: Condition.PACK_OVERVOLTAGE,
    3: Condition.PACK_UNDERVOLTAGE,
    4: Condition.CHARGE_OVERCURRENT,
    5: Condition.DISCHARGE_OVERCURRENT,
    8: Condition.CHARGE_OVERTEMPERATURE,
    9: Condition.DISCHARGE_OVERTEMPERATURE,
    10: Condition.CHARGE_UNDERTEMPERATURE,
    11: Condition.DISCHARGE_UNDERTEMPERATURE,
    12: Condition.ENVIRONMENT_OVERTEMPERATURE,
    13: Condition.ENVIRONMENT_UNDERTEMPERATURE,
    14: Condition.MOSFET_OVERTEMPERATURE,
    15: Condition.LOW_SOC,
}
#: Register 10 (protection flag), description-2. Note MOSFET/environment order differs from the warning word.
PROTECTION_BITS: Mapping[int, Condition] = {
    0: Condition.CELL_OVERVOLTAGE,
    1: Condition.CELL_UNDERVOLTAGE,
    2: Condition.PACK_OVERVOLTAGE,
    3: Condition.PACK_UNDERVOLTAGE,
    4: Condition.CHARGE_OVERCURRENT,
    5: Condition.DISCHARGE_OVERCURRENT,
    6: Condition.SHORT_CIRCUIT,
    7: Condition.CHARGER_OVERVOLTAGE,
    8: Condition.CHARGE_OVERTEMPERATURE,
    9: Condition.DISCHARGE_OVERTEMPERATURE,
    10: Condition.CHARGE_UNDERTEMPERATURE,
    11: Condition.DISCHARGE_UNDERTEMPERATURE,
    12: Condition.MOSFET_OVERTEMPERATURE,
    13: Condition.ENVIRONMENT_OVERTEMPERATURE,
    14: Condition.ENVIRONMENT_UNDERTEMPERATURE,
}
#: Register 11 low byte (fault flags), description-3.
FAULT_BITS: Mapping[int, Fault] = {
    0: Fault.CHARGE_MOSFET,
    1: Fault.DISCHARGE_MOSFET,
    2: Fault.TEMPERATURE_SENSOR,
    4: Fault.CELL,
    5: Fault.SAMPLING,
}
#: Register 11 high byte (status).
STATUS_CHARGING = 8
STATUS_DISCHARGING = 9
STATUS_CHARGE_MOS = 10
STATUS_DISCHARGE_MOS = 11
STATUS_LIMITER = 12
STATUS_CHARGER_REVERSED = 14
STATUS_HEATER = 15


def _bits[T](word: int, table: Mapping[int, T]) -> frozenset[T]:
    return frozenset(flag for bit, flag in table.items() if word >> bit & 1)


def _signed(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


def decode_status_block(values: Sequence[int], address: int) -> tuple[PackAnalog, PackStatus]:
    """Registers 0-36 of one pack → its analog values and status. FrameError unless exactly 37 registers."""
    if len(values) != STATUS_COUNT:
        raise FrameError(f"PACE Modbus block of {len(values)} registers, expected {STATUS_COUNT}")
    cells = [values[r] for r in CELL_REGISTERS]
    # The map always has 16 cell registers; a pack with fewer cells leaves the last ones at 0.
    while cells and cells[-1] == 0:
        cells.pop()
    cell_temps = tuple(_signed(values[r]) / 10 for r in CELL_TEMPERATURE_REGISTERS)
    mosfet = _signed(values[MOSFET_TEMPERATURE_REGISTER]) / 10
    environment = _signed(values[ENVIRONMENT_TEMPERATURE_REGISTER]) / 10
    analog = PackAnalog(
        address=address,
        cell_voltages_mv=tuple(cells),
        temperatures_c=(*cell_temps, mosfet, environment),
        cell_temperatures_c=cell_temps,
        mosfet_temperature_c=mosfet,
        environment_temperature_c=environment,
        current_a=_signed(values[0]) / 100,
        voltage_v=values[1] / 100,
        remaining_ah=values[4] / 100,
        full_ah=values[5] / 100,
        design_ah=values[6] / 100,
        cycles=values[7],
        soc_pct=float(values[2]),
        soh_pct=float(values[3]),
        soc_reported=True,
    )
    flags = values[11]
    status = PackStatus(
        address=address,
        warnings=_bits(values[9], WARNING_BITS),
        protections=_bits(values[10], PROTECTION_BITS),
        faults=_bits(flags, FAULT_BITS),
        charging=bool(flags >> STATUS_CHARGING & 1),
        discharging=bool(flags >> STATUS_DISCHARGING & 1),
        charge_mos_on=bool(flags >> STATUS_CHARGE_MOS & 1),
        discharge_mos_on=bool(flags >> STATUS_DISCHARGE_MOS & 1),
        heater_on=bool(flags >> STATUS_HEATER & 1),
        balancing_cells=tuple(n + 1 for n in range(16) if values[12] >> n & 1),
        raw=b"".join(v.to_bytes(2, "big") for v in values[9:13]),
    )
    return analog, status


def decode_text(values: Sequence[int]) -> str | None:
    """Two ASCII characters per register (high byte first); NUL/space padding stripped; None when empty."""
    data = b"".join(v.to_bytes(2, "big") for v in values)
    text = data.split(b"\x00", 1)[0].decode("ascii", errors="replace").strip()
    return text or None


def encode_text(text: str, count: int = TEXT_REGISTERS) -> list[int]:
    """`text` as `count` registers, NUL padded (simulator)."""
    data = text.encode("ascii")
    if len(data) > count * 2:
        raise ValueError(f"{text!r} longer than {count * 2} characters")
    data = data.ljust(count * 2, b"\x00")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


# -- protection parameters (registers 60-114)


@dataclass(frozen=True, slots=True)
class Field:
    """One parameter register: the group field it holds and the field's unit per register count."""

    name: str
    unit: float
    #: Registers the document types UINT8 (delays, SCP, SOC): 1-255 (SCP 1-20) fit; 0 or more do not.
    wire_max: int = 0xFFFF
    wire_min: int = 0
    signed: bool = False


@dataclass(frozen=True, slots=True)
class Span:
    """Consecutive parameter registers from `start`, written together with one FC 0x10."""

    start: int
    fields: tuple[Field, ...]


_MV = 0.001
_DS = 0.1
_TEMP = 0.1


def _thresholds(start: int) -> tuple[Span, ...]:
    """alarm · protect · release (mV) · delay (0.1 s, 1-255): pack/cell over/under voltage."""
    return (
        Span(
            start,
            (
                Field("alarm_v", _MV),
                Field("protect_v", _MV),
                Field("release_v", _MV),
                Field("delay_s", _DS, 255, 1),
            ),
        ),
    )


def _temperatures(start: int, names: Sequence[str]) -> tuple[Span, ...]:
    return (Span(start, tuple(Field(name, _TEMP, signed=True) for name in names)),)


#: The 0x25 parameter groups (same settings, same natural units) and where the Modbus map keeps each field.
#: Registers 113-114 (charge over-current 2) have no 0x25 group and no documented range: not written here.
GROUP_SPANS: Mapping[type[pp.ParameterGroup], tuple[Span, ...]] = {
    pp.PackOverVoltage: _thresholds(60),
    pp.CellOverVoltage: _thresholds(64),
    pp.PackUnderVoltage: _thresholds(68),
    pp.CellUnderVoltage: _thresholds(72),
    pp.ChargeOverCurrent: (Span(76, (Field("alarm_a", 1), Field("protect_a", 1), Field("delay_s", _DS, 255, 1))),),
    pp.DischargeOverCurrent1: (Span(79, (Field("alarm_a", 1), Field("protect_a", 1), Field("delay_s", _DS, 255, 1))),),
    pp.DischargeOverCurrent2: (Span(82, (Field("protect_a", 1), Field("delay_s", 0.025, 255, 1))),),
    pp.ChargeDischargeOverTemperature: _temperatures(
        84,
        (
            "charge_alarm_c",
            "charge_protect_c",
            "charge_release_c",
            "discharge_alarm_c",
            "discharge_protect_c",
            "discharge_release_c",
        ),
    ),
    pp.ChargeDischargeUnderTemperature: _temperatures(
        90,
        (
            "charge_alarm_c",
            "charge_protect_c",
            "charge_release_c",
            "discharge_alarm_c",
            "discharge_protect_c",
            "discharge_release_c",
        ),
    ),
    pp.MosfetOverTemperature: _temperatures(96, ("alarm_c", "protect_c", "release_c")),
    pp.EnvironmentTemperature: _temperatures(
        99,
        ("over_alarm_c", "over_protect_c", "over_release_c", "under_alarm_c", "under_protect_c", "under_release_c"),
    ),
    pp.Balancing: (Span(105, (Field("start_v", _MV), Field("delta_mv", 1))),),
    pp.FullChargeLowSoc: (
        Span(107, (Field("full_charge_v", _MV), Field("full_charge_current_a", 0.001))),
        Span(112, (Field("low_soc_pct", 1, 100),)),
    ),
    pp.Sleep: (Span(109, (Field("cell_v", _MV), Field("delay_min", 1))),),
    pp.ShortCircuit: (Span(111, (Field("delay_us", 25, 20, 1),)),),
}
#: Stable names, as control.GROUPS names the 0x25 groups.
GROUP_NAMES: Mapping[str, type[pp.ParameterGroup]] = {
    "cell_overvoltage": pp.CellOverVoltage,
    "pack_overvoltage": pp.PackOverVoltage,
    "cell_undervoltage": pp.CellUnderVoltage,
    "pack_undervoltage": pp.PackUnderVoltage,
    "charge_overcurrent": pp.ChargeOverCurrent,
    "discharge_overcurrent_1": pp.DischargeOverCurrent1,
    "discharge_overcurrent_2": pp.DischargeOverCurrent2,
    "short_circuit": pp.ShortCircuit,
    "balancing": pp.Balancing,
    "sleep": pp.Sleep,
    "full_charge_low_soc": pp.FullChargeLowSoc,
    "charge_discharge_overtemperature": pp.ChargeDischargeOverTemperature,
    "charge_discharge_undertemperature": pp.ChargeDischargeUnderTemperature,
    "mosfet_overtemperature": pp.MosfetOverTemperature,
    "environment_temperature": pp.EnvironmentTemperature,
}


def group_from_registers[G: pp.ParameterGroup](group_type: type[G], spans: Sequence[Sequence[int]]) -> G:
    """A group from the register values of each of its spans (in GROUP_SPANS order)."""
    layout = GROUP_SPANS[group_type]
    if len(spans) != len(layout) or any(len(v) != len(s.fields) for v, s in zip(spans, layout, strict=True)):
        raise FrameError(f"{group_type.__name__}: register count does not match the map")
    kinds = get_type_hints(group_type)
    values: dict[str, Any] = {}
    for span, raw in zip(layout, spans, strict=True):
        for spec, word in zip(span.fields, raw, strict=True):
            value = (_signed(word) if spec.signed else word) * spec.unit
            values[spec.name] = round(value) if kinds[spec.name] is int else round(value, 6)
    return group_type(**values)


def group_to_registers(group: pp.ParameterGroup) -> list[tuple[int, tuple[int, ...]]]:
    """(start, register values) of each span of `group`; ParameterError for a value the registers cannot hold."""
    out = []
    for span in GROUP_SPANS[type(group)]:
        words = []
        for spec in span.fields:
            raw = round(float(getattr(group, spec.name)) / spec.unit)
            low, high = (-0x8000, 0x7FFF) if spec.signed else (spec.wire_min, spec.wire_max)
            if not low <= raw <= high:
                raise pp.ParameterError(pp.ParameterRule.WIRE_RANGE, spec.name, group=type(group))
            words.append(raw & 0xFFFF)
        out.append((span.start, tuple(words)))
    return out


class PaceModbusDriver(ModbusDriver):
    """PACE Modbus: one FC 0x03 read of registers 0-36 per pack and poll."""

    name: ClassVar[ProtocolName] = ProtocolName.PACE_MODBUS
    default_baudrate: ClassVar[int] = BAUDRATE

    @staticmethod
    def status_request(address: int) -> ModbusRequest:
        """The poll read (also the detector's probe: a read, answered by every PACE Modbus pack)."""
        return ModbusRequest.read(address, FunctionCode.READ_HOLDING_REGISTERS, STATUS_START, STATUS_COUNT)

    async def read_pack(self, link: ModbusExchange, address: int) -> tuple[PackAnalog, PackStatus]:
        data = await link.modbus_exchange(self.status_request(address))
        return decode_status_block(registers(data), address)

    async def read_registers(self, link: ModbusExchange, address: int, start: int, count: int) -> tuple[int, ...]:
        """`count` holding registers from `start`."""
        request = ModbusRequest.read(address, FunctionCode.READ_HOLDING_REGISTERS, start, count)
        return registers(await link.modbus_exchange(request))

    async def read_identity(self, link: ModbusExchange, address: int) -> PackIdentity:
        """Version and model SN (150-169); pack SN (170-179) where the firmware has it (V1.3 added it)."""
        values = await self.read_registers(link, address, VERSION_START, 2 * TEXT_REGISTERS)
        pack_serial = None
        with suppress(ModbusExceptionError):
            pack_serial = decode_text(await self.read_registers(link, address, PACK_SN_START, TEXT_REGISTERS))
        return PackIdentity(
            firmware=decode_text(values[:TEXT_REGISTERS]),
            bms_serial=decode_text(values[TEXT_REGISTERS:]),
            pack_serial=pack_serial,
        )

    async def read_group[G: pp.ParameterGroup](self, link: ModbusExchange, address: int, group_type: type[G]) -> G:
        """One parameter group, read span by span."""
        spans = [
            await self.read_registers(link, address, span.start, len(span.fields)) for span in GROUP_SPANS[group_type]
        ]
        return group_from_registers(group_type, spans)

    async def write_group(self, link: ModbusExchange, address: int, group: pp.ParameterGroup) -> None:
        """Write every span of `group` (FC 0x10); the caller validates first and reads back after."""
        for start, words in group_to_registers(group):
            await link.modbus_exchange(ModbusRequest.write(address, start, words))

"""PACE protocol 0x25 (PbmsTools packs): 0x42 analog, 0x44 status, identity and the small commands.

Wire layouts follow docs/protocol.md §1.9; decoders raise only FrameError (RtnError via Frame.check_rtn), encoders
produce the exact INFO bytes the decoders read so that the simulator answers with proven frames.
Parameter groups (0xD0-0xE7 and friends) live in pace_params.py.
"""

from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import ClassVar

from .codec import Reader
from .driver import ALL_PACKS, Exchange, ProtocolDriver, ProtocolName, Strategy
from .frame import Frame, FrameError, RtnError
from .models import Condition, Fault, PackAnalog, PackIdentity, PackStatus


class Cid2(IntEnum):
    """PACE 0x25 command codes used here (docs/protocol.md §1.8)."""

    ANALOG = 0x42
    STATUS = 0x44
    PACK_COUNT = 0x90
    SWITCH = 0x99
    CHARGE_MOS = 0x9A
    DISCHARGE_MOS = 0x9B
    SHUTDOWN = 0x9C
    HISTORY = 0xA1
    CAPACITY = 0xA6
    READ_CLOCK = 0xB1
    WRITE_CLOCK = 0xB2
    MODEL = 0xC1
    SERIALS = 0xC2


#: Temperatures travel as 0.1 K with this offset: °C = (raw - 2730) / 10.
KELVIN_OFFSET = 2730
#: The documented "user-defined number" P of the standard record (no tail).
STANDARD_MARKER = 3
#: Longest variant tail accepted after a 0x42 record (known: 0/1/8/14; some slack for unseen variants).
MAX_ANALOG_TAIL = 32
#: A plausible cell voltage for the record-boundary rule (0 = absent pack).
_PLAUSIBLE_CELL_MV = range(1000, 5001)


# ---------------------------------------------------------------------------------------------------------------
# Byte helpers
# ---------------------------------------------------------------------------------------------------------------


def _u8(value: int) -> bytes:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{value} does not fit in one byte")
    return bytes((value,))


def _u16(value: int) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{value} does not fit in u16")
    return value.to_bytes(2, "big")


def _s16(value: int) -> bytes:
    if not -0x8000 <= value <= 0x7FFF:
        raise ValueError(f"{value} does not fit in s16")
    return value.to_bytes(2, "big", signed=True)


def temperature_c(raw: int) -> float:
    """0.1 K with offset 2730 → °C."""
    return (raw - KELVIN_OFFSET) / 10


def temperature_raw(celsius: float) -> int:
    """°C → 0.1 K with offset 2730 (inverse of temperature_c)."""
    return round(celsius * 10) + KELVIN_OFFSET


def _centi(value: float) -> int:
    """A value sent in hundredths (10 mA, 10 mAh) back to its wire integer."""
    return round(value * 100)


def _bits(byte: int, table: Mapping[int, Condition]) -> frozenset[Condition]:
    return frozenset(cond for bit, cond in table.items() if byte >> bit & 1)


def _byte(flags: frozenset[Condition], table: Mapping[int, Condition], kind: str) -> int:
    reverse = {cond: bit for bit, cond in table.items()}
    unknown = flags - reverse.keys()
    if unknown:
        raise ValueError(f"PACE 0x44 cannot carry {kind} {sorted(unknown)}")
    return sum(1 << reverse[cond] for cond in flags)


def _ascii(info: bytes) -> str | None:
    text = info.decode("ascii", errors="replace").strip(" \x00")
    return text or None


# ---------------------------------------------------------------------------------------------------------------
# 0x42 analog values
# ---------------------------------------------------------------------------------------------------------------


def split_temperatures(temps: tuple[float, ...]) -> tuple[tuple[float, ...], float | None, float | None]:
    """Pick (cell sensors, MOSFET, environment) out of the wire-order temperatures.

    Six or more sensors: the PACE document's rule T1-T4 cells, T5 MOSFET, T6 environment; sensors after T6
    (8-sensor Eenovance/Sunsynk packs) are counted as further cell sensors, because nothing documents them as
    MOSFET/board sensors (docs/protocol.md §5 item 14). Fewer than six (4 on 8S packs): all are cell sensors and no
    MOSFET/environment value is reported rather than guessing a position.
    """
    if len(temps) >= 6:
        return temps[:4] + temps[6:], temps[4], temps[5]
    return temps, None, None


def make_pack_analog(
    *,
    address: int,
    cell_voltages_mv: Sequence[int],
    temperatures_c: Sequence[float],
    current_a: float,
    voltage_v: float,
    remaining_ah: float,
    full_ah: float,
    design_ah: float,
    cycles: int,
    marker: int = STANDARD_MARKER,
    tail: bytes = b"",
) -> PackAnalog:
    """Build a PackAnalog with the derived fields exactly as the 0x42 decoder does (also for the simulator).

    Tails (docs/protocol.md §1.9.2): 1 byte = SOC %; 8 = SOC, 3 x u16, SOH; 14 = SOC, 4 x u16, SOH, u16 port voltage
    mV, u16. Without a tail SOC = remaining/full and SOH = full/design (both clamped to 100).
    """
    temps = tuple(temperatures_c)
    cell_temps, mosfet, environment = split_temperatures(temps)
    extra: dict[str, float] = {}
    soh: float | None
    if len(tail) in (1, 8, 14):
        soc, soc_reported = float(tail[0]), True
        soh = float(tail[7]) if len(tail) == 8 else float(tail[9]) if len(tail) == 14 else None
        if len(tail) == 14:
            extra["port_voltage_v"] = int.from_bytes(tail[10:12], "big") / 1000
    else:
        soc, soc_reported, soh = 0.0, False, None
    if not soc_reported and full_ah > 0:
        # Clamped as family20 does: remaining can pass full by a little between the BMS's own updates.
        soc = round(min(remaining_ah / full_ah * 100, 100.0), 1)
    if soh is None and design_ah > 0:
        soh = round(min(full_ah / design_ah * 100, 100.0), 1)
    return PackAnalog(
        address=address,
        cell_voltages_mv=tuple(cell_voltages_mv),
        temperatures_c=temps,
        cell_temperatures_c=cell_temps,
        mosfet_temperature_c=mosfet,
        environment_temperature_c=environment,
        current_a=current_a,
        voltage_v=voltage_v,
        remaining_ah=remaining_ah,
        full_ah=full_ah,
        design_ah=design_ah,
        cycles=cycles,
        soc_pct=soc,
        soh_pct=soh,
        soc_reported=soc_reported,
        marker=marker,
        tail=bytes(tail),
        extra=extra,
    )


@dataclass(frozen=True, slots=True)
class _AnalogFixed:
    """The fixed part of one 0x42 record, wire integers."""

    cells: tuple[int, ...]
    temps: tuple[int, ...]
    current: int
    voltage: int
    remaining: int
    marker: int
    full: int
    cycles: int
    design: int

    def build(self, address: int, tail: bytes) -> PackAnalog:
        return make_pack_analog(
            address=address,
            cell_voltages_mv=self.cells,
            temperatures_c=[temperature_c(t) for t in self.temps],
            current_a=self.current / 100,
            voltage_v=self.voltage / 1000,
            remaining_ah=self.remaining / 100,
            full_ah=self.full / 100,
            design_ah=self.design / 100,
            cycles=self.cycles,
            marker=self.marker,
            tail=tail,
        )


def _read_analog_fixed(data: bytes, pos: int) -> tuple[_AnalogFixed, int]:
    rd = Reader(data, pos)
    cells = tuple(rd.u16() for _ in range(rd.u8()))
    temps = tuple(rd.u16() for _ in range(rd.u8()))
    fixed = _AnalogFixed(
        cells=cells,
        temps=temps,
        current=rd.s16(),
        voltage=rd.u16(),
        remaining=rd.u16(),
        marker=rd.u8(),
        full=rd.u16(),
        cycles=rd.u16(),
        design=rd.u16(),
    )
    return fixed, rd.pos


def _split_records[R](
    data: bytes,
    count: int,
    *,
    read_fixed: Callable[[bytes, int], tuple[R, int]],
    is_next_start: Callable[[bytes, int], bool],
    gap_candidates: Sequence[int],
    last_gap_max: int,
) -> list[tuple[R, bytes]] | None:
    """Cut `count` records with variable gaps (tails / extra bytes) out of `data`.

    A gap ends where `is_next_start` accepts the following bytes as a record start; the last record's gap is the
    rest of `data`. Backtracking (memoised on the position) picks the split that consumes `data` exactly, so a
    tail byte that happens to look like a cell count cannot derail the parse. None when no split fits.
    """
    failed: set[tuple[int, int]] = set()

    def parse(pos: int, left: int) -> list[tuple[R, bytes]] | None:
        if (pos, left) in failed:
            return None
        try:
            record, end = read_fixed(data, pos)
        except FrameError:
            failed.add((pos, left))
            return None
        if left == 1:
            if len(data) - end <= last_gap_max:
                return [(record, data[end:])]
        else:
            for gap in gap_candidates:
                nxt = end + gap
                if nxt < len(data) and is_next_start(data, nxt):
                    rest = parse(nxt, left - 1)
                    if rest is not None:
                        return [(record, data[end:nxt]), *rest]
        failed.add((pos, left))
        return None

    if count == 0:
        return [] if not data else None
    return parse(0, count)


#: Known tail lengths first, then anything else up to MAX_ANALOG_TAIL.
_ANALOG_GAPS = (0, 1, 8, 14, *(g for g in range(2, MAX_ANALOG_TAIL + 1) if g not in (8, 14)))


def _analog_start_rule(first_cells: int, first_temps: int) -> Callable[[bytes, int], bool]:
    """Record-boundary rule of §1.9.2: same cell count as the first record, then a plausible mV (or 0 = absent),
    and the same temperature count where the record says it is."""

    def is_start(data: bytes, pos: int) -> bool:
        if data[pos] != first_cells:
            return False
        t_pos = pos + 1 + 2 * first_cells
        if t_pos >= len(data) or data[t_pos] != first_temps:
            return False
        if first_cells == 0:
            return True
        mv = int.from_bytes(data[pos + 1 : pos + 3], "big")
        return mv == 0 or mv in _PLAUSIBLE_CELL_MV

    return is_start


def _record_shape(data: bytes, cell_width: int) -> tuple[int, int]:
    """(cell count, temperature count) of the first record, for the boundary rule."""
    if not data:
        raise FrameError("no pack record")
    t_pos = 1 + cell_width * data[0]
    if t_pos >= len(data):
        raise FrameError("record truncated before the temperature count")
    return data[0], data[t_pos]


def decode_analog_info(info: bytes, adr: int, command: int | None = None) -> list[PackAnalog]:
    """Every pack record of a 0x42 reply INFO.

    `command` is the request's INFO COMMAND when known. With ALL_PACKS byte 2 is the record count and each record
    gets address index + 1 (the master, DIP 1, comes first; the reply carries no per-record address). Otherwise
    byte 2 is the echoed address (0 → the frame ADR). With `command` None a count ≥ 2 whose records fit exactly
    is taken as a broadcast, anything else as a single-pack reply (a count of 1 means address 1 either way).
    """
    if len(info) < 2:
        raise FrameError(f"0x42 INFO of {len(info)} bytes")
    if info[0] != 0x00:
        raise FrameError(f"0x42 INFOFLAG {info[0]:02X}, expected 00")
    selector, body = info[1], info[2:]
    if command == ALL_PACKS or (command is None and selector >= 2):
        if not body and selector == 0:
            return []
        records = _split_records(
            body,
            selector,
            read_fixed=_read_analog_fixed,
            is_next_start=_analog_start_rule(*_record_shape(body, 2)),
            gap_candidates=_ANALOG_GAPS,
            last_gap_max=MAX_ANALOG_TAIL,
        )
        if records is not None:
            return [fixed.build(index + 1, tail) for index, (fixed, tail) in enumerate(records)]
        if command == ALL_PACKS:
            raise FrameError(f"0x42 reply does not hold {selector} pack records")
    fixed, end = _read_analog_fixed(body, 0)
    tail = body[end:]
    if len(tail) > MAX_ANALOG_TAIL:
        raise FrameError(f"0x42 reply has {len(tail)} unexpected bytes after the record")
    return [fixed.build(selector or adr, tail)]


def _encode_analog_record(pack: PackAnalog, tail: bytes) -> bytes:
    marker = STANDARD_MARKER if pack.marker is None else pack.marker
    design = 0.0 if pack.design_ah is None else pack.design_ah
    return b"".join(
        (
            _u8(len(pack.cell_voltages_mv)),
            *(_u16(mv) for mv in pack.cell_voltages_mv),
            _u8(len(pack.temperatures_c)),
            *(_u16(temperature_raw(t)) for t in pack.temperatures_c),
            _s16(_centi(pack.current_a)),
            _u16(round(pack.voltage_v * 1000)),
            _u16(_centi(pack.remaining_ah)),
            _u8(marker),
            _u16(_centi(pack.full_ah)),
            _u16(pack.cycles),
            _u16(_centi(design)),
            tail,
        )
    )


def encode_analog_info(packs: Sequence[PackAnalog], command: int, tails: Sequence[bytes] | None = None) -> bytes:
    """INFO of a 0x42 reply: INFOFLAG 00, count (ALL_PACKS) or echoed address, one record per pack.

    Each record carries the pack's own marker (P = 3 when None) and `tails[i]` when given, else `pack.tail`.
    Raises ValueError for values the wire cannot carry.
    """
    if tails is not None and len(tails) != len(packs):
        raise ValueError("one tail per pack")
    head = bytes((0x00, len(packs) if command == ALL_PACKS else command))
    return head + b"".join(
        _encode_analog_record(pack, pack.tail if tails is None else tails[i]) for i, pack in enumerate(packs)
    )


# ---------------------------------------------------------------------------------------------------------------
# 0x44 alarm / status
# ---------------------------------------------------------------------------------------------------------------

#: Table A - protect state 1 (bit 7 "charger high voltage" per newer nkinnan code).
PROTECT_1: Mapping[int, Condition] = {
    0: Condition.CELL_OVERVOLTAGE,
    1: Condition.CELL_UNDERVOLTAGE,
    2: Condition.PACK_OVERVOLTAGE,
    3: Condition.PACK_UNDERVOLTAGE,
    4: Condition.CHARGE_OVERCURRENT,
    5: Condition.DISCHARGE_OVERCURRENT,
    6: Condition.SHORT_CIRCUIT,
    7: Condition.CHARGER_OVERVOLTAGE,
}
#: Table B - protect state 2; bit 7 "Fully" is a status (fully_charged), not a protection (§5 item 13).
PROTECT_2: Mapping[int, Condition] = {
    0: Condition.CHARGE_OVERTEMPERATURE,
    1: Condition.DISCHARGE_OVERTEMPERATURE,
    2: Condition.CHARGE_UNDERTEMPERATURE,
    3: Condition.DISCHARGE_UNDERTEMPERATURE,
    4: Condition.MOSFET_OVERTEMPERATURE,
    5: Condition.ENVIRONMENT_OVERTEMPERATURE,
    6: Condition.ENVIRONMENT_UNDERTEMPERATURE,
}
FULLY_CHARGED_BIT = 7
#: Table F - warn state 1.
WARN_1: Mapping[int, Condition] = {
    0: Condition.CELL_OVERVOLTAGE,
    1: Condition.CELL_UNDERVOLTAGE,
    2: Condition.PACK_OVERVOLTAGE,
    3: Condition.PACK_UNDERVOLTAGE,
    4: Condition.CHARGE_OVERCURRENT,
    5: Condition.DISCHARGE_OVERCURRENT,
}
#: Table G - warn state 2; bit 7 "low power" is the low-SOC alarm (threshold set by 0xAE).
WARN_2: Mapping[int, Condition] = {
    0: Condition.CHARGE_OVERTEMPERATURE,
    1: Condition.DISCHARGE_OVERTEMPERATURE,
    2: Condition.CHARGE_UNDERTEMPERATURE,
    3: Condition.DISCHARGE_UNDERTEMPERATURE,
    4: Condition.ENVIRONMENT_OVERTEMPERATURE,
    5: Condition.ENVIRONMENT_UNDERTEMPERATURE,
    6: Condition.MOSFET_OVERTEMPERATURE,
    7: Condition.LOW_SOC,
}
#: Table E - fault state (bits 3, 6, 7 named as in the newer nkinnan code).
FAULTS: Mapping[int, Fault] = {
    0: Fault.CHARGE_MOSFET,
    1: Fault.DISCHARGE_MOSFET,
    2: Fault.TEMPERATURE_SENSOR,
    3: Fault.COMMUNICATION,
    4: Fault.CELL,
    5: Fault.SAMPLING,
    6: Fault.CCB,
    7: Fault.HEATER,
}


class SystemBit(IntEnum):
    """Table C - instruction (system) state, with the observed meanings (§1.9.3, §5 item 3)."""

    CHARGE_MOS = 1
    DISCHARGE_MOS = 2
    #: Doc: "pack indicate"; observed (nkinnan, PbmsTools): discharging.
    DISCHARGING = 3
    #: Doc: "AC in"; observed: charging.
    CHARGING = 5
    #: Doc: heartbeat; newer nkinnan code: heater active. Taken as the heater because the doc's heartbeat has no
    #: use for a host and the heating film has no other home in the 0x25 protocol.
    HEATER = 7


class ControlBit(IntEnum):
    """Table D - control state, with the semantics PbmsTools shows on the wire (§1.9.6, §5 item 2)."""

    BUZZER = 0
    CHARGE_MOS_OFF_BY_COMMAND = 1
    DISCHARGE_MOS_OFF_BY_COMMAND = 2
    LOW_GEAR = 3
    #: 1 = limiter enabled (PbmsTools "limiter on" = 0x0B reads back 1; the doc says the opposite).
    LIMITER = 4
    #: 1 = LED alarm enabled (PbmsTools "LED on" = 0x07 reads back 1; the doc says the opposite).
    LED = 5


def _bit(byte: int, bit: int) -> bool:
    return bool(byte >> bit & 1)


def _flag(value: bool | None, bit: int) -> int:
    return (1 << bit) if value else 0


@dataclass(frozen=True, slots=True)
class _StatusFixed:
    """One 0x44 record without the optional extra byte."""

    cell_codes: tuple[int, ...]
    temp_codes: tuple[int, ...]
    charge_current: int
    pack_voltage: int
    discharge_current: int
    protect_1: int
    protect_2: int
    system: int
    control: int
    fault: int
    balance_1: int
    balance_2: int
    warn_1: int
    warn_2: int
    raw: bytes

    def build(self, address: int, extra: bytes) -> PackStatus:
        # Balance bytes in the vendor-document order (first byte cells 1-8, bit 0 = cell 1; second byte cells
        # 9-16). nkinnan reads them the other way round; no capture with a single balancing cell decides it
        # (§5 item 1), so the document wins for now.
        balance = self.balance_1 | self.balance_2 << 8
        return PackStatus(
            address=address,
            protections=_bits(self.protect_1, PROTECT_1) | _bits(self.protect_2, PROTECT_2),
            warnings=_bits(self.warn_1, WARN_1) | _bits(self.warn_2, WARN_2),
            faults=frozenset(fault for bit, fault in FAULTS.items() if _bit(self.fault, bit)),
            charge_mos_on=_bit(self.system, SystemBit.CHARGE_MOS),
            discharge_mos_on=_bit(self.system, SystemBit.DISCHARGE_MOS),
            charging=_bit(self.system, SystemBit.CHARGING),
            discharging=_bit(self.system, SystemBit.DISCHARGING),
            heater_on=_bit(self.system, SystemBit.HEATER),
            fully_charged=_bit(self.protect_2, FULLY_CHARGED_BIT),
            balancing_cells=tuple(cell + 1 for cell in range(16) if _bit(balance, cell)),
            buzzer_enabled=_bit(self.control, ControlBit.BUZZER),
            led_alarm_enabled=_bit(self.control, ControlBit.LED),
            limiter_enabled=_bit(self.control, ControlBit.LIMITER),
            limiter_low_gear=_bit(self.control, ControlBit.LOW_GEAR),
            cell_alarm_codes=self.cell_codes,
            temperature_alarm_codes=self.temp_codes,
            charge_current_alarm_code=self.charge_current,
            pack_voltage_alarm_code=self.pack_voltage,
            discharge_current_alarm_code=self.discharge_current,
            raw=self.raw + extra,
        )


def _read_status_fixed(data: bytes, pos: int) -> tuple[_StatusFixed, int]:
    rd = Reader(data, pos)
    cells = rd.take(rd.u8())
    temps = rd.take(rd.u8())
    charge_current, pack_voltage, discharge_current, protect_1, protect_2, system, control, fault = rd.take(8)
    balance_1, balance_2, warn_1, warn_2 = rd.take(4)
    fixed = _StatusFixed(
        cell_codes=tuple(cells),
        temp_codes=tuple(temps),
        charge_current=charge_current,
        pack_voltage=pack_voltage,
        discharge_current=discharge_current,
        protect_1=protect_1,
        protect_2=protect_2,
        system=system,
        control=control,
        fault=fault,
        balance_1=balance_1,
        balance_2=balance_2,
        warn_1=warn_1,
        warn_2=warn_2,
        raw=data[pos : rd.pos],
    )
    return fixed, rd.pos


def decode_status_info(info: bytes, adr: int, command: int | None = None) -> list[PackStatus]:
    """Every pack record of a 0x44 reply INFO; addressing as for decode_analog_info.

    Records may be followed by one extra byte (some firmwares; 36 or 37 bytes for 16 cells/6 sensors); between
    records of a broadcast it is found by the cell-count rule, after the last record it is what remains.
    """
    if len(info) < 2:
        raise FrameError(f"0x44 INFO of {len(info)} bytes")
    if info[0] != 0x00:
        raise FrameError(f"0x44 INFOFLAG {info[0]:02X}, expected 00")
    selector, body = info[1], info[2:]
    if command == ALL_PACKS or (command is None and selector >= 2):
        if not body and selector == 0:
            return []
        cells, temps = _record_shape(body, 1)

        def is_start(data: bytes, pos: int) -> bool:
            t_pos = pos + 1 + cells
            return data[pos] == cells and t_pos < len(data) and data[t_pos] == temps

        records = _split_records(
            body, selector, read_fixed=_read_status_fixed, is_next_start=is_start, gap_candidates=(0, 1), last_gap_max=1
        )
        if records is not None:
            return [fixed.build(index + 1, extra) for index, (fixed, extra) in enumerate(records)]
        if command == ALL_PACKS:
            raise FrameError(f"0x44 reply does not hold {selector} pack records")
    fixed, end = _read_status_fixed(body, 0)
    if len(body) - end > 1:
        raise FrameError(f"0x44 reply has {len(body) - end} unexpected bytes after the record")
    return [fixed.build(selector or adr, body[end:])]


def _encode_status_record(status: PackStatus) -> bytes:
    balance = 0
    for cell in status.balancing_cells:
        if not 1 <= cell <= 16:
            raise ValueError(f"PACE balance bytes cover cells 1-16, not {cell}")
        balance |= 1 << (cell - 1)
    protect_2 = _byte(status.protections & frozenset(PROTECT_2.values()), PROTECT_2, "protections")
    protect_1 = _byte(status.protections - frozenset(PROTECT_2.values()), PROTECT_1, "protections")
    warn_2 = _byte(status.warnings & frozenset(WARN_2.values()), WARN_2, "warnings")
    warn_1 = _byte(status.warnings - frozenset(WARN_2.values()), WARN_1, "warnings")
    fault_bits = {fault: bit for bit, fault in FAULTS.items()}
    system = (
        _flag(status.charge_mos_on, SystemBit.CHARGE_MOS)
        | _flag(status.discharge_mos_on, SystemBit.DISCHARGE_MOS)
        | _flag(status.discharging, SystemBit.DISCHARGING)
        | _flag(status.charging, SystemBit.CHARGING)
        | _flag(status.heater_on, SystemBit.HEATER)
    )
    control = (
        _flag(status.buzzer_enabled, ControlBit.BUZZER)
        | _flag(status.limiter_low_gear, ControlBit.LOW_GEAR)
        | _flag(status.limiter_enabled, ControlBit.LIMITER)
        | _flag(status.led_alarm_enabled, ControlBit.LED)
    )
    return b"".join(
        (
            _u8(len(status.cell_alarm_codes)),
            *(_u8(code) for code in status.cell_alarm_codes),
            _u8(len(status.temperature_alarm_codes)),
            *(_u8(code) for code in status.temperature_alarm_codes),
            _u8(status.charge_current_alarm_code or 0),
            _u8(status.pack_voltage_alarm_code or 0),
            _u8(status.discharge_current_alarm_code or 0),
            _u8(protect_1),
            _u8(protect_2 | _flag(status.fully_charged, FULLY_CHARGED_BIT)),
            _u8(system),
            _u8(control),
            _u8(sum(1 << fault_bits[fault] for fault in status.faults)),
            _u8(balance & 0xFF),
            _u8(balance >> 8),
            _u8(warn_1),
            _u8(warn_2),
        )
    )


def encode_status_info(statuses: Sequence[PackStatus], command: int, extra_byte: bool = False) -> bytes:
    """INFO of a 0x44 reply, the inverse of decode_status_info; `extra_byte` appends 00 after every record.

    Conditions a PACE table cannot carry (e.g. CELL_IMBALANCE) raise ValueError.
    """
    head = bytes((0x00, len(statuses) if command == ALL_PACKS else command))
    suffix = b"\x00" if extra_byte else b""
    return head + b"".join(_encode_status_record(status) + suffix for status in statuses)


# ---------------------------------------------------------------------------------------------------------------
# Small commands
# ---------------------------------------------------------------------------------------------------------------


def _exact(info: bytes, size: int, what: str) -> bytes:
    if len(info) != size:
        raise FrameError(f"{what}: INFO of {len(info)} bytes, expected {size}")
    return info


def decode_pack_count(info: bytes) -> int:
    """0x90 reply: number of packs the BMS sees (1 on a non-master)."""
    return _exact(info, 1, "0x90")[0]


def encode_pack_count(count: int) -> bytes:
    """0x90 reply INFO."""
    return _u8(count)


@dataclass(frozen=True, slots=True, kw_only=True)
class Capacities:
    """0xA6 reply: remaining, full-charge and design capacity in Ah (10 mAh on the wire)."""

    remaining_ah: float
    full_ah: float
    design_ah: float

    @classmethod
    def decode(cls, info: bytes) -> Capacities:
        rd = Reader(_exact(info, 6, "0xA6"))
        return cls(remaining_ah=rd.u16() / 100, full_ah=rd.u16() / 100, design_ah=rd.u16() / 100)

    def encode(self) -> bytes:
        return _u16(_centi(self.remaining_ah)) + _u16(_centi(self.full_ah)) + _u16(_centi(self.design_ah))


class SwitchCommand(IntEnum):
    """0x99 codes, named by what PbmsTools sends them for (the vendor doc inverts LED and limiter, §1.9.6)."""

    LED_OFF = 0x06
    LED_ON = 0x07
    HIGH_GEAR = 0x08
    LOW_GEAR = 0x09
    LIMITER_OFF = 0x0A
    LIMITER_ON = 0x0B
    BUZZER_OFF = 0x0C
    BUZZER_ON = 0x0D


@dataclass(frozen=True, slots=True, kw_only=True)
class SwitchReply:
    """0x99 reply: the echoed code and the control-state byte (table D) after the change."""

    command: int
    control: int

    @classmethod
    def decode(cls, info: bytes) -> SwitchReply:
        _exact(info, 2, "0x99")
        return cls(command=info[0], control=info[1])

    def encode(self) -> bytes:
        return _u8(self.command) + _u8(self.control)

    @property
    def buzzer_enabled(self) -> bool:
        return _bit(self.control, ControlBit.BUZZER)

    @property
    def led_alarm_enabled(self) -> bool:
        return _bit(self.control, ControlBit.LED)

    @property
    def limiter_enabled(self) -> bool:
        return _bit(self.control, ControlBit.LIMITER)

    @property
    def limiter_low_gear(self) -> bool:
        return _bit(self.control, ControlBit.LOW_GEAR)


#: 0x9A/0x9B request INFO: 0x00 switches the MOSFET on (conducting), 0x01 off (§1.9.7).
MOS_ON = 0x00
MOS_OFF = 0x01
#: 0x9C request INFO.
SHUTDOWN_INFO = b"\x01"


def decode_mos_reply(frame: Frame) -> int:
    """0x9A/0x9B reply → the system-state byte after the change; a refusal (RTN 09) raises RtnError."""
    return _exact(frame.check_rtn().info, 1, "0x9A/0x9B")[0]


#: The BMS clock's range: the year travels as year - 2000 in one byte.
CLOCK_MIN = datetime(2000, 1, 1)
CLOCK_MAX = datetime(2255, 12, 31, 23, 59, 59)


def decode_clock(info: bytes) -> datetime:
    """0xB1 reply (and 0xB2 request): year - 2000, month, day, hour, minute, second, binary."""
    year, month, day, hour, minute, second = _exact(info, 6, "clock")
    try:
        return datetime(2000 + year, month, day, hour, minute, second)  # the BMS clock has no zone
    except ValueError as err:
        raise FrameError(f"invalid BMS date-time {info.hex()}") from err


def encode_clock(moment: datetime) -> bytes:
    """The 6 clock bytes of a datetime (2000-2255); the BMS keeps local time without a zone."""
    return bytes((_u8(moment.year - 2000)[0], moment.month, moment.day, moment.hour, moment.minute, moment.second))


#: Undecoded bytes at the end of a 0xA1 record (max/min cell, alarm/protect/fault type, §5 item 7).
HISTORY_TRAILER_LEN = 12


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryRecord:
    """One 0xA1 history record ("Memory Information" tab)."""

    timestamp: datetime
    cell_voltages_mv: tuple[int, ...]
    temperatures_c: tuple[float, ...]
    current_a: float
    voltage_v: float
    remaining_ah: float
    full_ah: float
    trailer: bytes


def history_index(index: int) -> bytes:
    """0xA1 request INFO: record index, 0 = newest."""
    return _u16(index)


def decode_history(info: bytes) -> HistoryRecord | None:
    """0xA1 reply; an empty INFO means there are no more records (None)."""
    if not info:
        return None
    rd = Reader(info)
    timestamp = decode_clock(rd.take(6))
    cells = tuple(rd.u16() for _ in range(rd.u8()))
    temps = tuple(temperature_c(rd.u16()) for _ in range(rd.u8()))
    record = HistoryRecord(
        timestamp=timestamp,
        cell_voltages_mv=cells,
        temperatures_c=temps,
        current_a=rd.s16() / 100,
        voltage_v=rd.u16() / 1000,
        remaining_ah=rd.u16() / 100,
        full_ah=rd.u16() / 100,
        trailer=rd.take(HISTORY_TRAILER_LEN),
    )
    if rd.pos != len(info):
        raise FrameError(f"0xA1 reply has {len(info) - rd.pos} unexpected trailing bytes")
    return record


def encode_history(record: HistoryRecord | None) -> bytes:
    """0xA1 reply INFO (empty for None = end of history)."""
    if record is None:
        return b""
    if len(record.trailer) != HISTORY_TRAILER_LEN:
        raise ValueError(f"history trailer must be {HISTORY_TRAILER_LEN} bytes")
    return b"".join(
        (
            encode_clock(record.timestamp),
            _u8(len(record.cell_voltages_mv)),
            *(_u16(mv) for mv in record.cell_voltages_mv),
            _u8(len(record.temperatures_c)),
            *(_u16(temperature_raw(t)) for t in record.temperatures_c),
            _s16(_centi(record.current_a)),
            _u16(round(record.voltage_v * 1000)),
            _u16(_centi(record.remaining_ah)),
            _u16(_centi(record.full_ah)),
            record.trailer,
        )
    )


def decode_model(info: bytes) -> str | None:
    """0xC1 reply: the 20-character model/firmware string, e.g. P16S100A-1812-1.00 (spaces/NULs stripped)."""
    return _ascii(info)


def decode_serials(info: bytes) -> tuple[str | None, str | None]:
    """0xC2 reply → (BMS serial, pack serial): 20 characters = BMS serial; 40 = BMS (0-19) + pack (20-39)."""
    if len(info) > 20:
        return _ascii(info[:20]), _ascii(info[20:])
    return _ascii(info), None


def encode_text(text: str, size: int) -> bytes:
    """Space-padded ASCII field of a 0xC1/0xC2 reply."""
    data = text.encode("ascii")
    if len(data) > size:
        raise ValueError(f"{text!r} longer than {size} characters")
    return data.ljust(size, b" ")


# ---------------------------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------------------------


class PaceDriver(ProtocolDriver):
    """PACE 0x25 (PbmsTools packs). Reply decoders accept the request's pack selector when the caller knows it."""

    name: ClassVar[ProtocolName] = ProtocolName.PACE25
    default_ver: ClassVar[int] = 0x25
    default_cid1: ClassVar[int] = 0x46
    strategies: ClassVar[tuple[Strategy, ...]] = (Strategy.BROADCAST, Strategy.RELAY, Strategy.BUS)

    def analog_request(self, adr: int, pack: int) -> bytes:
        return self.request(adr, Cid2.ANALOG, _u8(pack))

    def status_request(self, adr: int, pack: int) -> bytes:
        return self.request(adr, Cid2.STATUS, _u8(pack))

    def decode_analog(self, frame: Frame, command: int | None = None) -> list[PackAnalog]:
        return decode_analog_info(frame.check_rtn().info, frame.adr, command)

    def decode_status(self, frame: Frame, command: int | None = None) -> list[PackStatus]:
        return decode_status_info(frame.check_rtn().info, frame.adr, command)

    def pack_count_request(self, adr: int) -> bytes:
        return self.request(adr, Cid2.PACK_COUNT)

    def capacities_request(self, adr: int) -> bytes:
        return self.request(adr, Cid2.CAPACITY)

    def switch_request(self, adr: int, command: SwitchCommand) -> bytes:
        return self.request(adr, Cid2.SWITCH, _u8(command))

    def mos_request(self, adr: int, *, charge: bool, on: bool) -> bytes:
        """0x9A (charge) / 0x9B (discharge) MOSFET switch."""
        return self.request(adr, Cid2.CHARGE_MOS if charge else Cid2.DISCHARGE_MOS, _u8(MOS_ON if on else MOS_OFF))

    def shutdown_request(self, adr: int) -> bytes:
        return self.request(adr, Cid2.SHUTDOWN, SHUTDOWN_INFO)

    def read_clock_request(self, adr: int) -> bytes:
        return self.request(adr, Cid2.READ_CLOCK)

    def write_clock_request(self, adr: int, moment: datetime) -> bytes:
        return self.request(adr, Cid2.WRITE_CLOCK, encode_clock(moment))

    def history_request(self, adr: int, index: int) -> bytes:
        return self.request(adr, Cid2.HISTORY, history_index(index))

    async def read_identity(self, exchange: Exchange, adr: int) -> PackIdentity:
        """Model from 0xC1 and serials from 0xC2 of the pack at `adr`; a refused command leaves its fields None."""
        model = bms_serial = pack_serial = None
        with suppress(RtnError):
            model = decode_model((await exchange.exchange(self.request(adr, Cid2.MODEL))).info)
        with suppress(RtnError):
            bms_serial, pack_serial = decode_serials((await exchange.exchange(self.request(adr, Cid2.SERIALS))).info)
        return PackIdentity(model=model, bms_serial=bms_serial, pack_serial=pack_serial)

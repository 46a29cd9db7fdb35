"""The commands behind `python -m custom_components.lfp_bms.bms`: scan, read, watch and decode.

Everything that builds output is a pure function returning a string, so that tests check the text without a
terminal; the command coroutines only open the link, call the library and print. Exit codes: 0 success, 1 the
battery or link failed (nothing found, link error, the BMS refused), 2 bad input (a malformed frame, a command
this tool cannot decode).
"""

import asyncio
import inspect
import json
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from . import family20 as f20
from . import pace
from . import pace_params as pp
from .client import ClusterClient, LinkConfig
from .detect import DEFAULT_BAUDS, DETECT_TIMEOUT, DetectionResult, NoBatteryFoundError, detect
from .driver import ProtocolName
from .frame import BmsError, Frame, FrameError, Rtn, RtnError, decode_frame
from .models import (
    FAULT_ABBREVIATIONS,
    PROTECTION_ABBREVIATIONS,
    WARNING_ABBREVIATIONS,
    ClusterState,
    Condition,
    Fault,
    PackAnalog,
    PackReading,
    PackStatus,
)
from .progress import Progress
from .registry import make_driver
from .transport import SerialLink

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

type Printer = Callable[[str], None]


def _out(text: str) -> None:
    print(text, flush=True)


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Decoding a single reply frame
# ---------------------------------------------------------------------------------------------------------------


class UnknownCommandError(BmsError):
    """The tool has no decoder for this command in this protocol family."""


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """A reply that carries no data: the BMS accepted a write or control command (RTN 00, empty INFO)."""

    ok: bool = True


@dataclass(frozen=True, slots=True)
class PackCount:
    """PACE 0x90."""

    packs: int


@dataclass(frozen=True, slots=True)
class MosfetSwitchReply:
    """PACE 0x9A/0x9B: the system-state byte (table C) after the switch."""

    system: int
    charge_mos_on: bool
    discharge_mos_on: bool


@dataclass(frozen=True, slots=True)
class ClockReading:
    """PACE 0xB1 / EG4 0x4D: the BMS clock (local time, no zone)."""

    time: datetime


@dataclass(frozen=True, slots=True)
class EndOfHistory:
    """PACE 0xA1 with an empty INFO: there are no more records."""

    end_of_history: bool = True


@dataclass(frozen=True, slots=True)
class Model:
    """PACE 0xC1."""

    model: str | None


@dataclass(frozen=True, slots=True)
class Serials:
    """PACE 0xC2."""

    bms_serial: str | None
    pack_serial: str | None


def parse_frame_text(text: str) -> Frame:
    """A frame as written in tests/data/captures.md: `~…` with an optional trailing `\\r` (typed as two characters or
    a real CR); surrounding whitespace is ignored. Raises FrameError."""
    cleaned = text.strip()
    if cleaned.endswith("\\r"):
        cleaned = cleaned[:-2]
    if not cleaned.startswith("~"):
        raise FrameError("a frame starts with '~'")
    if "\r" in cleaned or "\\r" in cleaned:
        raise FrameError("text after the end of the frame")
    try:
        data = cleaned.encode("ascii")
    except UnicodeEncodeError:
        raise FrameError("a frame is ASCII only") from None
    return decode_frame(data + b"\r")


def _empty(info: bytes, command: int) -> Acknowledgement:
    if info:
        raise FrameError(f"reply to 0x{command:02X} should carry no INFO, has {len(info)} bytes")
    return Acknowledgement()


def _decode_pace(command: int, frame: Frame) -> object:
    info = frame.info
    if command in pp.GROUP_BY_READ_CID2:
        return pp.GROUP_BY_READ_CID2[command].decode(info)
    if command in pp.GROUP_BY_WRITE_CID2:
        return _empty(info, command)
    match command:
        case pace.Cid2.ANALOG:
            return pace.decode_analog_info(info, frame.adr)
        case pace.Cid2.STATUS:
            return pace.decode_status_info(info, frame.adr)
        case pace.Cid2.PACK_COUNT:
            return PackCount(pace.decode_pack_count(info))
        case pace.Cid2.CAPACITY:
            return pace.Capacities.decode(info)
        case pace.Cid2.SWITCH:
            return pace.SwitchReply.decode(info)
        case pace.Cid2.CHARGE_MOS | pace.Cid2.DISCHARGE_MOS:
            system = pace.decode_mos_reply(frame)
            return MosfetSwitchReply(
                system=system,
                charge_mos_on=bool(system >> pace.SystemBit.CHARGE_MOS & 1),
                discharge_mos_on=bool(system >> pace.SystemBit.DISCHARGE_MOS & 1),
            )
        case pace.Cid2.SHUTDOWN | pace.Cid2.WRITE_CLOCK:
            return _empty(info, command)
        case pace.Cid2.READ_CLOCK:
            return ClockReading(pace.decode_clock(info))
        case pace.Cid2.HISTORY:
            record = pace.decode_history(info)
            return EndOfHistory() if record is None else record
        case pace.Cid2.MODEL:
            return Model(pace.decode_model(info))
        case pace.Cid2.SERIALS:
            return Serials(*pace.decode_serials(info))
    raise UnknownCommandError(f"no decoder for PACE 0x25 command 0x{command:02X}")


def _decode_eg4(command: int, frame: Frame) -> object:
    match command:
        case f20.Cid2.ANALOG:
            return [f20.decode_eg4_analog_info(frame.info, frame.adr)]
        case f20.Cid2.STATUS:
            return [f20.decode_eg4_status_info(frame.info, frame.adr)]
        case f20.Cid2.CLOCK_READ:
            return ClockReading(f20.decode_eg4_clock(frame.info))
        case f20.Cid2.CLOCK_WRITE:
            return _empty(frame.info, command)
        case f20.Cid2.MANUFACTURER_INFO:
            return f20.decode_eg4_hardware_info(frame.info)
    raise UnknownCommandError(f"no decoder for EG4 command 0x{command:02X}")


def _decode_family20(command: int, frame: Frame) -> object:
    info = frame.info
    match command:
        case f20.Cid2.ANALOG:
            match f20.classify_analog_reply(frame):
                case ProtocolName.PYLON:
                    return f20.decode_pylon_analog_info(info, frame.adr)
                case ProtocolName.SEPLOS:
                    return [f20.decode_seplos_analog_info(info, frame.adr)]
                case ProtocolName.EG4:
                    return [f20.decode_eg4_analog_info(info, frame.adr)]
            raise FrameError("0x42 reply is neither a Pylon, a Seplos nor an EG4 layout")
        case f20.Cid2.STATUS:
            # Seplos has a fixed count of 20 custom bytes (docs/protocol.md §1.11 step 5); anything else is read as
            # Pylon.
            try:
                return [f20.decode_seplos_status_info(info, frame.adr)]
            except FrameError:
                return f20.decode_pylon_status_info(info, frame.adr)
        case f20.Cid2.PROTOCOL_VERSION:
            return f20.decode_pylon_protocol_version(frame)
        case f20.Cid2.MANUFACTURER_INFO:
            return f20.decode_manufacturer_info(info)
        case f20.Cid2.SYSTEM_PARAMETERS:
            return f20.decode_pylon_system_parameters(info)
        case f20.Cid2.CHARGE_MANAGEMENT:
            return f20.decode_pylon_charge_management(info)
        case f20.Cid2.SERIAL_NUMBER:
            return f20.decode_pylon_serial_number(info)
        case f20.Cid2.SOFTWARE_VERSION:
            return f20.decode_pylon_software_version(info)
    raise UnknownCommandError(f"no decoder for 0x20-family command 0x{command:02X}")


def decode_reply(command: int, frame: Frame) -> object:
    """Decode the reply to request CID2 `command`, choosing the family by the reply's VER and CID1.

    VER 0x25 is PACE; CID1 0x4A is EG4; anything else is the 0x20 family, whose 0x42 layout tells Pylon, Seplos and
    EG4 apart. Raises RtnError for a refusal, FrameError for a malformed payload, UnknownCommandError.
    """
    if frame.rtn not in set(Rtn):
        raise FrameError(f"not a reply: 0x{frame.rtn:02X} is no return code (a request frame?)")
    frame.check_rtn()
    if frame.ver == pace.PaceDriver.default_ver:
        return _decode_pace(command, frame)
    if frame.cid1 == f20.CID1_EG4:
        return _decode_eg4(command, frame)
    return _decode_family20(command, frame)


# ---------------------------------------------------------------------------------------------------------------
# Plain data for JSON
# ---------------------------------------------------------------------------------------------------------------


def _names[K: (Condition, Fault)](members: type[K], present: frozenset[K], names: Mapping[K, str]) -> list[str]:
    """Manual abbreviations of the flags that are set, in the enum's (table) order."""
    return [names[member] for member in members if member in present]


def analog_dict(analog: PackAnalog) -> dict[str, Any]:
    """The per-pack 0x42 fields of `decode --json` and `read --json`."""
    return {
        "address": analog.address,
        "cell_voltages_mv": list(analog.cell_voltages_mv),
        "temperatures_c": list(analog.temperatures_c),
        "current_a": analog.current_a,
        "voltage_v": analog.voltage_v,
        "remaining_ah": analog.remaining_ah,
        "full_ah": analog.full_ah,
        "design_ah": analog.design_ah,
        "cycles": analog.cycles,
        "soc_pct": analog.soc_pct,
        "soh_pct": analog.soh_pct,
    }


def status_dict(status: PackStatus) -> dict[str, Any]:
    """The per-pack 0x44 fields; conditions and faults by their manual abbreviations."""
    return {
        "address": status.address,
        "protections": _names(Condition, status.protections, PROTECTION_ABBREVIATIONS),
        "warnings": _names(Condition, status.warnings, WARNING_ABBREVIATIONS),
        "faults": _names(Fault, status.faults, FAULT_ABBREVIATIONS),
        "charge_mos_on": status.charge_mos_on,
        "discharge_mos_on": status.discharge_mos_on,
        "balancing_cells": list(status.balancing_cells),
    }


def plain(value: object) -> Any:
    """JSON-able form of a decoded value: dataclasses with their public properties, enums by value, dates ISO."""
    if is_dataclass(value) and not isinstance(value, type):
        data = {f.name: plain(getattr(value, f.name)) for f in fields(value)}
        for name, _ in inspect.getmembers(type(value), lambda m: isinstance(m, property)):
            if not name.startswith("_"):
                data[name] = plain(getattr(value, name))
        return data
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex().upper()
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, frozenset | set):
        return sorted(plain(item) for item in value)
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def decoded_dict(decoded: object) -> Any:
    """The JSON document of `decode --json`."""
    if isinstance(decoded, list) and decoded and all(isinstance(item, PackAnalog) for item in decoded):
        return {"packs": [analog_dict(item) for item in decoded]}
    if isinstance(decoded, list) and decoded and all(isinstance(item, PackStatus) for item in decoded):
        return {"packs": [status_dict(item) for item in decoded]}
    return plain(decoded)


def _state_text(reading: PackReading) -> str:
    """The pack's operating state, or "offline"."""
    state = reading.operating_state
    return "offline" if state is None else state.value


def reading_dict(reading: PackReading) -> dict[str, Any]:
    """One pack of `read --json`: the 0x42 fields, the 0x44 fields, and why it is missing if it is."""
    analog = analog_dict(reading.analog) if reading.analog is not None else {}
    status = status_dict(reading.status) if reading.status is not None else {}
    return {
        **analog,
        **status,
        "address": reading.address,
        "online": reading.online,
        "state": _state_text(reading),
        "error": reading.error,
    }


def cluster_dict(state: ClusterState, config: LinkConfig | None = None) -> dict[str, Any]:
    """The JSON document of `read --json`."""
    data: dict[str, Any] = {}
    if config is not None:
        data["link"] = config.as_dict()
    data["packs"] = [reading_dict(reading) for reading in state.packs.values()]
    data["summary"] = plain(state.summary)
    return data


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------------------------
# Human-readable text
# ---------------------------------------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 1, unit: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def _flags_text(status: PackStatus | None) -> str:
    if status is None:
        return "-"
    parts = [
        *_names(Condition, status.protections, PROTECTION_ABBREVIATIONS),
        *(f"warn {name}" for name in _names(Condition, status.warnings, WARNING_ABBREVIATIONS)),
        *(f"fault {name}" for name in _names(Fault, status.faults, FAULT_ABBREVIATIONS)),
    ]
    return ", ".join(parts) or "-"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in (header, *rows)]
    return "\n".join(line.rstrip() for line in lines)


_ANALOG_HEADER = ("pack", "V", "A", "SOC %", "SOH %", "Ah", "full Ah", "cycles", "cells mV", "Δ mV", "max °C")


def _analog_cells(analog: PackAnalog) -> list[str]:
    cells = analog.cells
    return [
        f"{analog.voltage_v:.3f}",
        f"{analog.current_a:.2f}",
        _num(analog.soc_pct),
        _num(analog.soh_pct),
        f"{analog.remaining_ah:.2f}",
        f"{analog.full_ah:.2f}",
        str(analog.cycles),
        "-" if cells is None else f"{cells.min_mv}-{cells.max_mv}",
        "-" if cells is None else str(cells.delta_mv),
        _num(analog.max_temperature_c),
    ]


def format_analogs(packs: Sequence[PackAnalog]) -> str:
    """0x42 records as a table, then each pack's cells and sensors in full."""
    rows = [[str(a.address), *_analog_cells(a)] for a in packs]
    details = [
        f"pack {a.address}: cells {' '.join(str(mv) for mv in a.cell_voltages_mv) or '-'} mV; "
        f"temperatures {' '.join(f'{t:.1f}' for t in a.temperatures_c) or '-'} °C"
        for a in packs
    ]
    return "\n".join([_table(_ANALOG_HEADER, rows), *details])


def _on_off(value: bool | None) -> str:
    return "-" if value is None else "on" if value else "off"


def format_statuses(statuses: Sequence[PackStatus]) -> str:
    """0x44 records, one line each."""
    return "\n".join(
        f"pack {s.address}: charge MOS {_on_off(s.charge_mos_on)}, discharge MOS {_on_off(s.discharge_mos_on)}; "
        f"alarms {_flags_text(s)}; balancing {' '.join(str(c) for c in s.balancing_cells) or '-'}"
        for s in statuses
    )


def format_plain(data: Any, indent: str = "") -> str:
    """`key: value` lines of a plain (JSON-able) value."""
    if isinstance(data, dict):
        lines = []
        for key, value in data.items():
            if isinstance(value, dict):
                lines += [f"{indent}{key}:", format_plain(value, indent + "  ")]
            else:
                lines.append(f"{indent}{key}: {_scalar(value)}")
        return "\n".join(lines)
    return f"{indent}{_scalar(data)}"


def _scalar(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(_scalar(item) for item in value) or "-"
    if value is None:
        return "-"
    return str(value)


def format_decoded(decoded: object) -> str:
    """Human form of `decode`."""
    if isinstance(decoded, list) and decoded and all(isinstance(item, PackAnalog) for item in decoded):
        return format_analogs([item for item in decoded if isinstance(item, PackAnalog)])
    if isinstance(decoded, list) and decoded and all(isinstance(item, PackStatus) for item in decoded):
        return format_statuses([item for item in decoded if isinstance(item, PackStatus)])
    return format_plain(plain(decoded))


_CLUSTER_HEADER = ("pack", "state", *_ANALOG_HEADER[1:], "alarms")


def format_cluster(state: ClusterState) -> str:
    """`read`: one row per pack, then the cluster summary."""
    rows = []
    for reading in state.packs.values():
        label = _state_text(reading)
        if reading.analog is None or not reading.online:
            blank = ["-"] * (len(_ANALOG_HEADER) - 1)
            rows.append([str(reading.address), f"{label} ({reading.error})", *blank, "-"])
            continue
        rows.append([str(reading.address), label, *_analog_cells(reading.analog), _flags_text(reading.status)])
    s = state.summary
    summary = (
        f"cluster: {s.packs_online}/{len(state.packs)} packs online, SOC {_num(s.soc_pct)} %, "
        f"{_num(s.voltage_v, 3)} V, {s.current_a:.2f} A, {s.power_w:.1f} W, "
        f"{s.remaining_ah:.2f}/{s.full_ah:.2f} Ah, {s.stored_energy_kwh:.3f} kWh"
    )
    if s.highest_cell is not None and s.lowest_cell is not None:
        summary += (
            f", cells {s.lowest_cell.mv} mV (pack {s.lowest_cell.address} cell {s.lowest_cell.cell})"
            f" - {s.highest_cell.mv} mV (pack {s.highest_cell.address} cell {s.highest_cell.cell})"
        )
    return "\n".join([_table(_CLUSTER_HEADER, rows), summary])


def format_watch(state: ClusterState, when: datetime) -> str:
    """`watch`: one line per pack for one read."""
    stamp = when.strftime("%H:%M:%S")
    lines = []
    for reading in state.packs.values():
        analog = reading.analog
        if analog is None or not reading.online:
            lines.append(f"{stamp} pack {reading.address:2d} offline ({reading.error})")
            continue
        cells = analog.cells
        cell_text = "-" if cells is None else f"{cells.min_mv}-{cells.max_mv} mV"
        lines.append(
            f"{stamp} pack {reading.address:2d} {analog.voltage_v:7.3f} V {analog.current_a:8.2f} A "
            f"SOC {_num(analog.soc_pct):>5} % cells {cell_text} max {_num(analog.max_temperature_c)} °C "
            f"{_state_text(reading)} {_flags_text(reading.status)}"
        )
    return "\n".join(lines)


def format_detection(result: DetectionResult) -> str:
    """`scan`: what detection found."""
    config = result.config
    identity = result.identity
    lines = [
        f"baud:       {config.baudrate}",
        f"protocol:   {config.protocol}",
        f"VER:        0x{config.ver:02X}",
        f"CID1:       0x{config.cid1:02X}",
        f"addresses:  {' '.join(str(a) for a in config.addresses)}",
        f"strategy:   {config.strategy}",
        f"master ADR: {config.master_address} (commands to ADR {config.local_address})",
        f"model:      {identity.model or '-'}",
        f"firmware:   {identity.firmware or '-'}",
        f"maker:      {identity.manufacturer or '-'}",
        f"BMS serial: {identity.bms_serial or '-'}",
        f"serial:     {identity.pack_serial or '-'}",
        f"online:     {result.state.summary.packs_online}/{len(result.state.packs)} packs",
        f"refresh:    {result.refresh_s:.2f} s",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------------------------


def decode(command: int, text: str, *, as_json: bool, out: Printer = _out, err: Printer = _err) -> int:
    """`decode`: one reply frame, for request CID2 `command`."""
    try:
        decoded = decode_reply(command, parse_frame_text(text))
    except RtnError as refused:
        err(f"decode: the BMS refused: {refused}")
        return EXIT_FAILED
    except FrameError as bad:
        err(f"decode: bad frame: {bad}")
        return EXIT_BAD_INPUT
    except UnknownCommandError as unknown:
        err(f"decode: {unknown}")
        return EXIT_BAD_INPUT
    out(to_json(decoded_dict(decoded)) if as_json else format_decoded(decoded))
    return EXIT_OK


async def _detected(
    url: str,
    then: Callable[[SerialLink, DetectionResult], Awaitable[int]],
    *,
    bauds: Sequence[int],
    timeout: float,
    progress: Progress | None,
    err: Printer,
) -> int:
    """Open `url`, detect, hand link and result to `then` (which returns an exit status), always close."""
    link = SerialLink(url)
    try:
        try:
            result = await detect(link, bauds=bauds, progress=progress, timeout=timeout)
        except NoBatteryFoundError as nothing:
            err(f"no battery found: {nothing}")
            return EXIT_FAILED
        except (BmsError, OSError) as failed:
            err(f"detection failed: {failed}")
            return EXIT_FAILED
        return await then(link, result)
    finally:
        await link.close()


async def scan(
    url: str,
    *,
    bauds: Sequence[int] = DEFAULT_BAUDS,
    timeout: float = DETECT_TIMEOUT,
    out: Printer = _out,
    err: Printer = _err,
) -> int:
    """`scan`: run detection, printing each stage as it starts, then what was found."""

    async def report(link: SerialLink, result: DetectionResult) -> int:
        out(format_detection(result))
        return EXIT_OK

    return await _detected(
        url, report, bauds=bauds, timeout=timeout, progress=lambda stage: out(f"... {stage}"), err=err
    )


async def read(
    url: str,
    *,
    as_json: bool,
    bauds: Sequence[int] = DEFAULT_BAUDS,
    timeout: float = DETECT_TIMEOUT,
    out: Printer = _out,
    err: Printer = _err,
) -> int:
    """`read`: detect, then one full refresh."""

    async def once(link: SerialLink, result: DetectionResult) -> int:
        config = result.config
        client = ClusterClient(link, make_driver(config.protocol, ver=config.ver, cid1=config.cid1), config)
        try:
            state = await client.read_all()
        except BmsError as failed:
            err(f"read failed: {failed}")
            return EXIT_FAILED
        out(to_json(cluster_dict(state, config)) if as_json else format_cluster(state))
        return EXIT_OK

    return await _detected(url, once, bauds=bauds, timeout=timeout, progress=None, err=err)


async def watch(
    url: str,
    *,
    interval: float,
    count: int = 0,
    bauds: Sequence[int] = DEFAULT_BAUDS,
    timeout: float = DETECT_TIMEOUT,
    out: Printer = _out,
    err: Printer = _err,
    clock: Callable[[], datetime] = datetime.now,
) -> int:
    """`watch`: detect, then read every `interval` seconds, `count` times (0 = until interrupted)."""

    async def loop(link: SerialLink, result: DetectionResult) -> int:
        config = result.config
        client = ClusterClient(link, make_driver(config.protocol, ver=config.ver, cid1=config.cid1), config)
        reads = 0
        while True:
            try:
                out(format_watch(await client.read_all(), clock()))
            except BmsError as failed:
                # A bad poll is reported and the next one tried: the link may come back.
                err(f"{clock():%H:%M:%S} read failed: {failed}")
            reads += 1
            if count and reads >= count:
                return EXIT_OK
            await asyncio.sleep(interval)

    return await _detected(url, loop, bauds=bauds, timeout=timeout, progress=None, err=err)

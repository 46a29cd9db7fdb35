"""Pylontech-compatible LV CAN (the inverter port, docs/protocol.md §3): frame codecs and the folded bus state.

Pure functions over (arbitration id, data bytes): no python-can here, the I/O lives in the Home Assistant layer
and the simulator. All multi-byte values are little-endian. The battery broadcasts its frame set about once a
second; `fold` keeps the latest frame of each kind in a `CanState`, from which the system values are read.
"""

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import ClassVar, Self

from .frame import FrameError
from .models import IDLE_CURRENT_A, Condition, Fault

#: The inverter's keep-alive, 8 × 0x00 once a second (§3.1).
KEEP_ALIVE_ID = 0x305
KEEP_ALIVE_DATA = bytes(8)
#: IDs every Pylon battery sends; a state is complete once each has been heard.
CORE_IDS = frozenset({0x351, 0x355, 0x356, 0x359})


def _u16(value: float) -> int:
    return min(max(round(value), 0), 0xFFFF)


def _s16(value: float) -> int:
    return min(max(round(value), -0x8000), 0x7FFF)


def _u32(value: float) -> int:
    return min(max(round(value), 0), 0xFFFFFFFF)


def _unpack(fmt: str, data: bytes, name: str) -> tuple[int, ...]:
    size = struct.calcsize(fmt)
    if len(data) < size:
        raise FrameError(f"{name}: {len(data)} data bytes, at least {size} expected")
    return struct.unpack_from(fmt, data)


def _ascii(data: bytes) -> str:
    """Printable ASCII, padding (NUL/space) stripped; anything else is not text."""
    text = data.rstrip(b"\x00 ")
    if not all(0x20 <= b < 0x7F for b in text):
        raise FrameError(f"not ASCII text: {data.hex()}")
    return text.decode("ascii")


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargeLimits:
    """0x351: charge voltage limit, charge/discharge current limits, discharge voltage limit (when sent)."""

    ID: ClassVar[int] = 0x351
    charge_voltage_v: float
    charge_current_a: float
    discharge_current_a: float
    #: Bytes 6-7 are undefined by Pylon; Seplos/SMA/Victron send the discharge voltage limit there.
    discharge_voltage_v: float | None = None

    @classmethod
    def decode(cls, data: bytes) -> Self:
        cvl, ccl, dcl = _unpack("<Hhh", data, "0x351")
        dvl = struct.unpack_from("<H", data, 6)[0] / 10 if len(data) >= 8 else None
        # A positive DCL magnitude is the norm; one emulator sent it negative (docs/protocol.md §3.2).
        return cls(
            charge_voltage_v=cvl / 10,
            charge_current_a=ccl / 10,
            discharge_current_a=abs(dcl) / 10,
            discharge_voltage_v=dvl,
        )

    def encode(self) -> bytes:
        out = struct.pack(
            "<Hhh",
            _u16(self.charge_voltage_v * 10),
            _s16(self.charge_current_a * 10),
            _s16(self.discharge_current_a * 10),
        )
        return out + struct.pack("<H", _u16((self.discharge_voltage_v or 0) * 10))


@dataclass(frozen=True, slots=True, kw_only=True)
class StateOfCharge:
    """0x355: SOC and SOH, 1 %."""

    ID: ClassVar[int] = 0x355
    soc_pct: int
    soh_pct: int

    @classmethod
    def decode(cls, data: bytes) -> Self:
        soc, soh = _unpack("<HH", data, "0x355")
        return cls(soc_pct=soc, soh_pct=soh)

    def encode(self) -> bytes:
        return struct.pack("<HH", _u16(self.soc_pct), _u16(self.soh_pct)) + bytes(4)


@dataclass(frozen=True, slots=True, kw_only=True)
class Measurements:
    """0x356: voltage (0.01 V), total current (0.1 A, + = charge), average cell temperature (0.1 °C)."""

    ID: ClassVar[int] = 0x356
    voltage_v: float
    current_a: float
    temperature_c: float

    @classmethod
    def decode(cls, data: bytes) -> Self:
        voltage, current, temperature = _unpack("<hhh", data, "0x356")
        return cls(voltage_v=voltage / 100, current_a=current / 10, temperature_c=temperature / 10)

    def encode(self) -> bytes:
        return struct.pack(
            "<hhh", _s16(self.voltage_v * 100), _s16(self.current_a * 10), _s16(self.temperature_c * 10)
        ) + bytes(2)


class CanFlag(StrEnum):
    """The protection/alarm items of 0x359 (tables P1/P2/A1/A2, Seplos' cell failure)."""

    CELL_OVERVOLTAGE = "cell_overvoltage"
    CELL_UNDERVOLTAGE = "cell_undervoltage"
    CELL_OVERTEMPERATURE = "cell_overtemperature"
    CELL_UNDERTEMPERATURE = "cell_undertemperature"
    DISCHARGE_OVERCURRENT = "discharge_overcurrent"
    CHARGE_OVERCURRENT = "charge_overcurrent"
    SYSTEM_ERROR = "system_error"
    INTERNAL_COMMUNICATION = "internal_communication"
    CELL_FAILURE = "cell_failure"


#: Bit positions in the 16-bit little-endian word of bytes 0-1 (protection) and of bytes 2-3 (warning).
PROTECTION_BITS: Mapping[int, CanFlag] = {
    1: CanFlag.CELL_OVERVOLTAGE,
    2: CanFlag.CELL_UNDERVOLTAGE,
    3: CanFlag.CELL_OVERTEMPERATURE,
    4: CanFlag.CELL_UNDERTEMPERATURE,
    7: CanFlag.DISCHARGE_OVERCURRENT,
    8: CanFlag.CHARGE_OVERCURRENT,
    11: CanFlag.SYSTEM_ERROR,
}
WARNING_BITS: Mapping[int, CanFlag] = {
    1: CanFlag.CELL_OVERVOLTAGE,
    2: CanFlag.CELL_UNDERVOLTAGE,
    3: CanFlag.CELL_OVERTEMPERATURE,
    4: CanFlag.CELL_UNDERTEMPERATURE,
    7: CanFlag.DISCHARGE_OVERCURRENT,
    8: CanFlag.CHARGE_OVERCURRENT,
    11: CanFlag.INTERNAL_COMMUNICATION,
    12: CanFlag.CELL_FAILURE,
}
_FLAG_CONDITIONS: Mapping[CanFlag, Condition] = {
    CanFlag.CELL_OVERVOLTAGE: Condition.CELL_OVERVOLTAGE,
    CanFlag.CELL_UNDERVOLTAGE: Condition.CELL_UNDERVOLTAGE,
    CanFlag.DISCHARGE_OVERCURRENT: Condition.DISCHARGE_OVERCURRENT,
    CanFlag.CHARGE_OVERCURRENT: Condition.CHARGE_OVERCURRENT,
}
_FLAG_FAULTS: Mapping[CanFlag, Fault] = {
    CanFlag.INTERNAL_COMMUNICATION: Fault.COMMUNICATION,
    CanFlag.CELL_FAILURE: Fault.CELL,
}


def _flags(word: int, bits: Mapping[int, CanFlag]) -> frozenset[CanFlag]:
    return frozenset(flag for bit, flag in bits.items() if word >> bit & 1)


def _mask(bits: Mapping[int, CanFlag]) -> int:
    return sum(1 << bit for bit in bits)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmFlags:
    """0x359: protection and warning words, module count, (Seplos) online-pack bitmap."""

    ID: ClassVar[int] = 0x359
    #: Bytes 0-1 and 2-3 as little-endian words: bit n of byte 1 is bit 8+n.
    protection: int
    warning: int
    module_count: int | None = None
    online_bitmap: int | None = None

    @classmethod
    def decode(cls, data: bytes) -> Self:
        protection, warning = _unpack("<HH", data, "0x359")
        count = data[4] if len(data) >= 5 else None
        bitmap = data[7] if len(data) >= 8 else None
        return cls(protection=protection, warning=warning, module_count=count, online_bitmap=bitmap)

    def encode(self) -> bytes:
        head = struct.pack("<HHB", self.protection & 0xFFFF, self.warning & 0xFFFF, (self.module_count or 0) & 0xFF)
        return head + b"PN" + bytes([(self.online_bitmap or 0) & 0xFF])

    @property
    def protection_flags(self) -> frozenset[CanFlag]:
        return _flags(self.protection, PROTECTION_BITS)

    @property
    def warning_flags(self) -> frozenset[CanFlag]:
        return _flags(self.warning, WARNING_BITS)

    @property
    def unknown_protection_bits(self) -> int:
        """Set bits no table names (emulators use other positions, §3.2): still a protection."""
        return self.protection & ~_mask(PROTECTION_BITS)

    @property
    def unknown_warning_bits(self) -> int:
        return self.warning & ~_mask(WARNING_BITS)

    @property
    def online_addresses(self) -> tuple[int, ...] | None:
        """Addresses of the online packs (bit n = DIP address n), None when not sent."""
        if self.online_bitmap is None:
            return None
        return tuple(n for n in range(8) if self.online_bitmap >> n & 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Requests:
    """0x35C: charge/discharge enable and the charge requests (table R)."""

    ID: ClassVar[int] = 0x35C
    charge_enable: bool
    discharge_enable: bool
    force_charge_1: bool
    force_charge_2: bool
    full_charge: bool
    raw: int = 0

    @classmethod
    def decode(cls, data: bytes) -> Self:
        (flags,) = _unpack("<B", data, "0x35C")
        return cls(
            charge_enable=bool(flags & 0x80),
            discharge_enable=bool(flags & 0x40),
            force_charge_1=bool(flags & 0x20),
            force_charge_2=bool(flags & 0x10),
            full_charge=bool(flags & 0x08),
            raw=flags,
        )

    def encode(self) -> bytes:
        bits = (
            (self.charge_enable, 0x80),
            (self.discharge_enable, 0x40),
            (self.force_charge_1, 0x20),
            (self.force_charge_2, 0x10),
            (self.full_charge, 0x08),
        )
        return bytes([sum(mask for on, mask in bits if on), 0])


@dataclass(frozen=True, slots=True, kw_only=True)
class Manufacturer:
    """0x35E: manufacturer name, ASCII ("PYLON" + padding)."""

    ID: ClassVar[int] = 0x35E
    name: str

    @classmethod
    def decode(cls, data: bytes) -> Self:
        return cls(name=_ascii(bytes(data[:8])))

    def encode(self) -> bytes:
        return self.name.encode("ascii")[:8].ljust(8, b" ")


@dataclass(frozen=True, slots=True, kw_only=True)
class Capacity:
    """0x354: nominal and remaining capacity, 0.1 Ah (ai-republic)."""

    ID: ClassVar[int] = 0x354
    nominal_ah: float
    remaining_ah: float

    @classmethod
    def decode(cls, data: bytes) -> Self:
        nominal, remaining = _unpack("<HH", data, "0x354")
        return cls(nominal_ah=nominal / 10, remaining_ah=remaining / 10)

    def encode(self) -> bytes:
        return struct.pack("<HH", _u16(self.nominal_ah * 10), _u16(self.remaining_ah * 10)) + bytes(4)


@dataclass(frozen=True, slots=True, kw_only=True)
class SmaAlarms:
    """0x35A: SMA-style items, 2 bits each (01 raised, 10 cleared); bytes 0-3 alarms, 4-7 warnings. Kept raw."""

    ID: ClassVar[int] = 0x35A
    raw: bytes

    @classmethod
    def decode(cls, data: bytes) -> Self:
        _unpack("<8B", data, "0x35A")
        return cls(raw=bytes(data[:8]))

    def encode(self) -> bytes:
        return self.raw

    def _raised(self, part: bytes) -> bool:
        return any((byte >> shift) & 0b11 == 0b01 for byte in part for shift in (0, 2, 4, 6))

    @property
    def alarm_raised(self) -> bool:
        return self._raised(self.raw[:4])

    @property
    def warning_raised(self) -> bool:
        return self._raised(self.raw[4:8])


@dataclass(frozen=True, slots=True, kw_only=True)
class BatteryInfo:
    """0x35F: SMA (type, BMS version, capacity, manufacturer id) or Victron (product, firmware, capacity, hw).

    Both put the capacity (Ah) in bytes 4-5; the rest differs per flavour and is kept raw.
    """

    ID: ClassVar[int] = 0x35F
    capacity_ah: int
    raw: bytes

    @classmethod
    def decode(cls, data: bytes) -> Self:
        _unpack("<6B", data, "0x35F")
        return cls(capacity_ah=struct.unpack_from("<H", data, 4)[0], raw=bytes(data))

    def encode(self) -> bytes:
        return self.raw[:4].ljust(4, b"\0") + struct.pack("<H", _u16(self.capacity_ah)) + self.raw[6:8].ljust(2, b"\0")


@dataclass(frozen=True, slots=True, kw_only=True)
class CellExtremes:
    """Min/max cell voltage (mV) and temperature (°C): 0x370 (Seplos) or 0x373 (SMA/Victron, temperatures in K)."""

    ID: ClassVar[int] = 0x370
    min_cell_mv: int
    max_cell_mv: int
    min_temperature_c: float
    max_temperature_c: float

    @classmethod
    def decode(cls, data: bytes) -> Self:
        # Seplos documents 0.1 °C for the voltages too, evidently a copy error: implementations use mV (§3.3).
        t_max, t_min, v_max, v_min = _unpack("<hhHH", data, "0x370")
        return cls(min_cell_mv=v_min, max_cell_mv=v_max, min_temperature_c=t_min / 10, max_temperature_c=t_max / 10)

    @property
    def plausible(self) -> bool:
        """Discover batteries put ASCII ("Discover") in 0x370; real numbers are LFP cells at battery temperatures."""
        cells_ok = 1000 <= self.min_cell_mv <= self.max_cell_mv <= 5000
        return cells_ok and -60 <= self.min_temperature_c <= self.max_temperature_c <= 150

    def encode(self) -> bytes:
        return struct.pack(
            "<hhHH",
            _s16(self.max_temperature_c * 10),
            _s16(self.min_temperature_c * 10),
            _u16(self.max_cell_mv),
            _u16(self.min_cell_mv),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CellExtremesKelvin(CellExtremes):
    """0x373: min cell mV, max cell mV, min temperature K, max temperature K (u16 each)."""

    ID: ClassVar[int] = 0x373

    @classmethod
    def decode(cls, data: bytes) -> Self:
        v_min, v_max, k_min, k_max = _unpack("<HHHH", data, "0x373")
        return cls(
            min_cell_mv=v_min,
            max_cell_mv=v_max,
            min_temperature_c=round(k_min - 273.15, 2),
            max_temperature_c=round(k_max - 273.15, 2),
        )

    def encode(self) -> bytes:
        return struct.pack(
            "<HHHH",
            _u16(self.min_cell_mv),
            _u16(self.max_cell_mv),
            _u16(self.min_temperature_c + 273.15),
            _u16(self.max_temperature_c + 273.15),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtremeIds:
    """0x371 (Seplos): ids of the max/min cell temperature and max/min cell voltage."""

    ID: ClassVar[int] = 0x371
    max_temperature_id: int
    min_temperature_id: int
    max_cell_id: int
    min_cell_id: int

    @classmethod
    def decode(cls, data: bytes) -> Self:
        t_max, t_min, v_max, v_min = _unpack("<HHHH", data, "0x371")
        return cls(max_temperature_id=t_max, min_temperature_id=t_min, max_cell_id=v_max, min_cell_id=v_min)

    def encode(self) -> bytes:
        return struct.pack(
            "<HHHH",
            *(_u16(v) for v in (self.max_temperature_id, self.min_temperature_id, self.max_cell_id, self.min_cell_id)),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ModuleCounts:
    """0x372: modules online, blocking charge, blocking discharge, offline."""

    ID: ClassVar[int] = 0x372
    online: int
    blocking_charge: int
    blocking_discharge: int
    offline: int

    @classmethod
    def decode(cls, data: bytes) -> Self:
        online, charge, discharge, offline = _unpack("<HHHH", data, "0x372")
        return cls(online=online, blocking_charge=charge, blocking_discharge=discharge, offline=offline)

    def encode(self) -> bytes:
        return struct.pack(
            "<HHHH", *(_u16(v) for v in (self.online, self.blocking_charge, self.blocking_discharge, self.offline))
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class EnergyCounters:
    """0x378: energy charged and discharged by the battery's own count, 0.01 kWh (u32 each)."""

    ID: ClassVar[int] = 0x378
    charged_kwh: float
    discharged_kwh: float

    @classmethod
    def decode(cls, data: bytes) -> Self:
        charged, discharged = _unpack("<II", data, "0x378")
        return cls(charged_kwh=charged / 100, discharged_kwh=discharged / 100)

    def encode(self) -> bytes:
        return struct.pack("<II", _u32(self.charged_kwh * 100), _u32(self.discharged_kwh * 100))


@dataclass(frozen=True, slots=True, kw_only=True)
class InstalledCapacity:
    """0x379: installed capacity, Ah."""

    ID: ClassVar[int] = 0x379
    capacity_ah: int

    @classmethod
    def decode(cls, data: bytes) -> Self:
        (capacity,) = _unpack("<H", data, "0x379")
        return cls(capacity_ah=capacity)

    def encode(self) -> bytes:
        return struct.pack("<H", _u16(self.capacity_ah)) + bytes(6)


@dataclass(frozen=True, slots=True, kw_only=True)
class Text:
    """ASCII where a number was expected (Discover: "Discover" / " AES" in 0x370 / 0x371)."""

    frame_id: int
    text: str


type CanFrame = (
    ChargeLimits
    | StateOfCharge
    | Measurements
    | AlarmFlags
    | Requests
    | Manufacturer
    | Capacity
    | SmaAlarms
    | BatteryInfo
    | CellExtremes
    | ExtremeIds
    | ModuleCounts
    | EnergyCounters
    | InstalledCapacity
    | Text
)

_DECODERS = {
    cls.ID: cls
    for cls in (
        ChargeLimits,
        StateOfCharge,
        Measurements,
        AlarmFlags,
        Requests,
        Manufacturer,
        Capacity,
        SmaAlarms,
        BatteryInfo,
        CellExtremes,
        CellExtremesKelvin,
        ExtremeIds,
        ModuleCounts,
        EnergyCounters,
        InstalledCapacity,
    )
}


def decode(arbitration_id: int, data: bytes) -> CanFrame | None:
    """Decode one 11-bit frame; None for an ID this module does not know. Raises only FrameError."""
    decoder = _DECODERS.get(arbitration_id)
    if decoder is None:
        return None
    data = bytes(data)
    if len(data) > 8:
        raise FrameError(f"0x{arbitration_id:03X}: {len(data)} data bytes, a CAN frame has at most 8")
    frame: CanFrame = decoder.decode(data)
    if arbitration_id in (0x370, 0x371) and not (isinstance(frame, CellExtremes) and frame.plausible):
        try:
            return Text(frame_id=arbitration_id, text=_ascii(data))
        except FrameError:
            if isinstance(frame, CellExtremes):
                raise FrameError(f"0x370: implausible cell extremes {frame}") from None
    return frame


def encode(frame: CanFrame) -> tuple[int, bytes]:
    """(arbitration id, data) of a frame (used by the simulator)."""
    if isinstance(frame, Text):
        return frame.frame_id, frame.text.encode("ascii")[:8].ljust(8, b" ")
    return frame.ID, frame.encode()


@dataclass(frozen=True, slots=True, kw_only=True)
class CanState:
    """The latest frame of each kind heard on the bus, and the system values read from them."""

    limits: ChargeLimits | None = None
    charge_state: StateOfCharge | None = None
    measurements: Measurements | None = None
    alarms: AlarmFlags | None = None
    requests: Requests | None = None
    manufacturer: Manufacturer | None = None
    capacity: Capacity | None = None
    sma_alarms: SmaAlarms | None = None
    battery_info: BatteryInfo | None = None
    cell_extremes: CellExtremes | None = None
    extreme_ids: ExtremeIds | None = None
    module_counts: ModuleCounts | None = None
    energy: EnergyCounters | None = None
    installed_capacity: InstalledCapacity | None = None
    #: ASCII names some batteries send in the extension IDs (Discover), by ID.
    texts: Mapping[int, str] = field(default_factory=dict)
    #: Every known ID heard so far.
    seen: frozenset[int] = frozenset()

    @property
    def complete(self) -> bool:
        """The frames every Pylon battery sends have all been heard."""
        return self.seen >= CORE_IDS

    @property
    def soc_pct(self) -> int | None:
        return None if self.charge_state is None else self.charge_state.soc_pct

    @property
    def soh_pct(self) -> int | None:
        return None if self.charge_state is None else self.charge_state.soh_pct

    @property
    def voltage_v(self) -> float | None:
        return None if self.measurements is None else self.measurements.voltage_v

    @property
    def current_a(self) -> float | None:
        return None if self.measurements is None else self.measurements.current_a

    @property
    def power_w(self) -> float | None:
        """Signed power, + = charging (same sign as the current)."""
        m = self.measurements
        return None if m is None else round(m.voltage_v * m.current_a, 1)

    @property
    def temperature_c(self) -> float | None:
        return None if self.measurements is None else self.measurements.temperature_c

    @property
    def module_count(self) -> int | None:
        return None if self.alarms is None else self.alarms.module_count

    @property
    def protection_active(self) -> bool | None:
        """Any bit in bytes 0/1 of 0x359, named or not (§3.2: treat any non-zero byte as a protection)."""
        return None if self.alarms is None else self.alarms.protection != 0

    @property
    def warning_active(self) -> bool | None:
        return None if self.alarms is None else self.alarms.warning != 0

    def _conditions(self, flags: frozenset[CanFlag]) -> frozenset[Condition]:
        out = {_FLAG_CONDITIONS[f] for f in flags if f in _FLAG_CONDITIONS}
        # The table says "cell" temperature without charge or discharge; the limit that applies is the one of
        # the current direction (as the serial Pylon decoder does with its temperature codes).
        charging = self.current_a is not None and self.current_a >= IDLE_CURRENT_A
        if CanFlag.CELL_OVERTEMPERATURE in flags:
            out.add(Condition.CHARGE_OVERTEMPERATURE if charging else Condition.DISCHARGE_OVERTEMPERATURE)
        if CanFlag.CELL_UNDERTEMPERATURE in flags:
            out.add(Condition.CHARGE_UNDERTEMPERATURE if charging else Condition.DISCHARGE_UNDERTEMPERATURE)
        return frozenset(out)

    @property
    def protections(self) -> frozenset[Condition]:
        return frozenset() if self.alarms is None else self._conditions(self.alarms.protection_flags)

    @property
    def warnings(self) -> frozenset[Condition]:
        return frozenset() if self.alarms is None else self._conditions(self.alarms.warning_flags)

    @property
    def faults(self) -> frozenset[Fault]:
        if self.alarms is None:
            return frozenset()
        flags = self.alarms.protection_flags | self.alarms.warning_flags
        return frozenset(_FLAG_FAULTS[f] for f in flags if f in _FLAG_FAULTS)

    @property
    def online_addresses(self) -> tuple[int, ...] | None:
        return None if self.alarms is None else self.alarms.online_addresses


def fold(state: CanState, arbitration_id: int, data: bytes) -> CanState:
    """The state with one more frame in it; unknown IDs leave it unchanged. Raises only FrameError."""
    frame = decode(arbitration_id, data)
    if frame is None:
        return state
    seen = state.seen | {arbitration_id}
    match frame:
        case Text():
            return replace(state, texts={**state.texts, arbitration_id: frame.text}, seen=seen)
        case ChargeLimits():
            return replace(state, seen=seen, limits=frame)
        case StateOfCharge():
            return replace(state, seen=seen, charge_state=frame)
        case Measurements():
            return replace(state, seen=seen, measurements=frame)
        case AlarmFlags():
            return replace(state, seen=seen, alarms=frame)
        case Requests():
            return replace(state, seen=seen, requests=frame)
        case Manufacturer():
            return replace(state, seen=seen, manufacturer=frame)
        case Capacity():
            return replace(state, seen=seen, capacity=frame)
        case SmaAlarms():
            return replace(state, seen=seen, sma_alarms=frame)
        case BatteryInfo():
            return replace(state, seen=seen, battery_info=frame)
        case CellExtremes():
            return replace(state, seen=seen, cell_extremes=frame)
        case ExtremeIds():
            return replace(state, seen=seen, extreme_ids=frame)
        case ModuleCounts():
            return replace(state, seen=seen, module_counts=frame)
        case EnergyCounters():
            return replace(state, seen=seen, energy=frame)
        case InstalledCapacity():
            return replace(state, seen=seen, installed_capacity=frame)

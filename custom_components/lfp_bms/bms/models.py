"""Frozen data classes for everything the protocol library decodes, shared by every protocol family.

Derived values (cell statistics, SOC/SOH when the BMS does not send them, cluster aggregates) are computed
once, here, when the objects are built; the Home Assistant layer only reads them.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Condition(StrEnum):
    """A physical condition a BMS can flag at warning (alarm) level, protection level, or both.

    The same condition appears in `PackStatus.warnings` and `PackStatus.protections`; the manuals name the
    warning and the protection with different abbreviations (see WARNING_ABBREVIATIONS/PROTECTION_ABBREVIATIONS).
    """

    CELL_OVERVOLTAGE = "cell_overvoltage"
    CELL_UNDERVOLTAGE = "cell_undervoltage"
    PACK_OVERVOLTAGE = "pack_overvoltage"
    PACK_UNDERVOLTAGE = "pack_undervoltage"
    CHARGE_OVERCURRENT = "charge_overcurrent"
    DISCHARGE_OVERCURRENT = "discharge_overcurrent"
    DISCHARGE_OVERCURRENT_2 = "discharge_overcurrent_2"
    SHORT_CIRCUIT = "short_circuit"
    CHARGER_OVERVOLTAGE = "charger_overvoltage"
    CHARGE_OVERTEMPERATURE = "charge_overtemperature"
    DISCHARGE_OVERTEMPERATURE = "discharge_overtemperature"
    CHARGE_UNDERTEMPERATURE = "charge_undertemperature"
    DISCHARGE_UNDERTEMPERATURE = "discharge_undertemperature"
    MOSFET_OVERTEMPERATURE = "mosfet_overtemperature"
    ENVIRONMENT_OVERTEMPERATURE = "environment_overtemperature"
    ENVIRONMENT_UNDERTEMPERATURE = "environment_undertemperature"
    LOW_SOC = "low_soc"
    CELL_IMBALANCE = "cell_imbalance"
    FIRE = "fire"


#: Abbreviations used by the vendor tools and manuals (docs/protocol.md §6 item 7).
PROTECTION_ABBREVIATIONS: Mapping[Condition, str] = {
    Condition.CELL_OVERVOLTAGE: "OVP",
    Condition.CELL_UNDERVOLTAGE: "UVP",
    Condition.PACK_OVERVOLTAGE: "TOVP",
    Condition.PACK_UNDERVOLTAGE: "TUVP",
    Condition.CHARGE_OVERCURRENT: "COCP",
    Condition.DISCHARGE_OVERCURRENT: "DOCP",
    Condition.DISCHARGE_OVERCURRENT_2: "DOCP2",
    Condition.SHORT_CIRCUIT: "SCP",
    Condition.CHARGER_OVERVOLTAGE: "CHVP",
    Condition.CHARGE_OVERTEMPERATURE: "COTP",
    Condition.DISCHARGE_OVERTEMPERATURE: "DOTP",
    Condition.CHARGE_UNDERTEMPERATURE: "CUTP",
    Condition.DISCHARGE_UNDERTEMPERATURE: "DUTP",
    Condition.MOSFET_OVERTEMPERATURE: "MOS OT",
    Condition.ENVIRONMENT_OVERTEMPERATURE: "EOT",
    Condition.ENVIRONMENT_UNDERTEMPERATURE: "EUT",
    Condition.LOW_SOC: "USOCP",
    Condition.CELL_IMBALANCE: "DIFFP",
    Condition.FIRE: "FIRE",
}
WARNING_ABBREVIATIONS: Mapping[Condition, str] = {
    Condition.CELL_OVERVOLTAGE: "OV",
    Condition.CELL_UNDERVOLTAGE: "UV",
    Condition.PACK_OVERVOLTAGE: "TOV",
    Condition.PACK_UNDERVOLTAGE: "TUV",
    Condition.CHARGE_OVERCURRENT: "COC",
    Condition.DISCHARGE_OVERCURRENT: "DOC",
    Condition.DISCHARGE_OVERCURRENT_2: "DOC2",
    Condition.SHORT_CIRCUIT: "SC",
    Condition.CHARGER_OVERVOLTAGE: "CHV",
    Condition.CHARGE_OVERTEMPERATURE: "COT",
    Condition.DISCHARGE_OVERTEMPERATURE: "DOT",
    Condition.CHARGE_UNDERTEMPERATURE: "CUT",
    Condition.DISCHARGE_UNDERTEMPERATURE: "DUT",
    Condition.MOSFET_OVERTEMPERATURE: "MOS OT",
    Condition.ENVIRONMENT_OVERTEMPERATURE: "EOT",
    Condition.ENVIRONMENT_UNDERTEMPERATURE: "EUT",
    Condition.LOW_SOC: "USOC",
    Condition.CELL_IMBALANCE: "DIFF",
    Condition.FIRE: "FIRE",
}


class Fault(StrEnum):
    """Hardware faults (PACE table E, Seplos alarm events 1/8, EG4 balance event)."""

    CHARGE_MOSFET = "charge_mosfet"
    DISCHARGE_MOSFET = "discharge_mosfet"
    TEMPERATURE_SENSOR = "temperature_sensor"
    COMMUNICATION = "communication"
    CELL = "cell"
    SAMPLING = "sampling"
    CCB = "ccb"
    HEATER = "heater"
    VOLTAGE_SENSOR = "voltage_sensor"
    CURRENT_SENSOR = "current_sensor"
    POWER_SWITCH = "power_switch"
    CURRENT_LIMITER = "current_limiter"
    EEPROM = "eeprom"
    CLOCK = "clock"


FAULT_ABBREVIATIONS: Mapping[Fault, str] = {
    Fault.CHARGE_MOSFET: "chg MOS",
    Fault.DISCHARGE_MOSFET: "dhg MOS",
    Fault.TEMPERATURE_SENSOR: "NTC",
    Fault.COMMUNICATION: "COMM",
    Fault.CELL: "Cells",
    Fault.SAMPLING: "Sample",
    Fault.CCB: "CCB",
    Fault.HEATER: "HEAT",
    Fault.VOLTAGE_SENSOR: "VSENS",
    Fault.CURRENT_SENSOR: "ISENS",
    Fault.POWER_SWITCH: "KEY",
    Fault.CURRENT_LIMITER: "LIMIT",
    Fault.EEPROM: "EEPROM",
    Fault.CLOCK: "RTC",
}


class AlarmLevel(StrEnum):
    """Severity of an active flag: the BMS acted on it (protection), only warns, or reports broken hardware."""

    PROTECTION = "protection"
    WARNING = "warning"
    FAULT = "fault"


@dataclass(frozen=True, slots=True, order=True)
class Alarm:
    """One active flag of a pack: a Condition at protection or warning level, or a Fault."""

    level: AlarmLevel
    flag: Condition | Fault

    @property
    def abbreviation(self) -> str:
        """The manuals' short name (the same condition is OVP as a protection and OV as a warning)."""
        if isinstance(self.flag, Fault):
            return FAULT_ABBREVIATIONS[self.flag]
        table = PROTECTION_ABBREVIATIONS if self.level is AlarmLevel.PROTECTION else WARNING_ABBREVIATIONS
        return table[self.flag]


class OperatingState(StrEnum):
    """One word for what a pack is doing, for an enum sensor."""

    CHARGING = "charging"
    DISCHARGING = "discharging"
    IDLE = "idle"
    FULLY_CHARGED = "fully_charged"
    PROTECTION = "protection"
    FAULT = "fault"


#: Below this magnitude the packs report "no current" (docs/protocol.md §6 item 1: 0.5 A reporting threshold).
IDLE_CURRENT_A = 0.5


@dataclass(frozen=True, slots=True)
class CellStats:
    """Min/max/avg/spread of a pack's cell voltages; cell numbers are 1-based."""

    min_mv: int
    min_cell: int
    max_mv: int
    max_cell: int
    avg_mv: float
    delta_mv: int

    @classmethod
    def from_cells(cls, cells: tuple[int, ...]) -> CellStats | None:
        """Statistics of a cell list, None when there are no cells."""
        if not cells:
            return None
        lo = min(range(len(cells)), key=cells.__getitem__)
        hi = max(range(len(cells)), key=cells.__getitem__)
        return cls(
            min_mv=cells[lo],
            min_cell=lo + 1,
            max_mv=cells[hi],
            max_cell=hi + 1,
            avg_mv=round(sum(cells) / len(cells), 1),
            delta_mv=cells[hi] - cells[lo],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PackAnalog:
    """Analog values of one pack (PACE/Pylon/Seplos/EG4 command 0x42), in SI-ish units.

    `temperatures_c` is every sensor in wire order; the named fields pick cell, MOSFET and environment sensors
    out of it according to the protocol. `soc_pct`/`soh_pct` come from the BMS when it sends them
    (`soc_reported`), otherwise they are derived from the capacities.
    """

    address: int
    cell_voltages_mv: tuple[int, ...]
    temperatures_c: tuple[float, ...]
    cell_temperatures_c: tuple[float, ...]
    mosfet_temperature_c: float | None
    environment_temperature_c: float | None
    current_a: float
    voltage_v: float
    remaining_ah: float
    full_ah: float
    design_ah: float | None
    cycles: int
    soc_pct: float
    soh_pct: float | None
    soc_reported: bool = False
    #: The "user-defined" P byte, a variant hint only (docs/protocol.md §1.9.2).
    marker: int | None = None
    #: Undecoded variant tail bytes after the fixed record (kept for diagnostics).
    tail: bytes = b""
    #: Protocol-specific extras (e.g. EG4 cumulative counters, Seplos port voltage), name → value.
    extra: Mapping[str, float] = field(default_factory=dict)
    cells: CellStats | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cells", CellStats.from_cells(self.cell_voltages_mv))

    @property
    def absent(self) -> bool:
        """A broadcast record of a pack that does not answer: every cell voltage is zero."""
        return not any(self.cell_voltages_mv)

    @property
    def power_w(self) -> float:
        """Signed power, + = charging (same sign as the current)."""
        return round(self.voltage_v * self.current_a, 2)

    @property
    def max_temperature_c(self) -> float | None:
        """Highest of all sensors."""
        return max(self.temperatures_c) if self.temperatures_c else None


@dataclass(frozen=True, slots=True, kw_only=True)
class PackStatus:
    """Alarm and switch state of one pack (command 0x44). None = this protocol does not report it."""

    address: int
    protections: frozenset[Condition] = frozenset()
    warnings: frozenset[Condition] = frozenset()
    faults: frozenset[Fault] = frozenset()
    charge_mos_on: bool | None = None
    discharge_mos_on: bool | None = None
    charging: bool | None = None
    discharging: bool | None = None
    heater_on: bool | None = None
    fully_charged: bool | None = None
    balancing_cells: tuple[int, ...] = ()
    buzzer_enabled: bool | None = None
    led_alarm_enabled: bool | None = None
    limiter_enabled: bool | None = None
    limiter_low_gear: bool | None = None
    #: Per-cell / per-sensor alarm value codes (00 normal, 01 below, 02 above, F0 other).
    cell_alarm_codes: tuple[int, ...] = ()
    temperature_alarm_codes: tuple[int, ...] = ()
    #: Charge-current, pack-voltage and discharge-current alarm value codes (same coding; PACE/Pylon 0x44).
    charge_current_alarm_code: int | None = None
    pack_voltage_alarm_code: int | None = None
    discharge_current_alarm_code: int | None = None
    #: The pack's record bytes as received (diagnostics).
    raw: bytes = b""

    @property
    def balancing(self) -> bool:
        """True while any cell is being balanced."""
        return bool(self.balancing_cells)

    @property
    def alarms(self) -> frozenset[Alarm]:
        """Every active flag at every level."""
        return frozenset(
            [Alarm(AlarmLevel.PROTECTION, c) for c in self.protections]
            + [Alarm(AlarmLevel.WARNING, c) for c in self.warnings]
            + [Alarm(AlarmLevel.FAULT, f) for f in self.faults]
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PackIdentity:
    """Identity strings of the directly connected pack (PACE 0xC1/0xC2, Pylon/Seplos/EG4 0x51/0x93)."""

    model: str | None = None
    firmware: str | None = None
    manufacturer: str | None = None
    bms_serial: str | None = None
    pack_serial: str | None = None

    @property
    def serial(self) -> str | None:
        """The best unique serial: the pack serial, else the BMS board serial."""
        return self.pack_serial or self.bms_serial


class Quantity(StrEnum):
    """A reported quantity with a plausible range (bms/plausibility.py); also the repair issue naming it."""

    CELL_VOLTAGE = "cell_voltage"
    PACK_VOLTAGE = "pack_voltage"
    TEMPERATURE = "temperature"
    STATE_OF_CHARGE = "soc"
    STATE_OF_HEALTH = "soh"
    CURRENT = "current"
    CAPACITY = "capacity"


@dataclass(frozen=True, slots=True, kw_only=True)
class Implausible:
    """A reported value outside the range the battery can physically produce (`low`..`high`, in `unit`)."""

    quantity: Quantity
    value: float
    low: float
    high: float
    unit: str

    def __str__(self) -> str:
        return f"{self.quantity} {self.value:g} {self.unit} outside {self.low:g}..{self.high:g} {self.unit}"


#: PackReading.error of a pack whose record was checksum-valid but implausible.
IMPLAUSIBLE = "implausible"


@dataclass(frozen=True, slots=True, kw_only=True)
class PackReading:
    """What one poll learned about one pack. `error` is set (and the data None) when the pack did not answer, or
    answered with an implausible record (`error` IMPLAUSIBLE, `implausible` says which value)."""

    address: int
    analog: PackAnalog | None = None
    status: PackStatus | None = None
    error: str | None = None
    implausible: Implausible | None = None

    @property
    def online(self) -> bool:
        """The pack answered with real data this poll."""
        return self.error is None and self.analog is not None and not self.analog.absent

    @property
    def operating_state(self) -> OperatingState | None:
        """Derived one-word state, most severe first; None while the pack is offline."""
        if not self.online or self.analog is None:
            return None
        status = self.status
        if status is not None and status.faults:
            return OperatingState.FAULT
        if status is not None and status.protections:
            return OperatingState.PROTECTION
        if self.analog.current_a >= IDLE_CURRENT_A:
            return OperatingState.CHARGING
        if self.analog.current_a <= -IDLE_CURRENT_A:
            return OperatingState.DISCHARGING
        if status is not None and status.fully_charged:
            return OperatingState.FULLY_CHARGED
        return OperatingState.IDLE


@dataclass(frozen=True, slots=True, kw_only=True)
class CellExtreme:
    """A cell voltage together with where it is."""

    mv: int
    address: int
    cell: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterSummary:
    """Aggregates over the packs online in one poll."""

    packs_online: int
    soc_pct: float | None
    voltage_v: float | None
    current_a: float
    power_w: float
    remaining_ah: float
    full_ah: float
    stored_energy_kwh: float
    highest_cell: CellExtreme | None
    lowest_cell: CellExtreme | None
    cell_spread_mv: int | None
    max_temperature_c: float | None

    @classmethod
    def from_packs(cls, packs: Mapping[int, PackReading]) -> ClusterSummary:
        """Capacity-weighted SOC, summed currents and capacities, extremes over every online pack."""
        online = [p.analog for p in packs.values() if p.online and p.analog is not None]
        full = sum(a.full_ah for a in online)
        remaining = sum(a.remaining_ah for a in online)
        if full > 0:
            soc: float | None = round(sum(a.soc_pct * a.full_ah for a in online) / full, 1)
        elif online:
            soc = round(sum(a.soc_pct for a in online) / len(online), 1)
        else:
            soc = None
        voltage = round(sum(a.voltage_v for a in online) / len(online), 3) if online else None
        current = round(sum(a.current_a for a in online), 2)
        power = round(sum(a.power_w for a in online), 1)
        stored = round(sum(a.remaining_ah * a.voltage_v for a in online) / 1000, 3)
        highs = [CellExtreme(mv=a.cells.max_mv, address=a.address, cell=a.cells.max_cell) for a in online if a.cells]
        lows = [CellExtreme(mv=a.cells.min_mv, address=a.address, cell=a.cells.min_cell) for a in online if a.cells]
        highest = max(highs, key=lambda c: c.mv, default=None)
        lowest = min(lows, key=lambda c: c.mv, default=None)
        temps = [t for a in online if (t := a.max_temperature_c) is not None]
        return cls(
            packs_online=len(online),
            soc_pct=soc,
            voltage_v=voltage,
            current_a=current,
            power_w=power,
            remaining_ah=round(remaining, 2),
            full_ah=round(full, 2),
            stored_energy_kwh=stored,
            highest_cell=highest,
            lowest_cell=lowest,
            cell_spread_mv=highest.mv - lowest.mv if highest and lowest else None,
            max_temperature_c=max(temps) if temps else None,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemInfo:
    """Totals a master BMS keeps for its whole parallel group (Seplos V3 EIA/EIB), as the master reports them.

    Optional fields are None when the master did not answer that block.
    """

    voltage_v: float
    current_a: float
    remaining_ah: float
    full_ah: float
    rated_ah: float
    discharged_ah: float
    #: Slave ids the master sees online / in protection (bit n of its bitmaps = pack n).
    online_packs: tuple[int, ...]
    protected_packs: tuple[int, ...]
    max_charge_current_a: float
    max_discharge_current_a: float
    suggested_max_voltage_v: float
    suggested_min_voltage_v: float
    pack_count: int
    cycles: int
    soc_pct: float
    soh_pct: float
    max_cell_mv: int | None = None
    min_cell_mv: int | None = None
    max_pack_voltage_v: float | None = None
    min_pack_voltage_v: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterState:
    """One full refresh of the cluster: a reading per expected pack address, and the aggregates."""

    packs: Mapping[int, PackReading]
    summary: ClusterSummary = field(init=False)
    #: Records a broadcast reply carried beyond the expected addresses (a pack added since detection), keyed by
    #: the address their position gives. Not in `packs` nor in the summary until the caller expects them.
    unexpected: Mapping[int, PackReading] = field(default_factory=dict)
    #: The master's own totals for the group, where the protocol has them (Seplos V3); not used by the summary.
    system: SystemInfo | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "summary", ClusterSummary.from_packs(self.packs))

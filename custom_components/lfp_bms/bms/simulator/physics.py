"""Deterministic physics of a cluster of 51.2 V LiFePO4 packs, stepped on a simulated clock.

Pure Python, no asyncio and no wall clock: the same seed, configuration and `advance()` calls always give the
same state. Each pack has cells with their own capacity, resistance and self-discharge (so they drift apart),
a BMS coulomb counter, a thermal mass, balancing, a heater, warnings/protections driven by its protection
settings (the PACE parameter groups in physical units), MOSFET switches and a BMS clock. The cluster shares a
load profile between the packs that can take current. Ground-truth energy counters integrate terminal V·I
(trapezoidal per step) and are never put on the wire.
"""

import math
import random
from abc import ABC, abstractmethod
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ..models import IDLE_CURRENT_A, Condition, PackAnalog, PackStatus

#: LFP open-circuit voltage vs state of charge: steep ends (2.50 V empty, 3.65 V full), flat 3.2-3.35 V plateau.
OCV_CURVE: tuple[tuple[float, float], ...] = (
    (0.00, 2.500),
    (0.02, 2.900),
    (0.05, 3.050),
    (0.10, 3.180),
    (0.20, 3.220),
    (0.30, 3.250),
    (0.40, 3.268),
    (0.50, 3.280),
    (0.60, 3.290),
    (0.70, 3.300),
    (0.80, 3.318),
    (0.90, 3.335),
    (0.95, 3.350),
    (0.98, 3.400),
    (0.99, 3.450),
    (1.00, 3.650),
)
_OCV_SOC = tuple(p[0] for p in OCV_CURVE)
#: Beyond the ends the voltage keeps moving steeply, so an unprotected cell visibly runs away.
_OVERRUN_V_PER_SOC = 8.0

#: Recovery time of an over-current protection (docs/protocol.md §6 item 4: after the system delay).
OVERCURRENT_RELEASE_S = 60.0
#: Passive balancing bleed current per cell.
BALANCE_CURRENT_A = 0.1
#: Heater (docs/protocol.md §6 item 5): on at T <= 5 °C while a charger offers >= 0.08 C, off at T >= 12 °C.
HEATER_ON_C = 5.0
HEATER_OFF_C = 12.0
HEATER_POWER_W = 150.0
#: A power-on-reset (0x9C shutdown) keeps the BMS silent for this long.
REBOOT_S = 3.0
HISTORY_LENGTH = 400
#: Nominal LFP cell voltage, used by BMS energy estimates (not by the ground truth).
NOMINAL_CELL_V = 3.2

_CHARGE_BLOCKING = frozenset(
    {
        Condition.CELL_OVERVOLTAGE,
        Condition.PACK_OVERVOLTAGE,
        Condition.CHARGE_OVERCURRENT,
        Condition.CHARGE_OVERTEMPERATURE,
        Condition.CHARGE_UNDERTEMPERATURE,
        Condition.MOSFET_OVERTEMPERATURE,
        Condition.ENVIRONMENT_OVERTEMPERATURE,
        Condition.ENVIRONMENT_UNDERTEMPERATURE,
    }
)
_DISCHARGE_BLOCKING = frozenset(
    {
        Condition.CELL_UNDERVOLTAGE,
        Condition.PACK_UNDERVOLTAGE,
        Condition.DISCHARGE_OVERCURRENT,
        Condition.DISCHARGE_OVERCURRENT_2,
        Condition.DISCHARGE_OVERTEMPERATURE,
        Condition.DISCHARGE_UNDERTEMPERATURE,
        Condition.MOSFET_OVERTEMPERATURE,
        Condition.ENVIRONMENT_OVERTEMPERATURE,
        Condition.ENVIRONMENT_UNDERTEMPERATURE,
    }
)


def ocv(soc: float) -> float:
    """Open-circuit cell voltage (V) at a state of charge (0..1, overrun allowed)."""
    if soc <= 0.0:
        return OCV_CURVE[0][1] + soc * _OVERRUN_V_PER_SOC
    if soc >= 1.0:
        return OCV_CURVE[-1][1] + (soc - 1.0) * _OVERRUN_V_PER_SOC
    i = bisect_right(_OCV_SOC, soc)
    (s0, v0), (s1, v1) = OCV_CURVE[i - 1], OCV_CURVE[i]
    return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)


# --- load profiles ------------------------------------------------------------------------------------------


class Profile(ABC):
    """Cluster current (A, + = charge) requested by the inverter at simulated time t (s)."""

    @abstractmethod
    def current_at(self, t: float) -> float:
        """The requested current at `t`."""

    def next_change(self, t: float) -> float | None:
        """The next time after t at which the current jumps (steps never straddle it), None if never."""
        return None


@dataclass(frozen=True, slots=True)
class ConstantProfile(Profile):
    current_a: float = 0.0

    def current_at(self, t: float) -> float:
        return self.current_a


@dataclass(frozen=True, slots=True)
class SineDayProfile(Profile):
    """Solar-like day: charge peaking at noon between sunrise and sunset, a constant discharge at night.

    `start_hour` is the time of day at simulated t = 0.
    """

    peak_charge_a: float = 50.0
    night_discharge_a: float = 20.0
    sunrise_hour: float = 6.0
    sunset_hour: float = 18.0
    start_hour: float = 0.0

    def current_at(self, t: float) -> float:
        hour = (self.start_hour + t / 3600.0) % 24.0
        if self.sunrise_hour <= hour < self.sunset_hour:
            phase = (hour - self.sunrise_hour) / (self.sunset_hour - self.sunrise_hour)
            return self.peak_charge_a * math.sin(math.pi * phase)
        return -self.night_discharge_a


@dataclass(frozen=True, slots=True)
class ScriptedProfile(Profile):
    """A list of (duration_s, current_a) steps; after the last one the current is 0 (or it repeats)."""

    steps: tuple[tuple[float, float], ...]
    repeat: bool = False

    def _total(self) -> float:
        return sum(d for d, _ in self.steps)

    def _locate(self, t: float) -> tuple[float, float] | None:
        total = self._total()
        if total <= 0 or (t >= total and not self.repeat):
            return None
        base = (t // total) * total if self.repeat else 0.0
        start = base
        for duration, current in self.steps:
            if t < start + duration:
                return start + duration, current
            start += duration
        return None

    def current_at(self, t: float) -> float:
        found = self._locate(t)
        return 0.0 if found is None else found[1]

    def next_change(self, t: float) -> float | None:
        found = self._locate(t)
        return None if found is None else found[0]


# --- configuration --------------------------------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class ProtectionSettings:
    """One BMS's protection/behaviour parameters in physical units (the PACE parameter groups,
    docs/protocol.md §1.9.12).

    Defaults are the values read from a real 16S pack (tests/data/captures.md §A.4); pack voltages scale with the cell
    count.
    """

    cell_ov_alarm_mv: int = 3600
    cell_ov_protect_mv: int = 3700
    cell_ov_release_mv: int = 3380
    cell_ov_delay_s: float = 1.0
    pack_ov_alarm_mv: int = 57600
    pack_ov_protect_mv: int = 59200
    pack_ov_release_mv: int = 54000
    pack_ov_delay_s: float = 1.0
    cell_uv_alarm_mv: int = 2800
    cell_uv_protect_mv: int = 2500
    cell_uv_release_mv: int = 2900
    cell_uv_delay_s: float = 1.0
    pack_uv_alarm_mv: int = 44800
    pack_uv_protect_mv: int = 40000
    pack_uv_release_mv: int = 46400
    pack_uv_delay_s: float = 1.0
    charge_oc_alarm_a: int = 104
    charge_oc_protect_a: int = 110
    charge_oc_delay_s: float = 1.0
    discharge_oc_alarm_a: int = 105
    discharge_oc_protect_a: int = 110
    discharge_oc_delay_s: float = 1.0
    discharge_oc2_protect_a: int = 150
    discharge_oc2_delay_s: float = 0.1
    short_circuit_delay_us: int = 300
    balance_start_mv: int = 3400
    balance_delta_mv: int = 30
    sleep_cell_mv: int = 3100
    sleep_delay_min: int = 5
    full_charge_mv: int = 56000
    full_charge_ma: int = 2000
    low_soc_pct: int = 5
    charge_ot_alarm_c: float = 51.0
    charge_ot_protect_c: float = 55.0
    charge_ot_release_c: float = 50.0
    discharge_ot_alarm_c: float = 56.0
    discharge_ot_protect_c: float = 60.0
    discharge_ot_release_c: float = 55.0
    charge_ut_alarm_c: float = 0.0
    charge_ut_protect_c: float = -5.0
    charge_ut_release_c: float = 0.0
    discharge_ut_alarm_c: float = -15.0
    discharge_ut_protect_c: float = -20.0
    discharge_ut_release_c: float = -15.0
    mos_ot_alarm_c: float = 90.0
    mos_ot_protect_c: float = 110.0
    mos_ot_release_c: float = 85.0
    env_ut_alarm_c: float = -20.0
    env_ut_protect_c: float = -25.0
    env_ut_release_c: float = -20.0
    env_ot_alarm_c: float = 65.0
    env_ot_protect_c: float = 70.0
    env_ot_release_c: float = 65.0
    limiter_start_a: int = 100
    can_protocol: int = 0x13
    rs485_protocol: int = 0x14
    protocol_type: int = 0x00

    @classmethod
    def for_cells(cls, cells: int) -> ProtectionSettings:
        """Defaults with the pack-voltage thresholds scaled from 16 cells to `cells`."""
        base = cls()
        if cells == 16:
            return base

        def scale(mv: int) -> int:
            return round(mv * cells / 16 / 10) * 10

        return replace(
            base,
            pack_ov_alarm_mv=scale(base.pack_ov_alarm_mv),
            pack_ov_protect_mv=scale(base.pack_ov_protect_mv),
            pack_ov_release_mv=scale(base.pack_ov_release_mv),
            pack_uv_alarm_mv=scale(base.pack_uv_alarm_mv),
            pack_uv_protect_mv=scale(base.pack_uv_protect_mv),
            pack_uv_release_mv=scale(base.pack_uv_release_mv),
            full_charge_mv=scale(base.full_charge_mv),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PackSpec:
    """Hardware of one pack: address on the bus, cell/sensor counts, 0x25 tail variant (0, 1, 8 or 14 bytes)."""

    address: int
    cells: int = 16
    temperatures: int = 6
    tail: int = 0
    design_ah: float = 100.0

    def __post_init__(self) -> None:
        if self.cells not in (8, 15, 16):
            raise ValueError(f"cells must be 8, 15 or 16, not {self.cells}")
        if self.temperatures not in (4, 6):
            raise ValueError(f"temperatures must be 4 or 6, not {self.temperatures}")
        if self.tail not in (0, 1, 8, 14):
            raise ValueError(f"tail must be 0, 1, 8 or 14 bytes, not {self.tail}")


@dataclass(frozen=True, slots=True, kw_only=True)
class PhysicsConfig:
    """Cluster-wide physics knobs."""

    initial_soc: float = 0.5
    ambient_c: float = 25.0
    #: Peak-to-peak daily swing of the ambient temperature (coldest at 04:00 simulated time of day).
    ambient_swing_c: float = 0.0
    #: Longest physics step; long advances are split into steps of this size (and at profile jumps).
    step_s: float = 2.0
    #: Charger constant-voltage limit per cell; charge current tapers as the pack approaches it.
    charger_cv_per_cell_v: float = 3.52
    #: BMS clock at simulated t = 0 (wall-clock-free so that runs are reproducible).
    start_time: datetime = datetime(2025, 6, 1, 0, 0, 0)
    #: A history record is stored this often, besides one per warning/protection change.
    history_period_s: float = 1800.0
    cell_resistance_ohm: float = 0.0008
    #: Thermal: heat capacity (J/K) and loss to ambient (W/K) of one 100 Ah pack.
    heat_capacity_j_per_k: float = 40000.0
    heat_loss_w_per_k: float = 2.5


# --- state ----------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Cell:
    capacity_ah: float
    soc: float
    resistance_ohm: float
    #: Self-discharge current; a few µA to mA that differ per cell, so SOCs drift apart over days.
    leak_a: float


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryRecord:
    """One stored history event (PACE 0xA1 record), values as the BMS measured them."""

    time: datetime
    cell_voltages_mv: tuple[int, ...]
    temperatures_c: tuple[float, ...]
    current_a: float
    voltage_v: float
    remaining_ah: float
    full_ah: float
    protections: frozenset[Condition]
    warnings: frozenset[Condition]
    reason: str


@dataclass(slots=True, kw_only=True)
class EnergyCounters:
    """Ground truth (never on the wire): energy and charge through the pack terminals."""

    charged_wh: float = 0.0
    discharged_wh: float = 0.0
    charged_ah: float = 0.0
    discharged_ah: float = 0.0


@dataclass(slots=True, kw_only=True)
class _Threshold:
    """A warning/protection level check on one measured value."""

    condition: Condition
    value: Callable[[PackModel], float]
    alarm: Callable[[ProtectionSettings], float]
    protect: Callable[[ProtectionSettings], float]
    release: Callable[[ProtectionSettings], float]
    delay: Callable[[ProtectionSettings], float]
    above: bool


def _limit(
    condition: Condition,
    value: Callable[[PackModel], float],
    prefix: str,
    *,
    above: bool,
    unit: str,
    delay: str | None = None,
) -> _Threshold:
    def getter(name: str) -> Callable[[ProtectionSettings], float]:
        return lambda s: float(getattr(s, name))

    return _Threshold(
        condition=condition,
        value=value,
        alarm=getter(f"{prefix}_alarm_{unit}"),
        protect=getter(f"{prefix}_protect_{unit}"),
        release=getter(f"{prefix}_release_{unit}"),
        delay=getter(delay) if delay else (lambda s: 1.0),
        above=above,
    )


_THRESHOLDS: tuple[_Threshold, ...] = (
    _limit(
        Condition.CELL_OVERVOLTAGE, lambda p: max(p.cell_mv), "cell_ov", above=True, unit="mv", delay="cell_ov_delay_s"
    ),
    _limit(
        Condition.PACK_OVERVOLTAGE, lambda p: p.voltage_mv, "pack_ov", above=True, unit="mv", delay="pack_ov_delay_s"
    ),
    _limit(
        Condition.CELL_UNDERVOLTAGE,
        lambda p: min(p.cell_mv),
        "cell_uv",
        above=False,
        unit="mv",
        delay="cell_uv_delay_s",
    ),
    _limit(
        Condition.PACK_UNDERVOLTAGE, lambda p: p.voltage_mv, "pack_uv", above=False, unit="mv", delay="pack_uv_delay_s"
    ),
    _limit(Condition.CHARGE_OVERTEMPERATURE, lambda p: max(p.cell_temps_c), "charge_ot", above=True, unit="c"),
    _limit(Condition.DISCHARGE_OVERTEMPERATURE, lambda p: max(p.cell_temps_c), "discharge_ot", above=True, unit="c"),
    _limit(Condition.CHARGE_UNDERTEMPERATURE, lambda p: min(p.cell_temps_c), "charge_ut", above=False, unit="c"),
    _limit(Condition.DISCHARGE_UNDERTEMPERATURE, lambda p: min(p.cell_temps_c), "discharge_ut", above=False, unit="c"),
    _limit(Condition.MOSFET_OVERTEMPERATURE, lambda p: p.mos_temp_c, "mos_ot", above=True, unit="c"),
    _limit(Condition.ENVIRONMENT_OVERTEMPERATURE, lambda p: p.env_temp_c, "env_ot", above=True, unit="c"),
    _limit(Condition.ENVIRONMENT_UNDERTEMPERATURE, lambda p: p.env_temp_c, "env_ut", above=False, unit="c"),
)


class PackModel:
    """One pack with its BMS. Mutated only by the cluster's step and by BMS commands."""

    cell_mv: tuple[int, ...]
    voltage_mv: int
    cell_temp_c: float
    mos_temp_c: float
    env_temp_c: float

    def __init__(self, spec: PackSpec, config: PhysicsConfig, rng: random.Random) -> None:
        self.spec = spec
        self.settings = ProtectionSettings.for_cells(spec.cells)
        self._config = config
        self.full_ah = round(spec.design_ah * rng.uniform(0.99, 1.04), 2)
        self.cells = [
            Cell(
                capacity_ah=self.full_ah * rng.gauss(1.0, 0.01),
                soc=min(1.0, max(0.0, config.initial_soc + rng.gauss(0.0, 0.004))),
                resistance_ohm=config.cell_resistance_ohm * rng.uniform(0.9, 1.2),
                leak_a=rng.uniform(0.0005, 0.003),
            )
            for _ in range(spec.cells)
        ]
        self.remaining_ah = self.full_ah * config.initial_soc
        self.cycles = rng.randint(0, 40)
        self._discharged_since_cycle_ah = 0.0
        self.cell_temp_c = config.ambient_c
        self.mos_temp_c = config.ambient_c
        self.env_temp_c = config.ambient_c
        n_cell_sensors = spec.temperatures - 2
        self._sensor_offsets = [rng.uniform(-0.4, 0.4) for _ in range(n_cell_sensors)]
        self.current_a = 0.0
        self.charge_mos_command_on = True
        self.discharge_mos_command_on = True
        # Switch states as read from a real pack (control byte 00, tests/data/captures.md §A.1 #4).
        self.buzzer_enabled = False
        self.led_alarm_enabled = False
        self.limiter_enabled = False
        self.limiter_low_gear = False
        self.protections: set[Condition] = set()
        self.warnings: set[Condition] = set()
        self._pending: dict[Condition, float] = {}
        self._oc_release_at: dict[Condition, float] = {}
        self.balancing: tuple[int, ...] = ()
        self.heater_on = False
        self.fully_charged = False
        self.online = True
        #: Low-power mode (docs/protocol.md §6 item 3: min cell below the sleep voltage, idle, for the sleep delay).
        self.dormant = False
        self._dormant_pending_s = 0.0
        self.reboot_until = -1.0
        self.energy = EnergyCounters()
        #: The BMS's own counters (EG4 reports them): current as measured (10 mA), energy at nominal voltage.
        self.bms_counters = EnergyCounters()
        self.clock_offset_s = 0.0
        self.clock_drift_ppm = rng.uniform(-30.0, 30.0)
        self.history: deque[HistoryRecord] = deque(maxlen=HISTORY_LENGTH)
        serial_digits = "".join(rng.choice("0123456789") for _ in range(10))
        self.model = f"P{spec.cells}S{round(spec.design_ah):d}A-1812-1.00"
        self.bms_serial = f"{spec.cells}08{serial_digits}"[:20].ljust(20)
        self.pack_serial = f"SQLR05{spec.address:02d}{serial_digits}{rng.randrange(10000):04d}"[:20].ljust(20)
        self.cell_mv = ()
        self.voltage_mv = 0
        self._measure()

    # -- measured values

    @property
    def address(self) -> int:
        return self.spec.address

    def _cell_voltages(self, current_a: float) -> list[float]:
        derate = 1.0 + max(0.0, 25.0 - self.cell_temp_c) * 0.02
        return [ocv(c.soc) + current_a * c.resistance_ohm * derate for c in self.cells]

    def terminal_voltage(self, current_a: float) -> float:
        return sum(self._cell_voltages(current_a))

    @property
    def resistance_ohm(self) -> float:
        return sum(c.resistance_ohm for c in self.cells)

    @property
    def cell_temps_c(self) -> tuple[float, ...]:
        return tuple(self.cell_temp_c + off for off in self._sensor_offsets)

    @property
    def soc_pct(self) -> float:
        return round(100.0 * self.remaining_ah / self.full_ah, 1) if self.full_ah else 0.0

    @property
    def soh_pct(self) -> float:
        return min(100.0, round(100.0 * self.full_ah / self.spec.design_ah, 1))

    @property
    def true_soc(self) -> float:
        """Mean SOC of the cells (ground truth, not the BMS's counter)."""
        return sum(c.soc for c in self.cells) / len(self.cells)

    def _measure(self) -> None:
        volts = self._cell_voltages(self.current_a)
        self.cell_mv = tuple(round(v * 1000) for v in volts)
        self.voltage_mv = sum(self.cell_mv)

    @property
    def charge_mos_on(self) -> bool:
        """The charge MOSFET conducts: switched on by command and no charge-blocking protection."""
        return self.charge_mos_command_on and not (self.protections & _CHARGE_BLOCKING)

    @property
    def discharge_mos_on(self) -> bool:
        return self.discharge_mos_command_on and not (self.protections & _DISCHARGE_BLOCKING)

    @property
    def reachable(self) -> bool:
        """The BMS is powered and talks (not offline, not in low-power mode)."""
        return self.online and not self.dormant

    def clock(self, t: float) -> datetime:
        """The BMS's own clock at simulated time t: drifts a few ppm, settable."""
        elapsed = t * (1.0 + self.clock_drift_ppm * 1e-6) + self.clock_offset_s
        return (self._config.start_time + timedelta(seconds=elapsed)).replace(microsecond=0)

    def set_clock(self, t: float, when: datetime) -> None:
        self.clock_offset_s += (when - self.clock(t)).total_seconds()

    # -- commands (the BMS's own rules, docs/protocol.md §1.9.7)

    def command_mos(self, *, charge: bool, on: bool) -> bool:
        """Switch a MOSFET by command. Returns False (refused) per the rules seen on real packs."""
        if on:
            if charge:
                self.charge_mos_command_on = True
            else:
                self.discharge_mos_command_on = True
            return True
        other_on = self.discharge_mos_command_on if charge else self.charge_mos_command_on
        if not other_on:
            return False  # never both off
        if charge and self.current_a <= -IDLE_CURRENT_A:
            return False  # charge MOSFET cannot go off while discharging
        if not charge and self.current_a >= IDLE_CURRENT_A:
            return False  # and the discharge MOSFET not while charging
        if charge:
            self.charge_mos_command_on = False
        else:
            self.discharge_mos_command_on = False
        return True

    def reboot(self, t: float) -> None:
        """0x9C shutdown: an idle pack powers down and comes back (looks like a reboot)."""
        self.charge_mos_command_on = True
        self.discharge_mos_command_on = True
        self.reboot_until = t + REBOOT_S

    def apply_settings(self, settings: ProtectionSettings) -> None:
        self.settings = settings

    # -- stepping

    def max_charge_current(self) -> float:
        """What the charger's constant-voltage limit lets this pack take now."""
        cv = self._config.charger_cv_per_cell_v * self.spec.cells
        open_circuit = self.terminal_voltage(0.0)
        return max(0.0, (cv - open_circuit) / self.resistance_ohm)

    def step(self, t: float, dt: float, current_a: float, ambient_c: float, charger_present: bool) -> None:
        """Advance this pack by dt seconds carrying `current_a` at its terminals (+ = charge)."""
        v_before = self.terminal_voltage(current_a)
        balancing = set(self.balancing)
        for i, cell in enumerate(self.cells):
            bleed = BALANCE_CURRENT_A if i + 1 in balancing else 0.0
            cell.soc += (current_a - cell.leak_a - bleed) * dt / 3600.0 / cell.capacity_ah
        v_after = self.terminal_voltage(current_a)
        ah = current_a * dt / 3600.0
        wh = current_a * (v_before + v_after) / 2.0 * dt / 3600.0
        if current_a > 0:
            self.energy.charged_ah += ah
            self.energy.charged_wh += wh
        elif current_a < 0:
            self.energy.discharged_ah -= ah
            self.energy.discharged_wh -= wh
            self._discharged_since_cycle_ah -= ah
            if self._discharged_since_cycle_ah >= self.full_ah:
                self._discharged_since_cycle_ah -= self.full_ah
                self.cycles += 1
        self.remaining_ah = min(self.full_ah, max(0.0, self.remaining_ah + ah))
        measured_ah = round(current_a, 2) * dt / 3600.0
        nominal_v = NOMINAL_CELL_V * self.spec.cells
        if measured_ah > 0:
            self.bms_counters.charged_ah += measured_ah
            self.bms_counters.charged_wh += measured_ah * nominal_v
        elif measured_ah < 0:
            self.bms_counters.discharged_ah -= measured_ah
            self.bms_counters.discharged_wh -= measured_ah * nominal_v
        self.current_a = current_a
        self._thermal(dt, current_a, ambient_c, charger_present)
        self._measure()
        before = (frozenset(self.protections), frozenset(self.warnings))
        self._evaluate(t + dt, dt)
        self._balance()
        self._full_charge()
        self._sleep(dt, charger_present)
        if (frozenset(self.protections), frozenset(self.warnings)) != before:
            self.record(t + dt, "event")

    def _thermal(self, dt: float, current_a: float, ambient_c: float, charger_present: bool) -> None:
        cfg = self._config
        capacity_scale = self.spec.design_ah / 100.0
        heat_capacity = cfg.heat_capacity_j_per_k * capacity_scale
        if self.heater_on and self.cell_temp_c >= HEATER_OFF_C:
            self.heater_on = False
        elif not self.heater_on and charger_present and self.cell_temp_c <= HEATER_ON_C:
            self.heater_on = True
        if not charger_present:
            self.heater_on = False
        power = current_a * current_a * self.resistance_ohm + (HEATER_POWER_W if self.heater_on else 0.0)
        equilibrium = ambient_c + power / cfg.heat_loss_w_per_k
        decay = math.exp(-cfg.heat_loss_w_per_k * dt / heat_capacity)
        self.cell_temp_c = equilibrium + (self.cell_temp_c - equilibrium) * decay
        # The MOSFETs sit on the board: faster, hotter with current.
        mos_target = self.cell_temp_c + current_a * current_a * 0.0015
        self.mos_temp_c = mos_target + (self.mos_temp_c - mos_target) * math.exp(-dt / 120.0)
        self.env_temp_c = ambient_c + 0.2 * (self.cell_temp_c - ambient_c)

    def _evaluate(self, now: float, dt: float) -> None:
        s = self.settings
        current = self.current_a
        for th in _THRESHOLDS:
            value = th.value(self)
            sign = 1.0 if th.above else -1.0
            cond = th.condition
            if sign * (value - th.alarm(s)) >= 0:
                self.warnings.add(cond)
            else:
                self.warnings.discard(cond)
            if cond in self.protections:
                released = value <= th.release(s) if th.above else value >= th.release(s)
                # docs/protocol.md §6 item 4: voltage protections also release on current in the other direction.
                if cond in (Condition.CELL_OVERVOLTAGE, Condition.PACK_OVERVOLTAGE) and current <= -IDLE_CURRENT_A:
                    released = True
                if cond in (Condition.CELL_UNDERVOLTAGE, Condition.PACK_UNDERVOLTAGE) and current >= IDLE_CURRENT_A:
                    released = True
                if released:
                    self.protections.discard(cond)
                continue
            if sign * (value - th.protect(s)) >= 0:
                self._pending[cond] = self._pending.get(cond, 0.0) + dt
                if self._pending[cond] >= th.delay(s):
                    self.protections.add(cond)
                    self._pending.pop(cond, None)
            else:
                self._pending.pop(cond, None)
        self._overcurrent(
            Condition.CHARGE_OVERCURRENT,
            now=now,
            dt=dt,
            amps=current,
            alarm=s.charge_oc_alarm_a,
            protect=s.charge_oc_protect_a,
            delay=s.charge_oc_delay_s,
        )
        self._overcurrent(
            Condition.DISCHARGE_OVERCURRENT,
            now=now,
            dt=dt,
            amps=-current,
            alarm=s.discharge_oc_alarm_a,
            protect=s.discharge_oc_protect_a,
            delay=s.discharge_oc_delay_s,
        )
        self._overcurrent(
            Condition.DISCHARGE_OVERCURRENT_2,
            now=now,
            dt=dt,
            amps=-current,
            alarm=None,
            protect=s.discharge_oc2_protect_a,
            delay=s.discharge_oc2_delay_s,
        )
        if self.soc_pct < s.low_soc_pct:
            self.warnings.add(Condition.LOW_SOC)
        else:
            self.warnings.discard(Condition.LOW_SOC)

    def _overcurrent(
        self, cond: Condition, *, now: float, dt: float, amps: float, alarm: float | None, protect: float, delay: float
    ) -> None:
        if alarm is not None:
            if amps >= alarm:
                self.warnings.add(cond)
            else:
                self.warnings.discard(cond)
        if cond in self.protections:
            if now >= self._oc_release_at.get(cond, 0.0):
                self.protections.discard(cond)
            return
        if amps >= protect:
            self._pending[cond] = self._pending.get(cond, 0.0) + dt
            if self._pending[cond] >= delay:
                self.protections.add(cond)
                self._oc_release_at[cond] = now + OVERCURRENT_RELEASE_S
                self._pending.pop(cond, None)
        else:
            self._pending.pop(cond, None)

    def _balance(self) -> None:
        s = self.settings
        low = min(self.cell_mv)
        self.balancing = tuple(
            i + 1 for i, mv in enumerate(self.cell_mv) if mv >= s.balance_start_mv and mv - low > s.balance_delta_mv
        )

    def _full_charge(self) -> None:
        s = self.settings
        if (
            not self.fully_charged
            and self.voltage_mv >= s.full_charge_mv
            and 0 <= self.current_a * 1000 < s.full_charge_ma
        ):
            self.fully_charged = True
            self.remaining_ah = self.full_ah  # coulomb counter recalibrates at the top
        elif self.fully_charged and self.soc_pct < 97.0:
            self.fully_charged = False

    def _sleep(self, dt: float, charger_present: bool) -> None:
        s = self.settings
        if self.dormant:
            if charger_present:
                self.dormant = False
            return
        quiet = abs(self.current_a) < IDLE_CURRENT_A and not self.protections and not self.balancing
        if quiet and min(self.cell_mv) < s.sleep_cell_mv:
            self._dormant_pending_s += dt
            if self._dormant_pending_s >= s.sleep_delay_min * 60:
                self.dormant = True
                self._dormant_pending_s = 0.0
        else:
            self._dormant_pending_s = 0.0

    def record(self, t: float, reason: str) -> None:
        self.history.appendleft(
            HistoryRecord(
                time=self.clock(t),
                cell_voltages_mv=self.cell_mv,
                temperatures_c=self.temperatures_c,
                current_a=round(self.current_a, 2),
                voltage_v=self.voltage_mv / 1000,
                remaining_ah=round(self.remaining_ah, 2),
                full_ah=self.full_ah,
                protections=frozenset(self.protections),
                warnings=frozenset(self.warnings),
                reason=reason,
            )
        )

    # -- what the BMS reports (the shared models, so the library's encoders can put them on the wire)

    @property
    def temperatures_c(self) -> tuple[float, ...]:
        """Every sensor in wire order: cell sensors, then MOSFET, then environment."""
        return tuple(round(x, 1) for x in (*self.cell_temps_c, self.mos_temp_c, self.env_temp_c))

    def analog(self, address: int | None = None) -> PackAnalog:
        """The 0x42 record (an offline pack: zero cells, 0.0 °C sensors, as the master reports it)."""
        adr = self.address if address is None else address
        if not self.reachable:
            zero_t = (0.0,) * self.spec.temperatures
            return PackAnalog(
                address=adr,
                cell_voltages_mv=(0,) * self.spec.cells,
                temperatures_c=zero_t,
                cell_temperatures_c=zero_t[:-2],
                mosfet_temperature_c=0.0,
                environment_temperature_c=0.0,
                current_a=0.0,
                voltage_v=0.0,
                remaining_ah=0.0,
                full_ah=0.0,
                design_ah=0.0,
                cycles=0,
                soc_pct=0.0,
                soh_pct=0.0,
            )
        temps = self.temperatures_c
        return PackAnalog(
            address=adr,
            cell_voltages_mv=self.cell_mv,
            temperatures_c=temps,
            cell_temperatures_c=temps[:-2],
            mosfet_temperature_c=temps[-2],
            environment_temperature_c=temps[-1],
            current_a=round(self.current_a, 2),
            voltage_v=self.voltage_mv / 1000,
            remaining_ah=round(self.remaining_ah, 2),
            full_ah=self.full_ah,
            design_ah=self.spec.design_ah,
            cycles=self.cycles,
            soc_pct=round(self.soc_pct),
            soh_pct=round(self.soh_pct),
            soc_reported=self.spec.tail > 0,
        )

    def status(self, address: int | None = None) -> PackStatus:
        adr = self.address if address is None else address
        if not self.reachable:
            return PackStatus(
                address=adr,
                cell_alarm_codes=(0,) * self.spec.cells,
                temperature_alarm_codes=(0,) * self.spec.temperatures,
            )
        s = self.settings
        cell_codes = tuple(
            2 if mv >= s.cell_ov_alarm_mv else 1 if mv <= s.cell_uv_alarm_mv else 0 for mv in self.cell_mv
        )
        temp_codes = tuple(
            2 if t >= s.charge_ot_alarm_c else 1 if t <= s.charge_ut_alarm_c else 0 for t in self.temperatures_c
        )
        return PackStatus(
            address=adr,
            protections=frozenset(self.protections),
            warnings=frozenset(self.warnings),
            charge_mos_on=self.charge_mos_on,
            discharge_mos_on=self.discharge_mos_on,
            charging=self.current_a >= IDLE_CURRENT_A,
            discharging=self.current_a <= -IDLE_CURRENT_A,
            heater_on=self.heater_on,
            fully_charged=self.fully_charged,
            balancing_cells=self.balancing,
            buzzer_enabled=self.buzzer_enabled,
            led_alarm_enabled=self.led_alarm_enabled,
            limiter_enabled=self.limiter_enabled,
            limiter_low_gear=self.limiter_low_gear,
            cell_alarm_codes=cell_codes,
            temperature_alarm_codes=temp_codes,
        )


@dataclass(slots=True)
class _Outage:
    address: int
    start_s: float
    end_s: float | None


class Cluster:
    """The packs on one link, the load profile and the simulated clock."""

    def __init__(
        self,
        specs: Sequence[PackSpec],
        *,
        seed: int = 0,
        config: PhysicsConfig | None = None,
        profile: Profile | None = None,
    ) -> None:
        if not specs:
            raise ValueError("a cluster needs at least one pack")
        self.config = config or PhysicsConfig()
        self.profile: Profile = profile or ConstantProfile(0.0)
        rng = random.Random(seed)  # noqa: S311 - a simulation, not cryptography
        self.packs = [PackModel(spec, self.config, random.Random(rng.getrandbits(64))) for spec in specs]  # noqa: S311
        self._by_address = {p.address: p for p in self.packs}
        self.time_s = 0.0
        self._next_history_s = self.config.history_period_s
        self.outages: list[_Outage] = []
        self._forced_offline: set[int] = set()
        for pack in self.packs:
            pack.record(0.0, "start")

    def pack(self, address: int) -> PackModel:
        return self._by_address[address]

    def has_pack(self, address: int) -> bool:
        return address in self._by_address

    def schedule_offline(self, address: int, start_s: float, duration_s: float | None) -> None:
        """Take a pack off the link bus from start_s for duration_s (None = for good)."""
        end = None if duration_s is None else start_s + duration_s
        self.outages.append(_Outage(address, start_s, end))
        self._apply_outages()

    def set_online(self, address: int, online: bool) -> None:
        if online:
            self._forced_offline.discard(address)
        else:
            self._forced_offline.add(address)
        self._apply_outages()

    def _apply_outages(self) -> None:
        t = self.time_s
        down = set(self._forced_offline)
        for o in self.outages:
            if o.start_s <= t and (o.end_s is None or t < o.end_s):
                down.add(o.address)
        for pack in self.packs:
            pack.online = pack.address not in down

    def _boundaries(self, t: float) -> list[float]:
        marks = [self._next_history_s]
        nxt = self.profile.next_change(t)
        if nxt is not None:
            marks.append(nxt)
        for o in self.outages:
            marks.extend(m for m in (o.start_s, o.end_s) if m is not None)
        return [m for m in marks if m > t + 1e-9]

    def ambient_at(self, t: float) -> float:
        cfg = self.config
        if not cfg.ambient_swing_c:
            return cfg.ambient_c
        hour = (cfg.start_time.hour + cfg.start_time.minute / 60 + t / 3600.0) % 24.0
        return cfg.ambient_c - cfg.ambient_swing_c / 2 * math.cos(2 * math.pi * (hour - 4.0) / 24.0)

    def advance(self, seconds: float) -> None:
        """Step the physics `seconds` forward (split at the step size and at every scheduled event)."""
        end = self.time_s + max(0.0, seconds)
        while self.time_s < end - 1e-9:
            t = self.time_s
            dt = min(self.config.step_s, end - t, *(m - t for m in self._boundaries(t)))
            self._step(t, dt)
            self.time_s = t + dt
            self._apply_outages()
            if self.time_s >= self._next_history_s - 1e-9:
                for pack in self.packs:
                    if pack.reachable:
                        pack.record(self.time_s, "periodic")
                self._next_history_s += self.config.history_period_s

    def _step(self, t: float, dt: float) -> None:
        # Steps never straddle a profile jump, so the midpoint is inside the right segment.
        requested = self.profile.current_at(t + dt / 2)
        ambient = self.ambient_at(t + dt / 2)
        charger_present = requested > 0
        for pack in self.packs:
            if pack.online and pack.dormant and charger_present:
                pack.dormant = False
        if requested > 0:
            eligible = [p for p in self.packs if p.reachable and p.charge_mos_on]
        elif requested < 0:
            eligible = [p for p in self.packs if p.reachable and p.discharge_mos_on]
        else:
            eligible = []
        total_full = sum(p.full_ah for p in eligible)
        shares: dict[int, float] = {}
        for pack in eligible:
            share = requested * pack.full_ah / total_full
            if share > 0:
                share = min(share, pack.max_charge_current())
            shares[pack.address] = share
        for pack in self.packs:
            if not pack.online:
                continue
            pack.step(t, dt, shares.get(pack.address, 0.0), ambient, charger_present)

    # -- ground truth for tests and the benchmark

    @property
    def charged_wh(self) -> float:
        return sum(p.energy.charged_wh for p in self.packs)

    @property
    def discharged_wh(self) -> float:
        return sum(p.energy.discharged_wh for p in self.packs)

    @property
    def charged_ah(self) -> float:
        return sum(p.energy.charged_ah for p in self.packs)

    @property
    def discharged_ah(self) -> float:
        return sum(p.energy.discharged_ah for p in self.packs)

    @property
    def current_a(self) -> float:
        return sum(p.current_a for p in self.packs if p.online)


__all__ = [
    "OCV_CURVE",
    "Cluster",
    "ConstantProfile",
    "EnergyCounters",
    "HistoryRecord",
    "PackModel",
    "PackSpec",
    "PhysicsConfig",
    "Profile",
    "ProtectionSettings",
    "ScriptedProfile",
    "SineDayProfile",
    "ocv",
]

"""Plausibility limits: what a battery can physically report, per quantity.

A reply can be checksum-valid and still carry nonsense: a BMS that sends 0xFFFF for "no value", a slave whose
record the master relays half-updated, a clone firmware with other scaling. Seen on real links (issue 17):
6280.5 °C (0xFFFF), SOC 255 % and 65535 %, a 65.5 V cell, a 0 V pack, 21.5 kW on a 51.2 V pack. A record that
fails these checks is treated like a corrupt frame by the client: asked for again once, then not published.

The limits are deliberately wide (they must never reject a real pack) and come from:

* cells 0.5-5 V: any lithium cell, deeply discharged to overcharged (LFP works at 2.5-3.65 V; the captured pack's
  cell under/over-voltage protections are 2.5 and 3.7 V, tests/data/captures.md A.4);
* pack voltage: the cells' sum within PACK_SUM_TOLERANCE (the BMS measures it separately; the captures agree to
  0.3 %, docs/protocol.md §1.11 item 7 names this check) and within cells × the cell limits;
* temperatures -40..+120 °C: below any storage limit of the manuals (-20 °C, docs/protocol.md §6 item 8) and above
  the highest protection a PACE BMS can be set to (MOSFET over-temperature, 120 °C, docs/protocol.md §1.9.12);
* SOC and SOH 0-100 %;
* capacities: remaining <= full × REMAINING_MARGIN, full <= design × FULL_MARGIN (full capacity can exceed design,
  docs/protocol.md §1.9.2; 317.64 vs 290 Ah in one broadcast);
* current: within the rated peak current × CURRENT_MARGIN. The manuals rate a 100 Ah pack at 100 A continuous and
  120-200 A for 15 s (docs/protocol.md §6 item 8), i.e. PEAK_C_RATE = 2 C of the pack's capacity.

This module is pure: no I/O, no logging.
"""

from collections.abc import Iterator

from .can import CanState
from .models import Implausible, PackAnalog, Quantity

CELL_MIN_V = 0.5
CELL_MAX_V = 5.0
#: Pack voltage may differ from the sum of its cells by this fraction.
PACK_SUM_TOLERANCE = 0.10
TEMPERATURE_MIN_C = -40.0
TEMPERATURE_MAX_C = 120.0
PERCENT_MIN = 0.0
PERCENT_MAX = 100.0
#: Remaining may exceed full a little (a BMS updates them at different moments); derived SOC is clamped to 100 %.
REMAINING_MARGIN = 1.05
FULL_MARGIN = 1.25
#: Peak current in C (manuals: 200 A for 15 s on a 100 Ah pack) and the margin on top of it.
PEAK_C_RATE = 2.0
CURRENT_MARGIN = 1.5
#: Capacity assumed when a record reports none (the manuals' pack is 100 Ah).
DEFAULT_CAPACITY_AH = 100.0
#: Highest cell voltage an LFP pack reaches under charge: its cell over-voltage protection (tests/data/captures.md A.4).
#: Only the energy bound uses it; the plausibility check allows any lithium cell.
LFP_CELL_MAX_V = 3.7
#: LV CAN (docs/protocol.md §3) serves 48 V batteries; the library reads packs of 8 to 16 cells.
CAN_CELLS_MIN = 8
CAN_CELLS_MAX = 16


def _outside(value: float, low: float, high: float) -> bool:
    """True for a value outside low..high, and for NaN."""
    return not low <= value <= high


def _check(quantity: Quantity, value: float, low: float, high: float, unit: str) -> Implausible | None:
    if _outside(value, low, high):
        return Implausible(quantity=quantity, value=value, low=round(low, 3), high=round(high, 3), unit=unit)
    return None


def rated_capacity_ah(analog: PackAnalog) -> float:
    """The capacity the pack's current rating scales with: design or full, whichever is larger; else the default."""
    capacity = max(analog.design_ah or 0.0, analog.full_ah)
    return capacity if capacity > 0 else DEFAULT_CAPACITY_AH


def current_limit_a(capacity_ah: float) -> float:
    """Largest current magnitude a pack (or cluster) of this capacity can carry, with the margin."""
    return PEAK_C_RATE * capacity_ah * CURRENT_MARGIN


def max_power_w(analog: PackAnalog) -> float:
    """Largest power magnitude this pack can carry: its current limit at the LFP charge-limit voltage of its cells.

    The energy integrator rejects samples beyond it (21.5 kW on a 16-cell 100 Ah pack: the limit is 17.8 kW).
    """
    return current_limit_a(rated_capacity_ah(analog)) * len(analog.cell_voltages_mv) * LFP_CELL_MAX_V


def _analog_violations(analog: PackAnalog) -> Iterator[Implausible | None]:
    cells = analog.cell_voltages_mv
    for mv in cells:
        yield _check(Quantity.CELL_VOLTAGE, mv / 1000, CELL_MIN_V, CELL_MAX_V, "V")
    if cells:
        total = sum(cells) / 1000
        low = max(len(cells) * CELL_MIN_V, total * (1 - PACK_SUM_TOLERANCE))
        high = min(len(cells) * CELL_MAX_V, total * (1 + PACK_SUM_TOLERANCE))
        yield _check(Quantity.PACK_VOLTAGE, analog.voltage_v, low, high, "V")
    for celsius in analog.temperatures_c:
        yield _check(Quantity.TEMPERATURE, celsius, TEMPERATURE_MIN_C, TEMPERATURE_MAX_C, "°C")
    full = analog.full_ah
    yield _check(Quantity.CAPACITY, full, 0.0, (analog.design_ah or full) * FULL_MARGIN, "Ah")
    yield _check(Quantity.CAPACITY, analog.remaining_ah, 0.0, full * REMAINING_MARGIN, "Ah")
    yield _check(Quantity.STATE_OF_CHARGE, analog.soc_pct, PERCENT_MIN, PERCENT_MAX, "%")
    if analog.soh_pct is not None:
        yield _check(Quantity.STATE_OF_HEALTH, analog.soh_pct, PERCENT_MIN, PERCENT_MAX, "%")
    limit = current_limit_a(rated_capacity_ah(analog))
    yield _check(Quantity.CURRENT, analog.current_a, -limit, limit, "A")


def check_analog(analog: PackAnalog) -> Implausible | None:
    """The first value of a pack record outside its plausible range; None when every value is plausible.

    An absent pack's record (all cells 0 V) is not a reading and is not checked here.
    """
    return next((problem for problem in _analog_violations(analog) if problem is not None), None)


def can_capacity_ah(state: CanState) -> float:
    """The battery's capacity as its frames give it (0x354, 0x379, 0x35F), else the default per module."""
    known = [
        state.capacity.nominal_ah if state.capacity is not None else 0.0,
        state.installed_capacity.capacity_ah if state.installed_capacity is not None else 0.0,
        state.battery_info.capacity_ah if state.battery_info is not None else 0.0,
    ]
    capacity = max(known)
    return capacity if capacity > 0 else DEFAULT_CAPACITY_AH * max(state.module_count or 1, 1)


def can_current_limit_a(state: CanState) -> float:
    """The current limit of a CAN battery: its rated peak from the capacity, or the limits it announces in 0x351
    (whichever is larger: a cluster without capacity frames still announces N × the pack's limit), with the
    margin on the announced limits too."""
    announced = 0.0 if state.limits is None else max(state.limits.charge_current_a, state.limits.discharge_current_a)
    return max(current_limit_a(can_capacity_ah(state)), announced * CURRENT_MARGIN)


def can_max_power_w(state: CanState) -> float:
    """Largest power magnitude of a CAN battery: its current limit at the LFP charge limit of 16 cells."""
    return can_current_limit_a(state) * CAN_CELLS_MAX * LFP_CELL_MAX_V


def _can_violations(state: CanState) -> Iterator[Implausible | None]:
    if state.charge_state is not None:
        yield _check(Quantity.STATE_OF_CHARGE, state.charge_state.soc_pct, PERCENT_MIN, PERCENT_MAX, "%")
        yield _check(Quantity.STATE_OF_HEALTH, state.charge_state.soh_pct, PERCENT_MIN, PERCENT_MAX, "%")
    extremes = state.cell_extremes
    if extremes is not None:
        for mv in (extremes.min_cell_mv, extremes.max_cell_mv):
            yield _check(Quantity.CELL_VOLTAGE, mv / 1000, CELL_MIN_V, CELL_MAX_V, "V")
        for celsius in (extremes.min_temperature_c, extremes.max_temperature_c):
            yield _check(Quantity.TEMPERATURE, celsius, TEMPERATURE_MIN_C, TEMPERATURE_MAX_C, "°C")
    measurements = state.measurements
    if measurements is not None:
        low, high = CAN_CELLS_MIN * CELL_MIN_V, CAN_CELLS_MAX * CELL_MAX_V
        yield _check(Quantity.PACK_VOLTAGE, measurements.voltage_v, low, high, "V")
        yield _check(Quantity.TEMPERATURE, measurements.temperature_c, TEMPERATURE_MIN_C, TEMPERATURE_MAX_C, "°C")
        limit = can_current_limit_a(state)
        yield _check(Quantity.CURRENT, measurements.current_a, -limit, limit, "A")
    if state.capacity is not None and state.capacity.nominal_ah > 0:
        nominal = state.capacity.nominal_ah
        yield _check(Quantity.CAPACITY, state.capacity.remaining_ah, 0.0, nominal * REMAINING_MARGIN, "Ah")


def check_can(state: CanState) -> Implausible | None:
    """The first value of a CAN battery's state outside its plausible range; None when every value is plausible."""
    return next((problem for problem in _can_violations(state) if problem is not None), None)

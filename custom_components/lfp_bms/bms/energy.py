"""Charge and discharge energy integrated from power samples.

The BMSs report no energy counters (EG4 aside), so the integration integrates V×I between polls. Power is
taken as linear between two samples; the charge (+) and discharge (−) parts of that line are integrated
exactly, splitting the interval where it crosses zero. An interval longer than `max_gap_s` (a restart, a dead
link, a pack that went offline) is skipped rather than guessed.

A sample beyond the power the battery can carry (`max_power_w`: its rated peak current × margin at its highest
voltage, bms/plausibility.max_power_w) is rejected: no battery makes that step between two polls. It is not
integrated and the series goes on from the previous sample, as after a lost poll. Between two accepted samples the
power can then step by at most the sum of their bounds, so one interval adds at most that × its length.
"""

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EnergyTotals:
    """Monotonic totals in kWh."""

    charged_kwh: float = 0.0
    discharged_kwh: float = 0.0


class EnergyIntegrator:
    """Accumulates one power series (W, + = charging) into charge/discharge kWh."""

    def __init__(self, max_gap_s: float) -> None:
        self.max_gap_s = max_gap_s
        self._charged_wh = 0.0
        self._discharged_wh = 0.0
        self._last: tuple[float, float] | None = None
        #: Samples rejected as beyond what the battery can carry.
        self.rejected = 0

    def add(self, time_s: float, power_w: float, max_power_w: float = math.inf) -> bool:
        """Add a sample taken at `time_s` (any monotonic seconds); False when it is rejected (beyond
        ±`max_power_w`, or not a number)."""
        if not abs(power_w) <= max_power_w:
            self.rejected += 1
            return False
        last, self._last = self._last, (time_s, power_w)
        if last is None:
            return True
        t0, p0 = last
        dt = time_s - t0
        if dt <= 0 or dt > self.max_gap_s:
            return True
        positive, negative = _split_area(p0, power_w, dt)
        self._charged_wh += positive / 3600
        self._discharged_wh += negative / 3600
        return True

    def break_series(self) -> None:
        """Forget the last sample: the next interval is a gap (e.g. the pack stopped answering)."""
        self._last = None

    def restore(self, charged_kwh: float | None, discharged_kwh: float | None) -> None:
        """Continue from totals restored after a restart; never goes backwards."""
        if charged_kwh is not None:
            self._charged_wh = max(self._charged_wh, charged_kwh * 1000)
        if discharged_kwh is not None:
            self._discharged_wh = max(self._discharged_wh, discharged_kwh * 1000)

    @property
    def totals(self) -> EnergyTotals:
        """Current totals, kWh."""
        return EnergyTotals(charged_kwh=self._charged_wh / 1000, discharged_kwh=self._discharged_wh / 1000)


def _split_area(p0: float, p1: float, dt: float) -> tuple[float, float]:
    """Area (W·s) above and below zero of the line from p0 to p1 over dt; both returned ≥ 0."""
    if p0 >= 0 and p1 >= 0:
        return (p0 + p1) / 2 * dt, 0.0
    if p0 <= 0 and p1 <= 0:
        return 0.0, -(p0 + p1) / 2 * dt
    # Time at which the line reaches zero; clamped because rounding can put it a hair outside [0, dt].
    crossing = min(max(dt * p0 / (p0 - p1), 0.0), dt)
    first = abs(p0) / 2 * crossing
    second = abs(p1) / 2 * (dt - crossing)
    return (first, second) if p0 > 0 else (second, first)

"""Charge and discharge energy integrated from power samples.

The BMSs report no energy counters (EG4 aside), so the integration integrates V×I between polls. Power is
taken as linear between two samples; the charge (+) and discharge (−) parts of that line are integrated
exactly, splitting the interval where it crosses zero. An interval longer than `max_gap_s` (a restart, a dead
link, a pack that went offline) is skipped rather than guessed.
"""

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

    def add(self, time_s: float, power_w: float) -> None:
        """Add a sample taken at `time_s` (any monotonic seconds)."""
        last, self._last = self._last, (time_s, power_w)
        if last is None:
            return
        t0, p0 = last
        dt = time_s - t0
        if dt <= 0 or dt > self.max_gap_s:
            return
        positive, negative = _split_area(p0, power_w, dt)
        self._charged_wh += positive / 3600
        self._discharged_wh += negative / 3600

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

"""Energy integration from power samples."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custom_components.lfp_bms.bms.energy import EnergyIntegrator


def test_constant_charge_and_discharge() -> None:
    """1 kW for an hour is 1 kWh, split by sign."""
    charge = EnergyIntegrator(max_gap_s=30)
    for t in range(0, 3601, 10):
        charge.add(t, 1000.0)
    assert charge.totals.charged_kwh == pytest.approx(1.0)
    assert charge.totals.discharged_kwh == 0
    discharge = EnergyIntegrator(max_gap_s=30)
    for t in range(0, 1801, 10):
        discharge.add(t, -2000.0)
    assert discharge.totals.discharged_kwh == pytest.approx(1.0)
    assert discharge.totals.charged_kwh == 0


def test_zero_crossing_is_split_exactly() -> None:
    """From +1000 W to −1000 W over 20 s: 5000 W·s each way (two triangles), not zero."""
    energy = EnergyIntegrator(max_gap_s=60)
    energy.add(0, 1000.0)
    energy.add(20, -1000.0)
    assert energy.totals.charged_kwh == pytest.approx(5000 / 3.6e6)
    assert energy.totals.discharged_kwh == pytest.approx(5000 / 3.6e6)


def test_gap_is_skipped_and_break_series() -> None:
    """An interval longer than the gap limit adds nothing; after break_series the next sample starts afresh."""
    energy = EnergyIntegrator(max_gap_s=30)
    energy.add(0, 1000.0)
    energy.add(100, 1000.0)
    assert energy.totals.charged_kwh == 0
    energy.add(110, 1000.0)
    assert energy.totals.charged_kwh == pytest.approx(10_000 / 3.6e6)
    energy.break_series()
    energy.add(115, 1000.0)
    assert energy.totals.charged_kwh == pytest.approx(10_000 / 3.6e6)


def test_restore_never_goes_backwards() -> None:
    """Restored totals continue; a lower restored value does not reduce what was counted."""
    energy = EnergyIntegrator(max_gap_s=30)
    energy.restore(12.5, 3.0)
    energy.add(0, 3600.0)
    energy.add(10, 3600.0)
    assert energy.totals.charged_kwh == pytest.approx(12.51)
    energy.restore(1.0, None)
    assert energy.totals.charged_kwh == pytest.approx(12.51)
    assert energy.totals.discharged_kwh == pytest.approx(3.0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=-20_000, max_value=20_000, allow_nan=False), min_size=2, max_size=50))
def test_net_energy_matches_trapezoid(powers: list[float]) -> None:
    """charged − discharged equals the signed trapezoid integral; both totals only grow."""
    energy = EnergyIntegrator(max_gap_s=10)
    previous = energy.totals
    for i, p in enumerate(powers):
        energy.add(i * 5.0, p)
        totals = energy.totals
        assert totals.charged_kwh >= previous.charged_kwh
        assert totals.discharged_kwh >= previous.discharged_kwh
        previous = totals
    signed_ws = sum((a + b) / 2 * 5.0 for a, b in itertools.pairwise(powers))
    net = energy.totals.charged_kwh - energy.totals.discharged_kwh
    assert net == pytest.approx(signed_ws / 3.6e6, abs=1e-5)

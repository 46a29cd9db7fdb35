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


def test_power_beyond_the_battery_is_rejected_and_bridged() -> None:
    """Issue 17: one 21.5 kW sample on a 51.2 V pack added 0.0596 kWh for good. With the pack's bound it is not
    integrated; the series goes on from the sample before it, as after a lost poll."""
    energy = EnergyIntegrator(max_gap_s=30)
    assert energy.add(0, 1000.0, max_power_w=17_760)
    assert not energy.add(10, 21_474.0, max_power_w=17_760)
    assert not energy.add(15, float("nan"), max_power_w=17_760)
    assert energy.add(20, 1000.0, max_power_w=17_760)
    assert energy.rejected == 2
    assert energy.totals.charged_kwh == pytest.approx(1000 * 20 / 3.6e6)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0.1, 60),
            st.floats(allow_nan=True, allow_infinity=True, width=32),
            st.floats(100, 50_000),
        ),
        min_size=2,
        max_size=30,
    )
)
def test_no_interval_adds_more_than_the_battery_can_carry(samples: list[tuple[float, float, float]]) -> None:
    """Whatever the samples (NaN, infinities, nonsense), one interval adds at most the mean of its two samples'
    bounds × its length: the energy jump issue 17 saw cannot happen."""
    energy = EnergyIntegrator(max_gap_s=60)
    t = 0.0
    #: (time, bound) of the last accepted sample.
    last: tuple[float, float] | None = None
    for step, power, bound in samples:
        t += step
        before = energy.totals.charged_kwh + energy.totals.discharged_kwh
        accepted = energy.add(t, power, max_power_w=bound)
        added_wh = (energy.totals.charged_kwh + energy.totals.discharged_kwh - before) * 1000
        assert added_wh >= 0
        if not accepted:
            assert added_wh == 0
            continue
        if last is not None:
            t0, bound0 = last
            assert added_wh <= (bound0 + bound) / 2 * (t - t0) / 3600 * (1 + 1e-9)
        last = (t, bound)

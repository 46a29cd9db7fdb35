"""Physics of the simulated cluster: OCV curve, ground-truth energy, protections, MOSFETs, balancing, heater."""

import pytest

from custom_components.lfp_bms.bms import pace
from custom_components.lfp_bms.bms.models import Condition
from custom_components.lfp_bms.bms.pace_params import CellOverVoltage
from custom_components.lfp_bms.bms.simulator import (
    Cluster,
    ConstantProfile,
    PackSpec,
    PhysicsConfig,
    ScriptedProfile,
    Simulator,
    SimulatorConfig,
    SineDayProfile,
)
from custom_components.lfp_bms.bms.simulator.physics import OCV_CURVE, ocv
from custom_components.lfp_bms.bms.transport import SerialLink


def cluster(packs: int = 2, *, seed: int = 1, **physics: object) -> Cluster:
    return Cluster(
        [PackSpec(address=i + 1) for i in range(packs)],
        seed=seed,
        config=PhysicsConfig(**physics),  # type: ignore[arg-type]
    )


def test_ocv_curve_is_lfp_shaped() -> None:
    socs = [i / 100 for i in range(101)]
    volts = [ocv(s) for s in socs]
    assert volts == sorted(volts)
    assert ocv(0.0) == 2.5
    assert ocv(1.0) == 3.65
    assert all(3.2 <= ocv(s) <= 3.35 for s in socs[20:91])  # the flat plateau
    assert ocv(0.02) - ocv(0.0) > 0.3  # steep ends
    assert OCV_CURVE[0][0] == 0.0


def test_scripted_day_energy_matches_the_profile() -> None:
    script = ((3 * 3600.0, 20.0), (2 * 3600.0, 0.0), (6 * 3600.0, -15.0), (6 * 3600.0, 5.0))
    sim = cluster(2, step_s=10.0)
    sim.profile = ScriptedProfile(script)
    # Reference: ∫ V·I dt with the profile current and the voltages the packs report, sampled every minute.
    reference_in = reference_out = 0.0
    t = 0.0
    previous = {p.address: p.voltage_mv / 1000 for p in sim.packs}
    while t < sum(d for d, _ in script):
        sim.advance(60)
        t += 60
        for pack in sim.packs:
            volts = pack.voltage_mv / 1000
            # Both samples at the same current: the step never straddles a profile jump (minute-aligned script).
            energy = pack.current_a * (volts + previous[pack.address]) / 2 * 60 / 3600
            previous[pack.address] = volts
            if energy > 0:
                reference_in += energy
            else:
                reference_out -= energy
    expected_in_ah = 3 * 20 + 6 * 5
    expected_out_ah = 6 * 15
    assert sim.charged_ah == pytest.approx(expected_in_ah, rel=1e-9)
    assert sim.discharged_ah == pytest.approx(expected_out_ah, rel=1e-9)
    assert sim.charged_wh == pytest.approx(reference_in, rel=0.005)
    assert sim.discharged_wh == pytest.approx(reference_out, rel=0.005)
    # Sanity against the nominal voltage range of a 16S LFP pack.
    assert 16 * 3.2 * expected_in_ah < sim.charged_wh < 16 * 3.5 * expected_in_ah
    assert sim.charged_wh == pytest.approx(sum(p.energy.charged_wh for p in sim.packs))


def test_sine_day_charges_by_day_and_discharges_by_night() -> None:
    profile = SineDayProfile(peak_charge_a=10, night_discharge_a=5)
    assert profile.current_at(12 * 3600) == pytest.approx(10)
    assert profile.current_at(2 * 3600) == -5
    sim = cluster(2, step_s=30.0)
    sim.profile = profile
    sim.advance(86400)
    # ∫ 10 A · sin over 12 h = 2 · 10 · 12 / π Ah; 5 A over the 12 night hours.
    assert sim.charged_ah == pytest.approx(2 * 10 * 12 / 3.141592653589793, rel=0.01)
    assert sim.discharged_ah == pytest.approx(5 * 12, rel=1e-6)


def test_same_seed_same_world() -> None:
    a, b, c = cluster(seed=3), cluster(seed=3), cluster(seed=4)
    for sim in (a, b, c):
        sim.profile = ConstantProfile(-30.0)
        sim.advance(1800)
    assert [p.cell_mv for p in a.packs] == [p.cell_mv for p in b.packs]
    assert a.discharged_wh == b.discharged_wh
    assert [p.cell_mv for p in a.packs] != [p.cell_mv for p in c.packs]


def test_current_is_shared_by_capacity_and_mos_off_stops_it() -> None:
    sim = cluster(2)
    sim.profile = ConstantProfile(30.0)
    sim.advance(10)
    first, second = sim.packs
    total_full = first.full_ah + second.full_ah
    assert first.current_a == pytest.approx(30 * first.full_ah / total_full)
    # While charging the discharge MOSFET cannot go off (docs/protocol.md §1.9.7); the charge MOSFET can.
    assert first.command_mos(charge=False, on=False) is False
    assert first.command_mos(charge=True, on=False)
    sim.profile = ConstantProfile(30.0)
    before = first.energy.charged_wh
    sim.advance(600)
    assert first.current_a == 0.0
    assert first.energy.charged_wh == before
    assert second.current_a == pytest.approx(30.0)
    # Discharge still flows through the pack whose charge MOSFET is off.
    sim.profile = ConstantProfile(-20.0)
    sim.advance(10)
    assert first.current_a < 0
    assert first.command_mos(charge=False, on=False) is False  # never both off


def test_undervoltage_protection_stops_discharge() -> None:
    sim = cluster(1, initial_soc=0.03)
    sim.profile = ConstantProfile(-50.0)
    sim.advance(1800)
    pack = sim.packs[0]
    assert Condition.CELL_UNDERVOLTAGE in pack.protections
    assert not pack.discharge_mos_on
    assert pack.current_a == 0.0
    assert Condition.LOW_SOC in pack.warnings
    assert any(r.reason == "event" and Condition.CELL_UNDERVOLTAGE in r.protections for r in pack.history)
    # Charge current releases it (manual: "released ... or there is efficient charge current").
    sim.profile = ConstantProfile(10.0)
    sim.advance(60)
    assert Condition.CELL_UNDERVOLTAGE not in pack.protections


def test_full_charge_tapers_and_flags_fully_charged() -> None:
    sim = cluster(1, initial_soc=0.9, step_s=5.0)
    sim.profile = ConstantProfile(30.0)
    sim.advance(6 * 3600)
    pack = sim.packs[0]
    assert pack.fully_charged
    assert pack.remaining_ah == pack.full_ah
    assert 0 <= pack.current_a < pack.settings.full_charge_ma / 1000
    assert Condition.CELL_OVERVOLTAGE not in pack.protections


def test_balancing_starts_on_the_high_cell() -> None:
    sim = cluster(1, initial_soc=0.97)
    pack = sim.packs[0]
    pack.cells[2].soc += 0.02
    sim.advance(2)
    assert 3 in pack.balancing
    soc_before = pack.cells[2].soc
    sim.advance(3600)
    assert pack.cells[2].soc < soc_before - 0.0005  # the bleed resistor takes charge out of that cell


def test_heater_and_temperatures() -> None:
    cold = cluster(1, ambient_c=-5.0)
    cold.profile = ConstantProfile(20.0)
    cold.advance(60)
    assert cold.packs[0].heater_on
    warm = cluster(1, ambient_c=25.0)
    warm.profile = ConstantProfile(-100.0)
    warm.advance(3600)
    pack = warm.packs[0]
    assert not pack.heater_on
    assert min(pack.cell_temps_c) > 25.5  # I²R heating
    assert pack.mos_temp_c > min(pack.cell_temps_c)


def test_scheduled_outage() -> None:
    sim = cluster(3)
    sim.schedule_offline(2, 60, 30)
    sim.advance(70)
    assert not sim.pack(2).online
    assert sim.pack(2).analog().absent
    sim.advance(30)
    assert sim.pack(2).online


async def test_lowering_cell_ov_protection_raises_it_on_the_wire() -> None:
    sim = Simulator(SimulatorConfig(packs=1, speed=0, paced=False, profile=ConstantProfile(10.0)))
    await sim.start()
    link = SerialLink(sim.url, timeout=0.5)
    driver = pace.PaceDriver()
    try:
        sim.advance(10)
        group = CellOverVoltage(alarm_v=3.2, protect_v=3.25, release_v=3.1, delay_s=1.0)
        group.validate()
        await link.exchange(driver.request(0, group.write_cid2, group.encode()))
        sim.advance(10)
        status = driver.decode_status(await link.exchange(driver.status_request(1, 1)), 1)[0]
        analog = driver.decode_analog(await link.exchange(driver.analog_request(1, 1)), 1)[0]
    finally:
        await link.close()
        await sim.stop()
    assert Condition.CELL_OVERVOLTAGE in status.protections
    assert Condition.CELL_OVERVOLTAGE in status.warnings
    assert status.charge_mos_on is False
    assert analog.current_a == 0.0
    assert all(code == 2 for code in status.cell_alarm_codes)  # every cell above the new alarm level

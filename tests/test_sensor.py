"""Sensors end to end against the simulated cluster: snapshot, values against what the simulated BMS measured,
capacity-weighted cluster SOC and the invert-current option."""

from datetime import timedelta
from unittest.mock import patch

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_fire_time_changed, snapshot_platform
from syrupy.assertion import SnapshotAssertion

from custom_components.lfp_bms.bms.frame import decode_frame
from custom_components.lfp_bms.bms.simulator import ConstantProfile, Simulator
from custom_components.lfp_bms.const import CONF_INVERT_CURRENT

from .common import setup_entry

CLUSTER = "sensor.battery_cluster"


async def poll(hass: HomeAssistant) -> None:
    """Let the coordinator poll once (the default interval is 10 s; the refresh runs as a background task)."""
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=11))
    await hass.async_block_till_done(wait_background_tasks=True)


def text(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


def value(hass: HomeAssistant, entity_id: str) -> float:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return float(state.state)


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_snapshot(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, snapshot: SnapshotAssertion, simulator: Simulator
) -> None:
    """Every sensor of a 2-pack cluster, all enabled (per-cell entities included)."""
    with patch("custom_components.lfp_bms.PLATFORMS", [Platform.SENSOR]):
        entry = await setup_entry(hass, simulator)
    await snapshot_platform(hass, entity_registry, snapshot, entry.entry_id)


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_pack_values_match_the_simulated_bms(hass: HomeAssistant, simulator: Simulator) -> None:
    """While charging, each pack's sensors show what the simulated BMS measured, at the wire's resolution."""
    entry = await setup_entry(hass, simulator)
    simulator.cluster.profile = ConstantProfile(30.0)
    simulator.advance(600)
    await poll(hass)
    for address in simulator.addresses:
        truth = simulator.cluster.pack(address).analog()
        prefix = f"sensor.pack_{address}"
        assert value(hass, f"{prefix}_voltage") == pytest.approx(truth.voltage_v, abs=0.001)
        assert value(hass, f"{prefix}_current") == pytest.approx(truth.current_a, abs=0.01)
        assert truth.current_a > 10  # really charging, so the sign is tested
        assert value(hass, f"{prefix}_power") == pytest.approx(truth.voltage_v * truth.current_a, abs=1)
        assert value(hass, f"{prefix}_remaining_capacity") == pytest.approx(truth.remaining_ah, abs=0.01)
        assert value(hass, f"{prefix}_full_capacity") == pytest.approx(truth.full_ah, abs=0.01)
        assert value(hass, f"{prefix}_cycles") == truth.cycles
        # PACE 0x25 without tail sends no SOC: remaining / full.
        assert value(hass, f"{prefix}_battery") == pytest.approx(100 * truth.remaining_ah / truth.full_ah, abs=0.1)
        for cell, mv in enumerate(truth.cell_voltages_mv, start=1):
            assert value(hass, f"{prefix}_cell_{cell}_voltage") == pytest.approx(mv / 1000, abs=0.0005)
        for sensor, celsius in enumerate(truth.cell_temperatures_c, start=1):
            assert value(hass, f"{prefix}_cell_temperature_{sensor}") == pytest.approx(celsius, abs=0.1)
        assert value(hass, f"{prefix}_mosfet_temperature") == pytest.approx(truth.mosfet_temperature_c, abs=0.1)
        assert value(hass, f"{prefix}_lowest_cell_voltage") == min(truth.cell_voltages_mv) / 1000
        assert value(hass, f"{prefix}_highest_cell_voltage") == max(truth.cell_voltages_mv) / 1000
        spread = max(truth.cell_voltages_mv) - min(truth.cell_voltages_mv)
        assert value(hass, f"{prefix}_cell_voltage_spread") == spread
        assert value(hass, f"{prefix}_charge_power") == value(hass, f"{prefix}_power")
        assert value(hass, f"{prefix}_discharge_power") == 0
        state = hass.states.get(f"{prefix}_operating_state")
        assert state is not None
        assert state.state == "charging"

    # The same numbers as the library decodes from the last analog reply on the wire.
    driver = entry.runtime_data.client.driver
    last = next(s for s in reversed(simulator.sent) if decode_frame(s.request).cid2 == 0x42)
    decoded = {a.address: a for a in driver.decode_analog(decode_frame(last.reply))}
    assert set(decoded) == set(simulator.addresses)
    for address, analog in decoded.items():
        assert value(hass, f"sensor.pack_{address}_voltage") == analog.voltage_v
        assert value(hass, f"sensor.pack_{address}_current") == analog.current_a
        assert value(hass, f"sensor.pack_{address}_remaining_capacity") == analog.remaining_ah
    cluster_current = sum(a.current_a for a in decoded.values())
    assert value(hass, f"{CLUSTER}_current") == pytest.approx(cluster_current, abs=0.01)


@pytest.mark.parametrize("simulator", [{"packs": 2, "design_ah": [100.0, 50.0], "seed": 1}], indirect=True)
async def test_cluster_soc_is_capacity_weighted(hass: HomeAssistant, simulator: Simulator) -> None:
    """A 100 Ah pack at a lower SOC than a 50 Ah one: the cluster SOC weighs each by its full capacity."""
    await setup_entry(hass, simulator)
    assert simulator.cluster.pack(1).command_mos(charge=True, on=False)  # only pack 2 charges
    simulator.cluster.profile = ConstantProfile(20.0)
    simulator.advance(3600)
    simulator.cluster.profile = ConstantProfile(0.0)
    simulator.advance(10)
    await poll(hass)
    soc = [value(hass, f"sensor.pack_{a}_battery") for a in (1, 2)]
    full = [value(hass, f"sensor.pack_{a}_full_capacity") for a in (1, 2)]
    assert soc[1] - soc[0] > 20  # the packs really differ
    weighted = (soc[0] * full[0] + soc[1] * full[1]) / (full[0] + full[1])
    cluster = value(hass, f"{CLUSTER}_battery")
    assert cluster == pytest.approx(weighted, abs=0.06)
    assert abs(cluster - (soc[0] + soc[1]) / 2) > 5
    assert value(hass, f"{CLUSTER}_full_capacity") == pytest.approx(sum(full), abs=0.01)


@pytest.mark.parametrize("invert", [False, True])
async def test_invert_current(
    hass: HomeAssistant, simulator: Simulator, freezer: FrozenDateTimeFactory, invert: bool
) -> None:
    """invert_current flips the sign of current and power where the data enters, so everything derived from it
    follows: charge/discharge power, the operating state, the cluster's charging/discharging binary sensors and
    which energy counter grows."""
    await setup_entry(hass, simulator, {CONF_INVERT_CURRENT: invert})
    simulator.cluster.profile = ConstantProfile(30.0)
    simulator.advance(60)
    await poll(hass)
    sign = -1 if invert else 1
    truth = simulator.cluster.pack(1).analog()
    assert value(hass, "sensor.pack_1_current") == pytest.approx(sign * truth.current_a, abs=0.01)
    power = value(hass, "sensor.pack_1_power")
    assert power == pytest.approx(sign * truth.voltage_v * truth.current_a, abs=1)
    charged, discharged = value(hass, "sensor.pack_1_charge_power"), value(hass, "sensor.pack_1_discharge_power")
    assert (charged, discharged) == ((0.0, abs(power)) if invert else (power, 0.0))
    cluster_power = value(hass, f"{CLUSTER}_power")
    assert sign * cluster_power > 0
    assert value(hass, f"{CLUSTER}_current") == pytest.approx(sign * simulator.cluster.current_a, abs=0.02)
    cluster_split = (value(hass, f"{CLUSTER}_charge_power"), value(hass, f"{CLUSTER}_discharge_power"))
    assert cluster_split == ((0.0, abs(cluster_power)) if invert else (cluster_power, 0.0))
    assert text(hass, "sensor.pack_1_operating_state") == ("discharging" if invert else "charging")
    binary = {key: text(hass, f"binary_sensor.battery_cluster_{key}") for key in ("charging", "discharging")}
    assert binary == ({"charging": "off", "discharging": "on"} if invert else {"charging": "on", "discharging": "off"})
    # The integrator runs on monotonic time: let one poll interval pass for it too (the simulator is unpaced, P5).
    simulator.advance(11)
    freezer.tick(timedelta(seconds=11))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)
    energy = {key: value(hass, f"{CLUSTER}_energy_{key}") for key in ("charged", "discharged")}
    grew, stayed = ("discharged", "charged") if invert else ("charged", "discharged")
    assert energy[grew] > 0
    assert energy[stayed] == 0

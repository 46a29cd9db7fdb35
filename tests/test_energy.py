"""Energy totals over a simulated day against the simulator's ground truth, across restarts, and HA's validation."""

from datetime import timedelta

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.energy.data import async_get_manager
from homeassistant.components.energy.validate import async_validate
from homeassistant.components.recorder.core import Recorder
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from homeassistant.util import slugify
from pytest_homeassistant_custom_component.common import async_fire_time_changed, mock_restore_cache_with_extra_data
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
    do_adhoc_statistics,
)

from custom_components.lfp_bms.bms.simulator import ConstantProfile, PhysicsConfig, Simulator, SineDayProfile
from custom_components.lfp_bms.const import CONF_SCAN_INTERVAL, DOMAIN
from custom_components.lfp_bms.entity import device_base

from .common import entry_for, setup_entry

#: A solar day: charging up to 40 A around noon, 10 A drawn at night. From 50 % SOC at midnight the packs go
#: down to ~20 % by sunrise and are full shortly after noon, so the day has steady discharge, a jump at sunrise
#: and sunset, a smooth sine, the charger's constant-voltage taper and a full, idle afternoon.
DAY = SineDayProfile(peak_charge_a=40.0, night_discharge_a=10.0)
#: 10 s physics steps (default 2 s) keep a simulated day to a few seconds; the ground truth is exact per step.
PHYSICS = PhysicsConfig(step_s=10.0)
INTERVAL_S = 60
DAY_S = 24 * 3600
#: The brief's tolerance: the integrated totals within 0.5 % of the energy through the terminals.
TOLERANCE = 0.005


def _energy_entity(hass: HomeAssistant, owner: str, charged: bool) -> str:
    key = "energy_charged" if charged else "energy_discharged"
    entity_id = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{owner}_{key}")
    assert entity_id is not None
    return entity_id


def _kwh(hass: HomeAssistant, entity_id: str) -> float:
    state = hass.states.get(entity_id)
    assert state is not None
    return float(state.state)


async def _poll(hass: HomeAssistant, simulator: Simulator, freezer: FrozenDateTimeFactory, seconds: float) -> None:
    """Let `seconds` pass for the battery and for Home Assistant, then let the coordinator poll once."""
    simulator.advance(seconds)
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    # The coordinator polls in a background task; a tick while it waits for a reply would expire its timeout.
    await hass.async_block_till_done(wait_background_tasks=True)


@pytest.mark.parametrize("simulator", [{"profile": DAY, "physics": PHYSICS}], indirect=True)
async def test_day_matches_ground_truth(
    hass: HomeAssistant, simulator: Simulator, freezer: FrozenDateTimeFactory
) -> None:
    """Over a day polled every minute the charged and discharged totals of the cluster and of each pack match the
    simulator's terminal energy within 0.5 %, and no total ever decreases."""
    entry = await setup_entry(hass, simulator, {CONF_SCAN_INTERVAL: INTERVAL_S})
    cluster_id = device_base(entry)
    series: dict[str, tuple[str, str]] = {
        "cluster": (_energy_entity(hass, cluster_id, True), _energy_entity(hass, cluster_id, False)),
    }
    for address in simulator.addresses:
        owner = f"{cluster_id}_{address}"
        series[str(address)] = (_energy_entity(hass, owner, True), _energy_entity(hass, owner, False))
    last = {entity_id: _kwh(hass, entity_id) for pair in series.values() for entity_id in pair}

    def check_monotonic() -> None:
        for entity_id, before in last.items():
            now = _kwh(hass, entity_id)
            assert now >= before, f"{entity_id} went down from {before} to {now}"
            last[entity_id] = now

    polls = DAY_S // INTERVAL_S
    for poll in range(polls):
        await _poll(hass, simulator, freezer, INTERVAL_S)
        check_monotonic()
        if poll == polls // 2:
            # A restart at noon: the totals come back from the restore state and carry on from there.
            assert await hass.config_entries.async_reload(entry.entry_id)
            await hass.async_block_till_done()
            check_monotonic()

    truth: dict[str, tuple[float, float]] = {"cluster": (simulator.cluster.charged_wh, simulator.cluster.discharged_wh)}
    for pack in simulator.cluster.packs:
        truth[str(pack.address)] = (pack.energy.charged_wh, pack.energy.discharged_wh)
    for key, (charged_entity, discharged_entity) in series.items():
        charged_wh, discharged_wh = truth[key]
        # A day that does not move energy both ways would not test the split.
        assert charged_wh > 1000
        assert discharged_wh > 1000
        assert _kwh(hass, charged_entity) * 1000 == pytest.approx(charged_wh, rel=TOLERANCE)
        assert _kwh(hass, discharged_entity) * 1000 == pytest.approx(discharged_wh, rel=TOLERANCE)


@pytest.mark.parametrize("simulator", [{"profile": ConstantProfile(30.0)}], indirect=True)
async def test_restored_totals_continue(
    hass: HomeAssistant, simulator: Simulator, freezer: FrozenDateTimeFactory
) -> None:
    """After a restart the totals start from the stored values (never lower, never 0 in between) and add only
    the energy that flowed since."""
    entry = await entry_for(simulator, {CONF_SCAN_INTERVAL: INTERVAL_S})
    prefix = f"sensor.{slugify(entry.title)}"
    charged_id, discharged_id = f"{prefix}_energy_charged", f"{prefix}_energy_discharged"
    mock_restore_cache_with_extra_data(
        hass,
        [
            (State(charged_id, "12.5"), {"native_value": 12.5, "native_unit_of_measurement": "kWh"}),
            (State(discharged_id, "7.25"), {"native_value": 7.25, "native_unit_of_measurement": "kWh"}),
        ],
    )
    simulator.advance(INTERVAL_S)  # current is flowing at the first sample
    charged_before_wh = simulator.cluster.charged_wh
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert _kwh(hass, charged_id) == 12.5
    assert _kwh(hass, discharged_id) == 7.25

    previous = 12.5
    for _ in range(2):
        await _poll(hass, simulator, freezer, INTERVAL_S)
        assert _kwh(hass, charged_id) > previous
        previous = _kwh(hass, charged_id)
    new_wh = simulator.cluster.charged_wh - charged_before_wh
    assert new_wh > 50  # two minutes at 30 A and ~53 V
    # abs: the state is rounded to 0.1 Wh.
    assert (previous - 12.5) * 1000 == pytest.approx(new_wh, rel=TOLERANCE, abs=0.1)
    assert _kwh(hass, discharged_id) == 7.25


class TestEnergyDashboard:
    """With the recorder, which must be set up before hass (so before the conftest's autouse fixture)."""

    @pytest.fixture(autouse=True)
    def auto_enable_custom_integrations(self, recorder_mock: Recorder, enable_custom_integrations: None) -> None:
        """The conftest fixture of the same name, with the recorder first."""

    async def test_accepts_the_battery(self, hass: HomeAssistant, simulator: Simulator) -> None:
        """HA's own energy validation finds nothing wrong with the cluster as a battery source (energy to/from,
        power as rate, SOC)."""
        entry = await setup_entry(hass, simulator)
        assert await async_setup_component(hass, "energy", {})
        registry = er.async_get(hass)
        owner = device_base(entry)

        def entity(key: str) -> str:
            entity_id = registry.async_get_entity_id("sensor", DOMAIN, f"{owner}_{key}")
            assert entity_id is not None
            return entity_id

        manager = await async_get_manager(hass)
        await manager.async_update(
            {
                "energy_sources": [
                    {
                        "type": "battery",
                        "stat_energy_from": entity("energy_discharged"),
                        "stat_energy_to": entity("energy_charged"),
                        "stat_rate": entity("power"),
                        "stat_soc": entity("soc"),
                    }
                ],
                "device_consumption": [],
            }
        )
        # Statistics (and their metadata, which validation looks up) exist once the recorder compiled a period.
        await async_wait_recording_done(hass)
        now = dt_util.utcnow()
        do_adhoc_statistics(hass, start=now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0))
        await async_wait_recording_done(hass)

        result = await async_validate(hass)
        assert result.as_dict() == {
            "energy_sources": [[]],
            "device_consumption": [],
            "device_consumption_water": [],
        }

"""Packs added after setup (a broadcast group notices them itself; a bus needs a reconfigure), and a link that is
already down when Home Assistant starts (its repair issue survives the setup retries)."""

from datetime import timedelta
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.lfp_bms import async_remove_entry
from custom_components.lfp_bms.bms.simulator import Simulator, SimulatorConfig
from custom_components.lfp_bms.const import (
    CONF_ADDRESSES,
    CONF_DEVICE,
    CONF_SCAN_INTERVAL,
    DOMAIN,
    LINK_DOWN_REPAIR_AFTER,
)
from custom_components.lfp_bms.coordinator import LINK_DOWN_SINCE, link_down_issue_id
from custom_components.lfp_bms.entity import device_base

from .common import entry_for, state_of

INTERVAL_S = 60
OPTIONS = {CONF_SCAN_INTERVAL: INTERVAL_S}


def _simulator(port: int, packs: int, **options: Any) -> Simulator:
    """A cluster on `port` like the `simulator` fixture's (same seed: the same master serial)."""
    return Simulator(SimulatorConfig(packs=packs, port=port, speed=0, paced=False, seed=1, **options))


async def _poll(hass: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
    freezer.tick(timedelta(seconds=INTERVAL_S))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)


def _pack_entities(hass: HomeAssistant, entry: MockConfigEntry, address: int) -> dict[str, er.RegistryEntry]:
    """The entry's registry entries of one pack, by unique id."""
    owner = f"{device_base(entry)}_{address}_"
    return {
        e.unique_id: e
        for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        if e.unique_id.startswith(owner)
    }


def _value(hass: HomeAssistant, entity: er.RegistryEntry) -> str:
    state = hass.states.get(entity.entity_id)
    assert state is not None, entity.entity_id
    return state.state


async def test_pack_joins_a_broadcast_group(
    hass: HomeAssistant, simulator: Simulator, freezer: FrozenDateTimeFactory, device_registry: dr.DeviceRegistry
) -> None:
    """Configured with 2 packs, the master's broadcast reply carries a third: after two polls showing it, its
    device (behind the hub) and entities exist with its values, and the entry stores the new address."""
    entry = await entry_for(simulator, OPTIONS)
    assert (entry.data["strategy"], entry.data[CONF_ADDRESSES]) == ("broadcast", [1, 2])
    port = simulator.port
    await simulator.stop()
    # The homeowner has added a third pack to the parallel group: the master now answers for three.
    async with _simulator(port, 3) as grown:
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        coordinator = entry.runtime_data
        # Seen once (setup's poll): one sighting could be a glitch, nothing is added yet.
        assert _pack_entities(hass, entry, 3) == {}
        assert entry.data[CONF_ADDRESSES] == [1, 2]
        assert hass.states.get("sensor.battery_cluster_packs_online").state == "2"  # type: ignore[union-attr]
        hub = device_registry.async_get_device_by_identifier((DOMAIN, str(entry.unique_id)), entry.entry_id)
        assert hub is not None
        assert hub.model == "PACE BMS, 2 packs"

        await _poll(hass, freezer)

        assert state_of(entry) is ConfigEntryState.LOADED  # no reload: the same coordinator goes on polling
        assert entry.runtime_data is coordinator
        assert entry.data[CONF_ADDRESSES] == [1, 2, 3]
        assert coordinator.link_config.addresses == (1, 2, 3)
        hub = device_registry.async_get_device_by_identifier((DOMAIN, device_base(entry)), entry.entry_id)
        pack_3 = device_registry.async_get_device_by_identifier((DOMAIN, f"{device_base(entry)}_3"), entry.entry_id)
        assert hub is not None
        assert pack_3 is not None
        assert pack_3.via_device_id == hub.id
        assert hub.model == "PACE BMS, 3 packs"  # was "…, 2 packs" at setup
        entities = _pack_entities(hass, entry, 3)
        prefix = f"{device_base(entry)}_3_"
        assert entities.keys() >= {prefix + key for key in ("soc", "voltage", "alarm", "charging")}
        assert all(e.device_id == pack_3.id for e in entities.values())
        model = grown.cluster.pack(3)
        assert float(_value(hass, entities[prefix + "voltage"])) == pytest.approx(model.voltage_mv / 1000)
        # Per-cell sensors sized from the new pack's own reading.
        cells = {key for key in entities if key.startswith(prefix + "cell_") and key.endswith("_voltage")}
        assert len(cells - {prefix + "cell_min_voltage", prefix + "cell_max_voltage", prefix + "cell_avg_voltage"}) == (
            len(model.cell_mv)
        )
        assert _value(hass, entities[prefix + "operating_state"]) not in ("unavailable", "unknown")
        assert hass.states.get("sensor.battery_cluster_packs_online").state == "3"  # type: ignore[union-attr]

        # Added once: the next poll neither duplicates entities nor rewrites the entry.
        data = entry.data
        await _poll(hass, freezer)
        assert _pack_entities(hass, entry, 3).keys() == entities.keys()
        assert entry.data is data
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_glitch_adds_no_pack(hass: HomeAssistant, simulator: Simulator, freezer: FrozenDateTimeFactory) -> None:
    """A record beyond the configured packs in one poll only, or one showing no pack (all-zero: absent), adds
    nothing."""
    entry = await entry_for(simulator, OPTIONS)
    port = simulator.port
    await simulator.stop()
    async with _simulator(port, 3) as grown:
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        grown.cluster.set_online(3, False)  # its record is still there, all zero
        for _ in range(3):
            await _poll(hass, freezer)
        assert entry.data[CONF_ADDRESSES] == [1, 2]
        assert _pack_entities(hass, entry, 3) == {}
        # Online for one poll, then gone again: the count starts over.
        grown.cluster.set_online(3, True)
        await _poll(hass, freezer)
        grown.cluster.set_online(3, False)
        await _poll(hass, freezer)
        grown.cluster.set_online(3, True)
        await _poll(hass, freezer)
        assert entry.data[CONF_ADDRESSES] == [1, 2]
        await _poll(hass, freezer)
        assert entry.data[CONF_ADDRESSES] == [1, 2, 3]
        assert _pack_entities(hass, entry, 3)
        assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize("simulator", [{"protocol": "seplos", "link": "rs485"}], indirect=True)
async def test_reconfigure_finds_a_pack_added_to_a_bus(hass: HomeAssistant, simulator: Simulator) -> None:
    """On a bus each poll asks only the configured addresses, so a new pack is never seen; re-detection by a
    reconfigure stores it, and after the reload its entities exist. (No freezer here: detection waits for silent
    addresses, and a frozen clock would never time out.)"""
    entry = await entry_for(simulator, OPTIONS)
    assert (entry.data["strategy"], entry.data[CONF_ADDRESSES]) == ("bus", [0, 1])  # Seplos DIP addresses
    port = simulator.port
    await simulator.stop()
    async with _simulator(port, 3, protocol="seplos", link="rs485") as grown:
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        for polls in (1, 2):
            async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=INTERVAL_S * polls))
            await hass.async_block_till_done(wait_background_tasks=True)
        assert entry.data[CONF_ADDRESSES] == [0, 1]
        assert _pack_entities(hass, entry, 2) == {}

        result = await entry.start_reconfigure_flow(hass)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"next_step_id": "reconfigure_serial"}
        )
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_DEVICE: grown.url})
        assert result["type"] is FlowResultType.SHOW_PROGRESS
        await hass.async_block_till_done()
        result = await hass.config_entries.flow.async_configure(result["flow_id"])
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        await hass.async_block_till_done()

        assert entry.data[CONF_ADDRESSES] == [0, 1, 2]
        assert state_of(entry) is ConfigEntryState.LOADED
        entities = _pack_entities(hass, entry, 2)
        voltage = entities[f"{device_base(entry)}_2_voltage"]
        assert float(_value(hass, voltage)) == pytest.approx(
            grown.cluster.pack(2).voltage_mv / 1000, abs=0.01
        )  # 10 mV steps
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_link_down_at_start_raises_the_issue(
    hass: HomeAssistant, simulator: Simulator, freezer: FrozenDateTimeFactory, issue_registry: ir.IssueRegistry
) -> None:
    """A link already down when Home Assistant starts: each setup retry builds a new coordinator, yet the time the
    link went down is kept, so the issue comes once it has been down for LINK_DOWN_REPAIR_AFTER; a successful
    setup clears it, and removing the entry forgets the time."""
    entry = await entry_for(simulator, OPTIONS)
    port = simulator.port
    await simulator.stop()
    entry.add_to_hass(hass)
    issue_id = link_down_issue_id(entry.entry_id)

    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert state_of(entry) is ConfigEntryState.SETUP_RETRY
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None  # down for no time yet

    freezer.tick(LINK_DOWN_REPAIR_AFTER)
    await hass.config_entries.async_reload(entry.entry_id)
    assert state_of(entry) is ConfigEntryState.SETUP_RETRY
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "link_down"
    assert issue.translation_placeholders == {"title": entry.title}

    async with _simulator(port, 2):
        await hass.config_entries.async_reload(entry.entry_id)
        assert state_of(entry) is ConfigEntryState.LOADED
        assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
        assert entry.entry_id not in hass.data[LINK_DOWN_SINCE]
        assert await hass.config_entries.async_unload(entry.entry_id)

    # Down again while not loaded, then the entry is removed: nothing of it is left behind.
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.entry_id in hass.data[LINK_DOWN_SINCE]
    await async_remove_entry(hass, entry)
    assert entry.entry_id not in hass.data[LINK_DOWN_SINCE]

"""The coordinator against a link that goes away and comes back, and a pack that stops answering: availability,
translated errors, repair issues, and which devices the user may delete."""

from collections.abc import Iterator
from datetime import timedelta
from unittest.mock import patch

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.lfp_bms import async_remove_config_entry_device, async_remove_entry
from custom_components.lfp_bms.bms.simulator import Simulator, SimulatorConfig
from custom_components.lfp_bms.const import CONF_SCAN_INTERVAL, DOMAIN
from custom_components.lfp_bms.coordinator import link_down_issue_id, pack_missing_issue_id
from custom_components.lfp_bms.entity import device_base

from .common import setup_entry

INTERVAL_S = 60
OPTIONS = {CONF_SCAN_INTERVAL: INTERVAL_S}


async def _poll(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float = INTERVAL_S) -> None:
    """One poll interval later (freezer also moves the link's reconnect backoff clock)."""
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)


def _states(hass: HomeAssistant, entry: MockConfigEntry, owner: str | None = None) -> dict[str, str]:
    """State of every enabled entity of the entry (of one device's unique-id prefix when `owner` is given)."""
    states = {}
    for entity in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id):
        if entity.disabled_by is not None:
            continue
        if owner is not None and not entity.unique_id.startswith(f"{owner}_"):
            continue
        state = hass.states.get(entity.entity_id)
        assert state is not None
        states[entity.entity_id] = state.state
    assert states
    return states


def _pack_owner(entry: MockConfigEntry, address: int) -> str:
    return f"{device_base(entry)}_{address}"


@pytest.fixture
def repair_at_once() -> Iterator[None]:
    """Raise the link-down issue on the first failed poll."""
    with patch("custom_components.lfp_bms.coordinator.LINK_DOWN_REPAIR_AFTER", timedelta(0)):
        yield


@pytest.mark.usefixtures("repair_at_once")
async def test_link_unplugged_and_restored(
    hass: HomeAssistant, simulator: Simulator, freezer: FrozenDateTimeFactory, issue_registry: ir.IssueRegistry
) -> None:
    """Unplugging the link makes every entity unavailable with a translated error and raises the repair issue;
    a battery answering again on the same port brings everything back and deletes the issue."""
    entry = await setup_entry(hass, simulator, OPTIONS)
    coordinator = entry.runtime_data
    assert STATE_UNAVAILABLE not in _states(hass, entry).values()
    issue_id = link_down_issue_id(entry.entry_id)

    port = simulator.port
    await simulator.stop()
    await _poll(hass, freezer)

    assert set(_states(hass, entry).values()) == {STATE_UNAVAILABLE}
    assert not coordinator.last_update_success
    assert str(coordinator.last_exception).startswith("Cannot read the battery: ")
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "link_down"
    assert issue.translation_placeholders == {"title": entry.title}

    replacement = Simulator(SimulatorConfig(packs=2, speed=0, paced=False, seed=1, port=port))
    await replacement.start()
    try:
        await _poll(hass, freezer)
        assert coordinator.last_update_success
        assert STATE_UNAVAILABLE not in _states(hass, entry).values()
        assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    finally:
        await hass.config_entries.async_unload(entry.entry_id)
        await replacement.stop()


async def test_link_down_issue_waits(
    hass: HomeAssistant, simulator: Simulator, freezer: FrozenDateTimeFactory, issue_registry: ir.IssueRegistry
) -> None:
    """A short outage raises nothing; the issue comes once the link has been down for five minutes."""
    entry = await setup_entry(hass, simulator, OPTIONS)
    await simulator.stop()
    issue_id = link_down_issue_id(entry.entry_id)
    for _ in range(5):  # the first failure starts the clock; four minutes later still nothing
        await _poll(hass, freezer)
        assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    await _poll(hass, freezer)  # five minutes
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is not None

    # Removing the entry takes its issues with it.
    await hass.config_entries.async_unload(entry.entry_id)
    await async_remove_entry(hass, entry)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None


async def test_pack_offline(
    hass: HomeAssistant, simulator: Simulator, freezer: FrozenDateTimeFactory, issue_registry: ir.IssueRegistry
) -> None:
    """A silent pack makes only its own entities unavailable; after N polls a `pack_missing` issue names it, and
    both go away when it answers."""
    entry = await setup_entry(hass, simulator, OPTIONS)
    issue_id = pack_missing_issue_id(entry.entry_id, 2)
    with patch("custom_components.lfp_bms.coordinator.PACK_MISSING_REPAIR_POLLS", 2):
        simulator.cluster.set_online(2, False)
        await _poll(hass, freezer)

        pack_2 = _states(hass, entry, _pack_owner(entry, 2))
        energy = {entity_id for entity_id in pack_2 if "energy" in entity_id}
        # The energy counters keep their totals while the link works; everything else of pack 2 is unavailable.
        assert {state for entity_id, state in pack_2.items() if entity_id not in energy} == {STATE_UNAVAILABLE}
        pack_1 = _states(hass, entry, _pack_owner(entry, 1))
        assert STATE_UNAVAILABLE not in pack_1.values()
        hub = {
            entity_id: state for entity_id, state in _states(hass, entry).items() if entity_id not in pack_1 | pack_2
        }
        assert hub
        assert STATE_UNAVAILABLE not in hub.values()
        assert issue_registry.async_get_issue(DOMAIN, issue_id) is None

        await _poll(hass, freezer)
        issue = issue_registry.async_get_issue(DOMAIN, issue_id)
        assert issue is not None
        assert issue.translation_key == "pack_missing"
        assert issue.translation_placeholders == {
            "title": entry.title,
            "address": "2",
            "polls": "2",
            "online": "1",
            "expected": "2",
        }
        assert issue_registry.async_get_issue(DOMAIN, pack_missing_issue_id(entry.entry_id, 1)) is None

        simulator.cluster.set_online(2, True)
        await _poll(hass, freezer)
        assert STATE_UNAVAILABLE not in _states(hass, entry, _pack_owner(entry, 2)).values()
        assert issue_registry.async_get_issue(DOMAIN, issue_id) is None


async def test_remove_stale_pack_device(
    hass: HomeAssistant, simulator: Simulator, freezer: FrozenDateTimeFactory, device_registry: dr.DeviceRegistry
) -> None:
    """Only a pack that does not answer now may be deleted; never the cluster hub."""
    entry = await setup_entry(hass, simulator, OPTIONS)

    def device(identifier: str) -> dr.DeviceEntry:
        found = device_registry.async_get_device_by_identifier((DOMAIN, identifier), entry.entry_id)
        assert found is not None
        return found

    hub, pack_1, pack_2 = device(device_base(entry)), device(_pack_owner(entry, 1)), device(_pack_owner(entry, 2))
    assert not await async_remove_config_entry_device(hass, entry, hub)
    assert not await async_remove_config_entry_device(hass, entry, pack_2)

    simulator.cluster.set_online(2, False)
    await _poll(hass, freezer)
    assert await async_remove_config_entry_device(hass, entry, pack_2)
    assert not await async_remove_config_entry_device(hass, entry, pack_1)
    assert not await async_remove_config_entry_device(hass, entry, hub)

    # Unloaded, nothing tells whether a pack is there.
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert not await async_remove_config_entry_device(hass, entry, pack_2)

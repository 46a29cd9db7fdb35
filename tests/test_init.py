"""Setup and unload of a config entry against the simulated cluster."""

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr

from custom_components.lfp_bms.bms.simulator import Simulator
from custom_components.lfp_bms.const import DOMAIN

from .common import entry_for, setup_entry, state_of


async def test_setup_and_unload(hass: HomeAssistant, simulator: Simulator) -> None:
    """A config entry loads, reads the cluster, and unloads cleanly (the link is closed)."""
    entry = await setup_entry(hass, simulator)
    assert entry.state is ConfigEntryState.LOADED
    soc = hass.states.get("sensor.pack_1_battery")
    assert soc is not None
    assert 0 <= float(soc.state) <= 100
    registry = dr.async_get(hass)
    hub = registry.async_get_device_by_identifier((DOMAIN, str(entry.unique_id)), entry.entry_id)
    pack_1 = registry.async_get_device_by_identifier((DOMAIN, f"{entry.unique_id}_1"), entry.entry_id)
    assert hub is not None
    assert pack_1 is not None
    # The cluster's model says in words what it is; each pack keeps the model its BMS reports.
    assert (hub.name, hub.model) == ("Battery cluster", "PACE BMS, 2 packs")
    assert pack_1.model == simulator.cluster.pack(1).model
    link = entry.runtime_data.link
    open_before = link.is_open
    assert await hass.config_entries.async_unload(entry.entry_id)
    # Read through a call: mypy would keep the LOADED narrowing across the await.
    assert state_of(entry) is ConfigEntryState.NOT_LOADED
    assert (open_before, link.is_open) == (True, False)


async def test_link_down_at_start_retries(hass: HomeAssistant, simulator: Simulator) -> None:
    """ConfigEntryNotReady (SETUP_RETRY) when nothing answers at setup."""
    entry = await entry_for(simulator)
    await simulator.stop()
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY

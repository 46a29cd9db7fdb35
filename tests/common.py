"""Helpers for the Home Assistant tests: a simulated cluster and a config entry pointing at it."""

from typing import Any

from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.lfp_bms.bms.detect import detect
from custom_components.lfp_bms.bms.simulator import Simulator
from custom_components.lfp_bms.bms.transport import SerialLink
from custom_components.lfp_bms.const import CONF_DEVICE, CONF_REFRESH_S, CONF_SERIAL, DOMAIN
from custom_components.lfp_bms.migrate import MINOR_VERSION, VERSION


async def entry_for(sim: Simulator, options: dict[str, Any] | None = None) -> MockConfigEntry:
    """A config entry with what detection finds on `sim` (the flow's own data layout)."""
    link = SerialLink(sim.url)
    try:
        result = await detect(link, bauds=(9600,))
    finally:
        await link.close()
    return MockConfigEntry(
        domain=DOMAIN,
        title="Battery cluster",
        # As the flow stores it: only a serial is a unique id.
        unique_id=result.identity.serial,
        version=VERSION,
        minor_version=MINOR_VERSION,
        data={
            CONF_DEVICE: sim.url,
            CONF_SERIAL: result.identity.serial,
            CONF_REFRESH_S: result.refresh_s,
            **result.config.as_dict(),
        },
        options=options or {},
    )


async def setup_entry(hass: HomeAssistant, sim: Simulator, options: dict[str, Any] | None = None) -> MockConfigEntry:
    """Add and set up an entry for `sim`; returns it loaded."""
    entry = await entry_for(sim, options)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


def state_of(entry: ConfigEntry[Any]) -> ConfigEntryState:
    """The entry's state, read through a call so that type checkers do not carry an earlier narrowing."""
    return entry.state

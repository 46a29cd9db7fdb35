"""Setup and unload of a config entry."""

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.lfp_bms.const import DOMAIN


async def test_setup_and_unload(hass: HomeAssistant) -> None:
    """A config entry loads and unloads cleanly."""
    entry = MockConfigEntry(domain=DOMAIN, data={"device": "socket://127.0.0.1:1"}, unique_id="x")
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED  # type: ignore[comparison-overlap]  # mypy keeps the narrowing across await

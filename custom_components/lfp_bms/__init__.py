"""The lfp_bms integration: LiFePO4 rack and wall batteries with a PACE-family BMS."""

from typing import TYPE_CHECKING

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.typing import ConfigType

from .const import DOMAIN

if TYPE_CHECKING:
    from .coordinator import LfpBmsConfigEntry

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)
PLATFORMS: list[Platform] = [Platform.SENSOR]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Set up the integration-wide parts (service actions)."""
    return True


async def async_setup_entry(hass: HomeAssistant, entry: LfpBmsConfigEntry) -> bool:
    """Set up one battery link: open it, read the cluster once, create the hub device, forward platforms."""
    # Imported here, not at module level: importing the pure protocol library (custom_components.lfp_bms.bms,
    # e.g. by its CLI) runs this package's __init__, which must stay light.
    from .coordinator import LfpBmsCoordinator
    from .entity import MANUFACTURER, cluster_identifier

    coordinator = LfpBmsCoordinator(hass, entry)
    # Closes the link on unload and also when setup fails below (ConfigEntryNotReady).
    entry.async_on_unload(coordinator.async_shutdown)
    await coordinator.async_config_entry_first_refresh()
    hub = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, cluster_identifier(coordinator))},
        manufacturer=MANUFACTURER,
        model=f"{coordinator.link_config.protocol} cluster",
        name=entry.title,
    )
    coordinator.cluster_device_id = hub.id
    entry.runtime_data = coordinator
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: LfpBmsConfigEntry) -> bool:
    """Unload one battery link (the link is closed by the coordinator's shutdown)."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)

"""The lfp_bms integration: LiFePO4 rack and wall batteries with a PACE-family BMS."""

from typing import TYPE_CHECKING, cast

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.typing import ConfigType

from .const import CONF_ADDRESSES, DOMAIN, is_can_entry

if TYPE_CHECKING:
    from .can_coordinator import LfpCanConfigEntry
    from .coordinator import LfpBmsConfigEntry

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)
PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.EVENT,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Set up the integration-wide parts (service actions)."""
    from .services import async_setup_services

    async_setup_services(hass)
    return True


async def async_migrate_entry(hass: HomeAssistant, entry: LfpBmsConfigEntry) -> bool:
    """Move an entry stored by an older version (ids, options) to what this one expects."""
    from .migrate import async_migrate

    return await async_migrate(hass, entry)


async def async_setup_entry(hass: HomeAssistant, entry: LfpBmsConfigEntry) -> bool:
    """Set up one battery link: open it, read the cluster once, create the hub device, forward platforms."""
    if is_can_entry(entry.data):
        from .can_coordinator import async_setup_can_entry

        # A CAN entry's runtime_data is the CAN coordinator; the entry type names the serial one.
        return await async_setup_can_entry(hass, cast("LfpCanConfigEntry", entry))
    # Imported here, not at module level: importing the pure protocol library (custom_components.lfp_bms.bms,
    # e.g. by its CLI) runs this package's __init__, which must stay light.
    from .coordinator import LfpBmsCoordinator, cluster_model
    from .entity import MANUFACTURER, cluster_identifier

    coordinator = LfpBmsCoordinator(hass, entry)
    # Closes the link on unload and also when setup fails below (ConfigEntryNotReady).
    entry.async_on_unload(coordinator.async_shutdown)
    await coordinator.async_config_entry_first_refresh()
    hub = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, cluster_identifier(coordinator))},
        manufacturer=MANUFACTURER,
        model=cluster_model(coordinator.link_config),
        name=entry.title,
    )
    coordinator.cluster_device_id = hub.id
    entry.runtime_data = coordinator
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: LfpBmsConfigEntry) -> bool:
    """Unload one battery link (the link is closed by the coordinator's shutdown)."""
    if is_can_entry(entry.data):
        from .can_coordinator import CAN_PLATFORMS

        return await hass.config_entries.async_unload_platforms(entry, CAN_PLATFORMS)
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: LfpBmsConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Let the user delete a pack device that does not answer now (a pack taken out); never the cluster hub."""
    from .coordinator import LfpBmsCoordinator
    from .entity import cluster_identifier, pack_identifier

    coordinator = getattr(entry, "runtime_data", None)
    if not isinstance(coordinator, LfpBmsCoordinator):
        return False  # not loaded (or a CAN entry): nothing tells whether the pack is there
    identifiers = {value for domain, value in device.identifiers if domain == DOMAIN}
    if cluster_identifier(coordinator) in identifiers:
        return False
    packs = coordinator.data.cluster.packs if coordinator.data is not None else {}
    return not any(
        pack_identifier(coordinator, address) in identifiers and reading.online for address, reading in packs.items()
    )


async def async_remove_entry(hass: HomeAssistant, entry: LfpBmsConfigEntry) -> None:
    """Drop the entry's repair issues and link-down time with it (they otherwise only go when the link or pack
    answers)."""
    from .coordinator import link_down_issue_id, link_down_since, pack_missing_issue_id

    link_down_since(hass).pop(entry.entry_id, None)
    ir.async_delete_issue(hass, DOMAIN, link_down_issue_id(entry.entry_id))
    for address in entry.data.get(CONF_ADDRESSES, ()):
        ir.async_delete_issue(hass, DOMAIN, pack_missing_issue_id(entry.entry_id, int(address)))

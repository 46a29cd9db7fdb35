"""Config entry migrations: what older versions stored, moved to what this one expects.

Every step keeps entity registry entries (so their entity_id, and with it every statistic and every automation)
and edits them in place; nothing is removed and re-created.
"""

import logging

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er

from .const import CONF_SERIAL, DOMAIN, is_can_entry
from .coordinator import LfpBmsConfigEntry

_LOGGER = logging.getLogger(__name__)

#: The version this integration writes (config_flow.LfpBmsConfigFlow.VERSION / MINOR_VERSION).
VERSION = 1
MINOR_VERSION = 2


async def async_migrate(hass: HomeAssistant, entry: LfpBmsConfigEntry) -> bool:
    """Bring `entry` to the current version; False for an entry from a newer major version (a downgrade)."""
    if entry.version > VERSION:
        return False
    if entry.minor_version < 2:
        await _ids_off_the_link(hass, entry)
    return True


def _rebased(identifier: str, old: str, new: str) -> str | None:
    """`identifier` with the base `old` replaced by `new` (the base itself or `<base>_...`); None if not based on it."""
    if identifier == old:
        return new
    if identifier.startswith(f"{old}_"):
        return new + identifier[len(old) :]
    return None


async def _ids_off_the_link(hass: HomeAssistant, entry: LfpBmsConfigEntry) -> None:
    """1.1 → 1.2: an entry without a serial had its link (URL, device path, CAN channel) as unique id, and every
    device identifier and entity unique id started with it, so a move to another port orphaned them all. Now only
    a serial is a unique id, and everything else hangs on the entry id."""
    old_base = entry.unique_id or entry.entry_id
    serial = None if is_can_entry(entry.data) else entry.data.get(CONF_SERIAL)
    unique_id = serial if serial and entry.unique_id == serial else None
    new_base = unique_id or entry.entry_id
    if new_base != old_base:
        device_registry = dr.async_get(hass)
        for device in dr.async_entries_for_config_entry(device_registry, entry.entry_id):
            identifiers = {
                (domain, _rebased(value, old_base, new_base) or value) if domain == DOMAIN else (domain, value)
                for domain, value in device.identifiers
            }
            if identifiers != device.identifiers:
                device_registry.async_update_device(device.id, new_identifiers=identifiers)

        def rebase(entity: er.RegistryEntry) -> dict[str, str] | None:
            new_unique_id = _rebased(entity.unique_id, old_base, new_base)
            return None if new_unique_id is None else {"new_unique_id": new_unique_id}

        await er.async_migrate_entries(hass, entry.entry_id, rebase)
        _LOGGER.info("%s: device and entity ids moved from the link to the entry id", entry.title)
    hass.config_entries.async_update_entry(entry, unique_id=unique_id, minor_version=2)

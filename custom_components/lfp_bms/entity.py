"""Base entity: device info for the cluster hub and each pack, availability, change-only state writes."""

from collections.abc import Callable, Iterable
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity, DataUpdateCoordinator

from .bms.models import PackReading
from .const import DOMAIN
from .coordinator import LfpBmsCoordinator

MANUFACTURER = "PACE BMS"


def device_base(entry: ConfigEntry[Any]) -> str:
    """What every device identifier and entity unique id of an entry starts with: the master's serial (the entry's
    unique id) when the cluster has one, else the entry id. Never the link: a move to another port or bridge must
    keep every device, entity id and statistic (migrate.py moved older entries off their link URL)."""
    return entry.unique_id or entry.entry_id


def cluster_identifier(coordinator: LfpBmsCoordinator) -> str:
    """Device identifier of the cluster."""
    return device_base(coordinator.config_entry)


def pack_identifier(coordinator: LfpBmsCoordinator, address: int) -> str:
    """Device identifier of a pack: cluster id + address.

    Serials are not used here although the master's is known: slaves behind a master have none to give
    (docs/protocol.md §1.12), and an identifier must not change when a serial read succeeds later.
    """
    return f"{cluster_identifier(coordinator)}_{address}"


def add_pack_entities(
    coordinator: LfpBmsCoordinator,
    async_add_entities: AddConfigEntryEntitiesCallback,
    pack_entities: Callable[[int], Iterable[Entity]],
) -> None:
    """Add the entities of every configured pack now, and those of each pack the coordinator adds to the link
    config later (a pack that joined a broadcast group)."""
    known: set[int] = set()

    @callback
    def add_new_packs() -> None:
        new = [address for address in coordinator.link_config.addresses if address not in known]
        if new:
            known.update(new)
            async_add_entities([entity for address in new for entity in pack_entities(address)])

    add_new_packs()
    coordinator.config_entry.async_on_unload(coordinator.async_add_listener(add_new_packs))


class ChangeOnlyEntity[C: DataUpdateCoordinator[Any]](CoordinatorEntity[C]):
    """Writes its state only when `_state_key()` changed: a 16-pack cluster has ~1000 entities, most steady."""

    _attr_has_entity_name = True
    _written: tuple[Any, ...] | None = None

    def _state_key(self) -> tuple[Any, ...]:
        """What the written state depends on; subclasses add their value and attributes."""
        return (self.available,)

    @callback
    def _handle_coordinator_update(self) -> None:
        key = self._state_key()
        if key != self._written:
            self._written = key
            self.async_write_ha_state()


class LfpBmsEntity(ChangeOnlyEntity[LfpBmsCoordinator]):
    """An entity of the cluster (address None) or of one pack."""

    def __init__(self, coordinator: LfpBmsCoordinator, description: EntityDescription, address: int | None) -> None:
        super().__init__(coordinator)
        self.entity_description = description
        self.address = address
        owner = cluster_identifier(coordinator) if address is None else pack_identifier(coordinator, address)
        self._attr_unique_id = f"{owner}_{description.key}"
        self._attr_device_info = self._device_info()

    def _device_info(self) -> DeviceInfo:
        coordinator = self.coordinator
        if self.address is None:
            return DeviceInfo(identifiers={(DOMAIN, cluster_identifier(coordinator))})
        identity = coordinator.identities.get(self.address)
        info = DeviceInfo(
            identifiers={(DOMAIN, pack_identifier(coordinator, self.address))},
            manufacturer=MANUFACTURER,
            translation_key="pack",
            translation_placeholders={"address": str(self.address)},
        )
        if coordinator.cluster_device_id is not None:
            info["via_device_id"] = coordinator.cluster_device_id
        if identity is not None:
            if identity.model:
                info["model"] = identity.model
            if identity.serial:
                info["serial_number"] = identity.serial
            if identity.firmware:
                info["sw_version"] = identity.firmware
        return info

    @property
    def reading(self) -> PackReading | None:
        """This pack's reading from the last poll (None for the cluster or an unknown address)."""
        if self.address is None:
            return None
        return self.coordinator.data.cluster.packs.get(self.address)

    @property
    def available(self) -> bool:
        """Unavailable with the link; a pack entity also when its pack did not answer."""
        if not super().available:
            return False
        if self.address is None:
            return self.coordinator.data.cluster.summary.packs_online > 0
        reading = self.reading
        return reading is not None and reading.online

"""Base entity of the CAN link: every CAN entity belongs to the cluster device and writes state only on change."""

from typing import Any

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .bms.can import CanState
from .can_coordinator import LfpCanCoordinator, can_identifier
from .const import DOMAIN


class LfpCanEntity(CoordinatorEntity[LfpCanCoordinator]):
    """An entity of the cluster heard on the CAN bus (a passive listener learns nothing per pack)."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: LfpCanCoordinator, description: EntityDescription) -> None:
        super().__init__(coordinator)
        self.entity_description = description
        owner = can_identifier(coordinator.config_entry)
        self._attr_unique_id = f"{owner}_{description.key}"
        self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, owner)})
        self._written: tuple[Any, ...] | None = None

    @property
    def state_data(self) -> CanState:
        """The last published bus state."""
        return self.coordinator.data.state

    def _state_key(self) -> tuple[Any, ...]:
        """What the written state depends on; subclasses add their value."""
        return (self.available,)

    @callback
    def _handle_coordinator_update(self) -> None:
        """Write state only when it changed (the bus publishes every second, most values are steady)."""
        key = self._state_key()
        if key != self._written:
            self._written = key
            self.async_write_ha_state()

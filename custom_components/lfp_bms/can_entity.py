"""Base entity of the CAN link: every CAN entity belongs to the cluster device and writes state only on change."""

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import EntityDescription

from .bms.can import CanState
from .can_coordinator import LfpCanCoordinator, can_identifier
from .const import DOMAIN
from .entity import ChangeOnlyEntity


class LfpCanEntity(ChangeOnlyEntity[LfpCanCoordinator]):
    """An entity of the cluster heard on the CAN bus (a passive listener learns nothing per pack)."""

    def __init__(self, coordinator: LfpCanCoordinator, description: EntityDescription) -> None:
        super().__init__(coordinator)
        self.entity_description = description
        owner = can_identifier(coordinator.config_entry)
        self._attr_unique_id = f"{owner}_{description.key}"
        self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, owner)})

    @property
    def state_data(self) -> CanState:
        """The last published bus state."""
        return self.coordinator.data.state

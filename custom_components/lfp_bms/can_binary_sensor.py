"""Binary sensors of a CAN entry: the request flags of 0x35C, protection/warning summaries, one entity per flag.

The summaries follow docs/protocol.md §3.2: any bit set in bytes 0/1 of 0x359 is a protection and in bytes 2/3 a
warning, named by the tables or not (the raw words are the `protection_flags` / `warning_flags` sensors).
The per-flag entities (tables P1/P2/A1/A2 and Seplos' cell failure) are disabled by default.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.binary_sensor import BinarySensorEntity, BinarySensorEntityDescription
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .bms.can import PROTECTION_BITS, WARNING_BITS, CanFlag, CanState, Requests
from .can_coordinator import LfpCanCoordinator
from .can_entity import LfpCanEntity


@dataclass(frozen=True, kw_only=True)
class CanBinarySensorDescription(BinarySensorEntityDescription):
    """A flag of the bus state (None = not sent)."""

    value_fn: Callable[[CanState], bool | None]


def _request(attribute: str) -> Callable[[CanState], bool | None]:
    def value(state: CanState) -> bool | None:
        requests: Requests | None = state.requests
        return None if requests is None else bool(getattr(requests, attribute))

    return value


def _flag(level: str, flag: CanFlag) -> CanBinarySensorDescription:
    """E.g. key/translation key `protection_cell_overvoltage`, as the serial link's per-flag entities."""

    def value(state: CanState) -> bool | None:
        if state.alarms is None:
            return None
        flags = state.alarms.protection_flags if level == "protection" else state.alarms.warning_flags
        return flag in flags

    return CanBinarySensorDescription(
        key=f"{level}_{flag}",
        translation_key=f"{level}_{flag}",
        device_class=BinarySensorDeviceClass.PROBLEM,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=value,
    )


CAN_BINARY_SENSORS: tuple[CanBinarySensorDescription, ...] = (
    CanBinarySensorDescription(
        key="charge_enable", translation_key="charge_enable", value_fn=_request("charge_enable")
    ),
    CanBinarySensorDescription(
        key="discharge_enable", translation_key="discharge_enable", value_fn=_request("discharge_enable")
    ),
    CanBinarySensorDescription(
        key="force_charge_1", translation_key="force_charge_1", value_fn=_request("force_charge_1")
    ),
    CanBinarySensorDescription(
        key="force_charge_2", translation_key="force_charge_2", value_fn=_request("force_charge_2")
    ),
    CanBinarySensorDescription(
        key="full_charge_request", translation_key="full_charge_request", value_fn=_request("full_charge")
    ),
    CanBinarySensorDescription(
        key="protection",
        translation_key="protection_active",
        device_class=BinarySensorDeviceClass.PROBLEM,
        value_fn=lambda s: s.protection_active,
    ),
    CanBinarySensorDescription(
        key="warning",
        translation_key="warning_active",
        device_class=BinarySensorDeviceClass.PROBLEM,
        value_fn=lambda s: s.warning_active,
    ),
    *(_flag("protection", flag) for flag in PROTECTION_BITS.values()),
    *(_flag("warning", flag) for flag in WARNING_BITS.values()),
)


async def async_setup_can_binary_sensors(
    hass: HomeAssistant, entry: ConfigEntry[Any], async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Create the binary sensors of a CAN entry (called by the binary_sensor platform for CAN entries)."""
    coordinator: LfpCanCoordinator = entry.runtime_data
    async_add_entities(CanBinarySensor(coordinator, d) for d in CAN_BINARY_SENSORS)


class CanBinarySensor(LfpCanEntity, BinarySensorEntity):
    """A flag heard on the bus."""

    entity_description: CanBinarySensorDescription

    @property
    def is_on(self) -> bool | None:
        return self.entity_description.value_fn(self.state_data)

    def _state_key(self) -> tuple[Any, ...]:
        return (self.available, self.is_on)

"""Numbers: every protection parameter of every PACE parameter group (docs/protocol.md §1.9.12) of a writable pack.

Units, steps and ranges come from the group's field specs. A change reads the group, changes the one field,
validates the whole group (ranges, steps, alarm < protection, release on the safe side) before anything is sent,
writes it and shows what the pack reads back. All are configuration entities, disabled by default.
"""

from dataclasses import dataclass
from typing import Any

from homeassistant.components.number import NumberDeviceClass, NumberEntity, NumberEntityDescription, NumberMode
from homeassistant.const import (
    EntityCategory,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfRatio,
    UnitOfTemperature,
    UnitOfTime,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .bms.control import GROUPS, PaceControl
from .bms.pace_params import FieldSpec, ParameterGroup, ProtocolSelection
from .control_entity import (
    LfpBmsControlEntity,
    parameter_addresses,
    parameter_control,
    set_parameter_group,
    validate_values,
)
from .coordinator import LfpBmsConfigEntry, LfpBmsCoordinator

PARALLEL_UPDATES = 1

#: Library unit → (HA unit, device class).
_UNITS: dict[str | None, tuple[str | None, NumberDeviceClass | None]] = {
    "V": (UnitOfElectricPotential.VOLT, NumberDeviceClass.VOLTAGE),
    "mV": (UnitOfElectricPotential.MILLIVOLT, NumberDeviceClass.VOLTAGE),
    "A": (UnitOfElectricCurrent.AMPERE, NumberDeviceClass.CURRENT),
    "s": (UnitOfTime.SECONDS, NumberDeviceClass.DURATION),
    "min": (UnitOfTime.MINUTES, NumberDeviceClass.DURATION),
    "μs": (UnitOfTime.MICROSECONDS, NumberDeviceClass.DURATION),
    "°C": (UnitOfTemperature.CELSIUS, NumberDeviceClass.TEMPERATURE),
    "%": (UnitOfRatio.PERCENTAGE, None),
    None: (None, None),
}


@dataclass(frozen=True, kw_only=True)
class ParameterNumberDescription(NumberEntityDescription):
    """One field of one parameter group."""

    group: type[ParameterGroup]
    field: str


def _description(
    group_name: str, group: type[ParameterGroup], field: str, spec: FieldSpec
) -> ParameterNumberDescription:
    unit, device_class = _UNITS[spec.unit]
    return ParameterNumberDescription(
        key=f"{group_name}_{field}",
        translation_key=f"{group_name}_{field}",
        entity_category=EntityCategory.CONFIG,
        entity_registry_enabled_default=False,
        device_class=device_class,
        native_unit_of_measurement=unit,
        native_min_value=spec.minimum,
        native_max_value=spec.maximum,
        native_step=spec.step,
        mode=NumberMode.BOX,
        group=group,
        field=field,
    )


#: Every settable field; the protocol selection codes are selects (select.py), not numbers.
PARAMETER_NUMBERS: tuple[ParameterNumberDescription, ...] = tuple(
    _description(name, group, field, spec)
    for name, group in GROUPS.items()
    if group is not ProtocolSelection
    for field, spec in group.specs.items()
)


async def async_setup_entry(
    hass: HomeAssistant, entry: LfpBmsConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Parameter numbers of every writable pack, only with control allowed (CAN entries never load this platform)."""
    coordinator = entry.runtime_data
    control = parameter_control(coordinator)
    if control is None:
        return
    # A PACE Modbus map has the groups of registers 60-112 (no limiter start current, no protocol selection).
    groups = set(GROUPS.values() if isinstance(control, PaceControl) else control.groups.values())
    async_add_entities(
        ParameterNumber(coordinator, description, address)
        for address in parameter_addresses(coordinator)
        for description in PARAMETER_NUMBERS
        if description.group in groups
    )


class ParameterNumber(LfpBmsControlEntity, NumberEntity):
    """One protection parameter as the pack last reported it."""

    entity_description: ParameterNumberDescription

    def __init__(self, coordinator: LfpBmsCoordinator, description: ParameterNumberDescription, address: int) -> None:
        super().__init__(coordinator, description, address)

    @property
    def native_value(self) -> float | None:
        """From the group read at setup, hourly, on demand or after a write."""
        group = self.coordinator.parameters.get(self.address, {}).get(self.entity_description.group)
        return None if group is None else getattr(group, self.entity_description.field)

    @property
    def available(self) -> bool:
        """Unavailable until the group has been read."""
        return super().available and self.native_value is not None

    async def async_set_native_value(self, value: float) -> None:
        """Validate the whole group with the new value, write it and show the value read back."""
        description = self.entity_description
        # HA's range check lets NaN through (every comparison with it is false).
        await validate_values(description.group, {description.field: value})
        control = parameter_control(self.coordinator)
        assert control is not None  # the entity exists only with one
        group = await self._run(control.write_values(self.address, description.group, {description.field: value}))
        set_parameter_group(self.coordinator, self.address, group)

    def _state_key(self) -> tuple[Any, ...]:
        return (self.available, self.native_value)

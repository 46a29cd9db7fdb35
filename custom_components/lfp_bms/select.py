"""Selects of a writable pack: charge-limiter gear and the inverter protocol selection (0xEB/0xEC).

Protocol codes come from the enumeration tables (docs/protocol.md §1.9.13); a code the tables do not know is shown
as it is (`unknown_0x2A`, added to the options) — never hidden or rewritten to a known one.
"""

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .bms.control import Switch, switch_state
from .bms.pace_params import CAN_PROTOCOLS, PROTOCOL_TYPES, RS485_PROTOCOLS, ProtocolSelection
from .const import DOMAIN
from .control_entity import LfpBmsControlEntity, control_addresses, set_parameter_group, update_pack_status
from .coordinator import LfpBmsConfigEntry, LfpBmsCoordinator

PARALLEL_UPDATES = 1

GEAR_HIGH = "high"
GEAR_LOW = "low"
#: Protocol type codes as translatable option keys (the table's names, lower case).
PROTOCOL_TYPE_OPTIONS: Mapping[int, str] = {code: name.lower() for code, name in PROTOCOL_TYPES.items()}


def unknown_option(code: int) -> str:
    """Option shown for a code the enumeration does not list."""
    return f"unknown_0x{code:02X}"


@dataclass(frozen=True, kw_only=True)
class ProtocolSelectDescription(SelectEntityDescription):
    """One byte of the protocol selection group: its field and the code → option table."""

    field: str
    table: Mapping[int, str]


PROTOCOL_SELECTS: tuple[ProtocolSelectDescription, ...] = (
    ProtocolSelectDescription(
        key="can_protocol",
        translation_key="can_protocol",
        entity_category=EntityCategory.CONFIG,
        field="can_protocol",
        table=CAN_PROTOCOLS,
    ),
    ProtocolSelectDescription(
        key="rs485_protocol",
        translation_key="rs485_protocol",
        entity_category=EntityCategory.CONFIG,
        field="rs485_protocol",
        table=RS485_PROTOCOLS,
    ),
    ProtocolSelectDescription(
        key="protocol_type",
        translation_key="protocol_type",
        entity_category=EntityCategory.CONFIG,
        field="selection_type",
        table=PROTOCOL_TYPE_OPTIONS,
    ),
)
GEAR_SELECT = SelectEntityDescription(
    key="limiter_gear",
    translation_key="limiter_gear",
    entity_category=EntityCategory.CONFIG,
    options=[GEAR_HIGH, GEAR_LOW],
)


async def async_setup_entry(
    hass: HomeAssistant, entry: LfpBmsConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Selects of every writable pack, only with control allowed (a CAN entry never forwards this platform)."""
    coordinator = entry.runtime_data
    entities: list[SelectEntity] = []
    for address in control_addresses(coordinator):
        entities.append(LimiterGearSelect(coordinator, address))
        entities += [ProtocolSelect(coordinator, description, address) for description in PROTOCOL_SELECTS]
    async_add_entities(entities)


class LimiterGearSelect(LfpBmsControlEntity, SelectEntity):
    """Charge-limiter gear (0x99 high/low), state from the status's control byte."""

    def __init__(self, coordinator: LfpBmsCoordinator, address: int) -> None:
        super().__init__(coordinator, GEAR_SELECT, address)

    @property
    def current_option(self) -> str | None:
        """As the BMS last reported it."""
        reading = self.reading
        if reading is None or reading.status is None or reading.status.limiter_low_gear is None:
            return None
        return GEAR_LOW if reading.status.limiter_low_gear else GEAR_HIGH

    async def async_select_option(self, option: str) -> None:
        """Switch the gear; the reply's control byte is what is shown afterwards."""
        reply = await self._write(lambda control: control.set_switch(self.address, Switch.LOW_GEAR, option == GEAR_LOW))
        low_gear = switch_state(reply, Switch.LOW_GEAR)
        update_pack_status(self.coordinator, self.address, lambda status: replace(status, limiter_low_gear=low_gear))

    def _state_key(self) -> tuple[Any, ...]:
        return (self.available, self.current_option)


class ProtocolSelect(LfpBmsControlEntity, SelectEntity):
    """One code of the inverter protocol selection, from the group read at setup (or after a write)."""

    entity_description: ProtocolSelectDescription

    def __init__(self, coordinator: LfpBmsCoordinator, description: ProtocolSelectDescription, address: int) -> None:
        super().__init__(coordinator, description, address)

    @property
    def _code(self) -> int | None:
        group = self.coordinator.parameters.get(self.address, {}).get(ProtocolSelection)
        return None if group is None else int(getattr(group, self.entity_description.field))

    @property
    def options(self) -> list[str]:
        """The table's options, plus the pack's current code when the table does not know it."""
        known = list(self.entity_description.table.values())
        code = self._code
        if code is not None and code not in self.entity_description.table:
            known.append(unknown_option(code))
        return known

    @property
    def current_option(self) -> str | None:
        """The code the BMS reported, by its name or as `unknown_0x..`."""
        code = self._code
        if code is None:
            return None
        return self.entity_description.table.get(code, unknown_option(code))

    @property
    def available(self) -> bool:
        """Unavailable until the group has been read."""
        return super().available and self._code is not None

    async def async_select_option(self, option: str) -> None:
        """Write the chosen code (an unknown one only back as it was read), then show the group read back."""
        codes = {name: code for code, name in self.entity_description.table.items()}
        current = self._code
        if current is not None:
            codes.setdefault(unknown_option(current), current)
        if option not in codes:
            raise ServiceValidationError(
                translation_domain=DOMAIN, translation_key="invalid_option", translation_placeholders={"option": option}
            )
        change = {self.entity_description.field: codes[option]}
        group = await self._write(lambda control: control.write_values(self.address, ProtocolSelection, change))
        set_parameter_group(self.coordinator, self.address, group)

    def _state_key(self) -> tuple[Any, ...]:
        return (self.available, self.current_option, tuple(self.options))

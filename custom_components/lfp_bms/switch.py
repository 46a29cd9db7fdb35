"""Switches of a writable pack: charge/discharge MOSFET, buzzer, LED alarm, charge current limiter.

The state is always what the BMS reports in its status (0x44), never what was asked: after a write the pack is
read back and that state is published; a refusal or a disagreeing read-back raises a translated error.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .bms.control import PaceControl, Switch, switch_state
from .bms.models import PackStatus
from .control_entity import LfpBmsControlEntity, control_addresses, update_pack_status
from .coordinator import LfpBmsConfigEntry, LfpBmsCoordinator

PARALLEL_UPDATES = 1


type StatusChange = Callable[[PackStatus], PackStatus]
type SwitchWrite = Callable[[PaceControl, int, bool], Awaitable[StatusChange]]


@dataclass(frozen=True, kw_only=True)
class PackSwitchDescription(SwitchEntityDescription):
    """`value_fn` reads the switch from the status; `write_fn` switches it and returns how the status changed."""

    value_fn: Callable[[PackStatus], bool | None]
    write_fn: SwitchWrite


def _mos(charge: bool) -> SwitchWrite:
    """Write a MOSFET (0x9A/0x9B); the status read back afterwards replaces the polled one."""

    async def write(control: PaceControl, address: int, on: bool) -> StatusChange:
        read_back = await control.set_mos(address, charge=charge, on=on)
        return lambda _: read_back

    return write


def _switch(switch: Switch, update: Callable[[PackStatus, bool], PackStatus]) -> SwitchWrite:
    """Write a 0x99 switch; the reply's control byte (already checked) updates the status shown."""

    async def write(control: PaceControl, address: int, on: bool) -> StatusChange:
        state = switch_state(await control.set_switch(address, switch, on), switch)
        return lambda status: update(status, state)

    return write


SWITCHES: tuple[PackSwitchDescription, ...] = (
    PackSwitchDescription(
        key="charge_mos",
        translation_key="charge_mos",
        entity_category=EntityCategory.CONFIG,
        value_fn=lambda s: s.charge_mos_on,
        write_fn=_mos(charge=True),
    ),
    PackSwitchDescription(
        key="discharge_mos",
        translation_key="discharge_mos",
        entity_category=EntityCategory.CONFIG,
        value_fn=lambda s: s.discharge_mos_on,
        write_fn=_mos(charge=False),
    ),
    PackSwitchDescription(
        key="buzzer",
        translation_key="buzzer",
        entity_category=EntityCategory.CONFIG,
        value_fn=lambda s: s.buzzer_enabled,
        write_fn=_switch(Switch.BUZZER, lambda s, on: replace(s, buzzer_enabled=on)),
    ),
    PackSwitchDescription(
        key="led_alarm",
        translation_key="led_alarm",
        entity_category=EntityCategory.CONFIG,
        value_fn=lambda s: s.led_alarm_enabled,
        write_fn=_switch(Switch.LED_ALARM, lambda s, on: replace(s, led_alarm_enabled=on)),
    ),
    PackSwitchDescription(
        key="charge_limiter",
        translation_key="charge_limiter",
        entity_category=EntityCategory.CONFIG,
        value_fn=lambda s: s.limiter_enabled,
        write_fn=_switch(Switch.LIMITER, lambda s, on: replace(s, limiter_enabled=on)),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant, entry: LfpBmsConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Switches of every writable pack, only with control allowed (a CAN entry never forwards this platform)."""
    coordinator = entry.runtime_data
    async_add_entities(
        PackSwitch(coordinator, description, address)
        for address in control_addresses(coordinator)
        for description in SWITCHES
    )


class PackSwitch(LfpBmsControlEntity, SwitchEntity):
    """One switch of a writable pack."""

    entity_description: PackSwitchDescription

    def __init__(self, coordinator: LfpBmsCoordinator, description: PackSwitchDescription, address: int) -> None:
        super().__init__(coordinator, description, address)

    @property
    def is_on(self) -> bool | None:
        """As the BMS last reported it."""
        reading = self.reading
        if reading is None or reading.status is None:
            return None
        return self.entity_description.value_fn(reading.status)

    @property
    def available(self) -> bool:
        """Also unavailable while the pack's status is missing (nothing to base the state on)."""
        reading = self.reading
        return super().available and reading is not None and reading.status is not None

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Switch on, then show the state read back."""
        await self._set(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Switch off, then show the state read back."""
        await self._set(False)

    async def _set(self, on: bool) -> None:
        write = self.entity_description.write_fn
        change = await self._write(lambda control: write(control, self.address, on))
        update_pack_status(self.coordinator, self.address, change)

    def _state_key(self) -> tuple[Any, ...]:
        return (self.available, self.is_on)

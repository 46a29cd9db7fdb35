"""Buttons of a writable pack: shut it down (0x9C), set its clock to Home Assistant's time, re-read parameters."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .bms.control import PaceControl
from .control_entity import LfpBmsControlEntity, bms_clock_time, control_addresses, run_control
from .coordinator import LfpBmsConfigEntry, LfpBmsCoordinator

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class PackButtonDescription(ButtonEntityDescription):
    """`press_fn` does the work for one pack."""

    press_fn: Callable[[LfpBmsCoordinator, PaceControl, int], Awaitable[None]]


async def _shutdown(coordinator: LfpBmsCoordinator, control: PaceControl, address: int) -> None:
    await control.shutdown(address)


async def _sync_clock(coordinator: LfpBmsCoordinator, control: PaceControl, address: int) -> None:
    """Set the pack's clock to Home Assistant's local time and keep the clock read back."""
    await control.set_clock(address, bms_clock_time(dt_util.now()))
    await coordinator.async_read_clock(control, address)
    coordinator.async_update_listeners()


async def _reread(coordinator: LfpBmsCoordinator, control: PaceControl, address: int) -> None:
    # Every writable pack: one press re-reads what the entities of the whole link show.
    await coordinator.async_read_settings()
    coordinator.async_update_listeners()


BUTTONS: tuple[PackButtonDescription, ...] = (
    PackButtonDescription(
        key="shutdown",
        translation_key="shutdown",
        entity_category=EntityCategory.CONFIG,
        # Powers the pack down: never one click away unless the user enables it.
        entity_registry_enabled_default=False,
        press_fn=_shutdown,
    ),
    PackButtonDescription(
        key="sync_clock", translation_key="sync_clock", entity_category=EntityCategory.CONFIG, press_fn=_sync_clock
    ),
    PackButtonDescription(
        key="reread_parameters",
        translation_key="reread_parameters",
        entity_category=EntityCategory.CONFIG,
        press_fn=_reread,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant, entry: LfpBmsConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Buttons of every writable pack, only with control allowed (a CAN entry never forwards this platform)."""
    coordinator = entry.runtime_data
    async_add_entities(
        PackButton(coordinator, description, address)
        for address in control_addresses(coordinator)
        for description in BUTTONS
    )


class PackButton(LfpBmsControlEntity, ButtonEntity):
    """One action on a writable pack."""

    entity_description: PackButtonDescription

    def __init__(self, coordinator: LfpBmsCoordinator, description: PackButtonDescription, address: int) -> None:
        super().__init__(coordinator, description, address)

    async def async_press(self) -> None:
        """Run the action; errors are translated."""
        await run_control(self.address, self.entity_description.press_fn(self.coordinator, self.control, self.address))

"""Alarm events: `alarm_raised` / `alarm_cleared` whenever a protection, warning or fault flag changes.

One event entity per pack and one for the cluster (which reports the transitions of every pack). Each poll's
PackStatus is compared with the previous one of the same pack. Only real transitions fire: the reading taken at
setup, the first reading after a pack comes back online and the first after the link recovers set a new baseline
silently (what changed while nobody could see is unknown; the binary sensors show the current state).
Event data: flag (Condition/Fault value), level (protection/warning/fault), abbreviation (manuals), pack.
"""

from typing import Any

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .bms.models import Alarm
from .coordinator import LfpBmsConfigEntry, LfpBmsCoordinator
from .entity import LfpBmsEntity, add_pack_entities

PARALLEL_UPDATES = 0

ALARM_RAISED = "alarm_raised"
ALARM_CLEARED = "alarm_cleared"

ALARM_EVENT = EventEntityDescription(key="alarm", translation_key="alarm", event_types=[ALARM_RAISED, ALARM_CLEARED])


async def async_setup_entry(
    hass: HomeAssistant, entry: LfpBmsConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """One alarm event entity for the cluster and one per pack (also for a pack added later)."""
    coordinator = entry.runtime_data
    async_add_entities([AlarmEvent(coordinator, None)])
    add_pack_entities(coordinator, async_add_entities, lambda address: [AlarmEvent(coordinator, address)])


class AlarmEvent(LfpBmsEntity, EventEntity):
    """Alarm transitions of one pack, or of every pack (address None: the cluster device)."""

    def __init__(self, coordinator: LfpBmsCoordinator, address: int | None) -> None:
        super().__init__(coordinator, ALARM_EVENT, address)
        #: Active alarms per pack at the last poll that pack answered; absent = no baseline.
        self._previous: dict[int, frozenset[Alarm]] = {}

    async def async_added_to_hass(self) -> None:
        """The reading taken at setup is the baseline."""
        await super().async_added_to_hass()
        self._previous = self._current_alarms()

    @property
    def _watched(self) -> tuple[int, ...]:
        """Every configured pack for the cluster (read each time: a pack may join), else this one."""
        return self.coordinator.link_config.addresses if self.address is None else (self.address,)

    def _current_alarms(self) -> dict[int, frozenset[Alarm]]:
        """Active alarms of each watched pack that answered the last poll (none while the link is down)."""
        if not self.coordinator.last_update_success:
            return {}
        packs = self.coordinator.data.cluster.packs
        current: dict[int, frozenset[Alarm]] = {}
        for address in self._watched:
            reading = packs.get(address)
            if reading is not None and reading.online and reading.status is not None:
                current[address] = reading.status.alarms
        return current

    @callback
    def _handle_coordinator_update(self) -> None:
        current = self._current_alarms()
        transitions: list[tuple[str, int, Alarm]] = []
        for address, alarms in current.items():
            previous = self._previous.get(address)
            if previous is None:
                continue
            transitions += [(ALARM_CLEARED, address, alarm) for alarm in sorted(previous - alarms)]
            transitions += [(ALARM_RAISED, address, alarm) for alarm in sorted(alarms - previous)]
        self._previous = current
        for event_type, address, alarm in transitions:
            self._trigger_event(event_type, _event_data(address, alarm))
            self.async_write_ha_state()
        if transitions:
            self._written = self._state_key()
        else:
            super()._handle_coordinator_update()


def _event_data(address: int, alarm: Alarm) -> dict[str, Any]:
    return {
        "flag": str(alarm.flag),
        "level": str(alarm.level),
        "abbreviation": alarm.abbreviation,
        "pack": address,
    }

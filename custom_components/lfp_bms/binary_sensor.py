"""Binary sensors: switch and activity flags of each pack, alarm summaries, one entity per alarm flag.

Per-flag entities exist for every Condition (protection and warning level) and every Fault whatever the
protocol, all disabled by default: the protocols share the enums, and a fixed set is predictable. Flags a
protocol never sets simply stay off. Entities whose value the protocol does not report at all (None in
PackStatus, e.g. heater or fully charged on some firmwares) are not created; that is decided from the reading
taken at setup. A pack that was offline then gets all of them (better an unknown entity than a missing one).
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from homeassistant.components.binary_sensor import BinarySensorEntity, BinarySensorEntityDescription
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .bms.models import IDLE_CURRENT_A, Alarm, AlarmLevel, ClusterState, Condition, Fault, PackStatus
from .const import is_can_entry
from .coordinator import LfpBmsConfigEntry, LfpBmsCoordinator
from .entity import LfpBmsEntity, add_pack_entities

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class PackBinarySensorDescription(BinarySensorEntityDescription):
    """A pack flag read from its status; `level` marks an alarm summary (its active flags become attributes)."""

    value_fn: Callable[[PackStatus], bool | None]
    level: AlarmLevel | None = None


@dataclass(frozen=True, kw_only=True)
class ClusterBinarySensorDescription(BinarySensorEntityDescription):
    """A cluster flag over every pack online; `level` as for packs."""

    value_fn: Callable[[ClusterState], bool | None]
    level: AlarmLevel | None = None


def _has_level(status: PackStatus, level: AlarmLevel) -> bool:
    return any(alarm.level is level for alarm in status.alarms)


def _cluster_alarms(state: ClusterState, level: AlarmLevel) -> dict[int, list[Alarm]]:
    """Active alarms of one level by pack address, over the packs online (packs without any are left out).

    Keyed by the polled address: the address inside a relayed record may be the master's.
    """
    found: dict[int, list[Alarm]] = {}
    for address, reading in state.packs.items():
        status = reading.status if reading.online else None
        if status is not None and (alarms := sorted(a for a in status.alarms if a.level is level)):
            found[address] = alarms
    return found


def _summary(level: AlarmLevel) -> dict[str, Any]:
    """What the pack and cluster summaries of one level share."""
    return {
        "key": str(level),
        "translation_key": f"{level}_active",
        "device_class": BinarySensorDeviceClass.PROBLEM,
        "level": level,
    }


def _pack_summary(level: AlarmLevel) -> PackBinarySensorDescription:
    return PackBinarySensorDescription(**_summary(level), value_fn=lambda s: _has_level(s, level))


def _cluster_summary(level: AlarmLevel) -> ClusterBinarySensorDescription:
    return ClusterBinarySensorDescription(**_summary(level), value_fn=lambda c: bool(_cluster_alarms(c, level)))


def _flag(alarm: Alarm) -> PackBinarySensorDescription:
    """The disabled-by-default entity of one flag, e.g. key/translation key `protection_cell_overvoltage`."""
    key = f"{alarm.level}_{alarm.flag}"
    return PackBinarySensorDescription(
        key=key,
        translation_key=key,
        device_class=BinarySensorDeviceClass.PROBLEM,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda s: alarm in s.alarms,
    )


ALL_FLAGS: tuple[Alarm, ...] = (
    *(Alarm(AlarmLevel.PROTECTION, c) for c in Condition),
    *(Alarm(AlarmLevel.WARNING, c) for c in Condition),
    *(Alarm(AlarmLevel.FAULT, f) for f in Fault),
)

PACK_BINARY_SENSORS: tuple[PackBinarySensorDescription, ...] = (
    PackBinarySensorDescription(
        key="charging",
        translation_key="charging",
        device_class=BinarySensorDeviceClass.BATTERY_CHARGING,
        value_fn=lambda s: s.charging,
    ),
    PackBinarySensorDescription(key="discharging", translation_key="discharging", value_fn=lambda s: s.discharging),
    PackBinarySensorDescription(
        key="charge_mos",
        translation_key="charge_mos",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: s.charge_mos_on,
    ),
    PackBinarySensorDescription(
        key="discharge_mos",
        translation_key="discharge_mos",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: s.discharge_mos_on,
    ),
    PackBinarySensorDescription(
        key="heater",
        translation_key="heater",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: s.heater_on,
    ),
    PackBinarySensorDescription(
        key="balancing",
        translation_key="balancing",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: s.balancing,
    ),
    PackBinarySensorDescription(
        key="fully_charged", translation_key="fully_charged", value_fn=lambda s: s.fully_charged
    ),
    *(_pack_summary(level) for level in AlarmLevel),
    *(_flag(alarm) for alarm in ALL_FLAGS),
)


CLUSTER_BINARY_SENSORS: tuple[ClusterBinarySensorDescription, ...] = (
    # The cluster as a whole: net current of the packs online beyond the packs' own reporting threshold.
    ClusterBinarySensorDescription(
        key="charging",
        translation_key="charging",
        device_class=BinarySensorDeviceClass.BATTERY_CHARGING,
        value_fn=lambda c: c.summary.current_a >= IDLE_CURRENT_A,
    ),
    ClusterBinarySensorDescription(
        key="discharging",
        translation_key="discharging",
        value_fn=lambda c: c.summary.current_a <= -IDLE_CURRENT_A,
    ),
    *(_cluster_summary(level) for level in AlarmLevel),
)


async def async_setup_entry(
    hass: HomeAssistant, entry: LfpBmsConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Create the cluster's binary sensors and those of every pack (also one added later) whose protocol reports
    the value."""
    if is_can_entry(entry.data):
        from .can_binary_sensor import async_setup_can_binary_sensors

        await async_setup_can_binary_sensors(hass, entry, async_add_entities)
        return
    coordinator = entry.runtime_data
    async_add_entities(ClusterBinarySensor(coordinator, d) for d in CLUSTER_BINARY_SENSORS)
    add_pack_entities(coordinator, async_add_entities, lambda address: _pack_binary_sensors(coordinator, address))


def _pack_binary_sensors(coordinator: LfpBmsCoordinator, address: int) -> list[BinarySensorEntity]:
    """One pack's binary sensors, leaving out what its current status shows the protocol does not report."""
    reading = coordinator.data.cluster.packs.get(address)
    status = reading.status if reading is not None and reading.online else None
    return [
        PackBinarySensor(coordinator, d, address)
        for d in PACK_BINARY_SENSORS
        if status is None or d.value_fn(status) is not None
    ]


def _alarm_attributes(alarms: Iterable[Alarm]) -> dict[str, Any]:
    ordered = sorted(alarms)
    return {"flags": [str(a.flag) for a in ordered], "abbreviations": [a.abbreviation for a in ordered]}


class PackBinarySensor(LfpBmsEntity, BinarySensorEntity):
    """A flag of one pack."""

    entity_description: PackBinarySensorDescription

    def __init__(self, coordinator: LfpBmsCoordinator, description: PackBinarySensorDescription, address: int) -> None:
        super().__init__(coordinator, description, address)

    @property
    def _status(self) -> PackStatus | None:
        reading = self.reading
        return None if reading is None else reading.status

    @property
    def is_on(self) -> bool | None:
        """The flag from the last status read (None when the pack sent none)."""
        status = self._status
        return None if status is None else self.entity_description.value_fn(status)

    @property
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """Summaries name their active flags: `flags` (Condition/Fault values) and the manuals' `abbreviations`."""
        level = self.entity_description.level
        status = self._status
        if level is None or status is None:
            return None
        return _alarm_attributes(a for a in status.alarms if a.level is level)

    def _state_key(self) -> tuple[Any, ...]:
        return (self.available, self.is_on, self.extra_state_attributes)


class ClusterBinarySensor(LfpBmsEntity, BinarySensorEntity):
    """A flag of the cluster device."""

    entity_description: ClusterBinarySensorDescription

    def __init__(self, coordinator: LfpBmsCoordinator, description: ClusterBinarySensorDescription) -> None:
        super().__init__(coordinator, description, None)

    @property
    def is_on(self) -> bool | None:
        """The flag over every pack online."""
        return self.entity_description.value_fn(self.coordinator.data.cluster)

    @property
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """Summaries: the union of the packs' active flags, and which packs have any (`packs`)."""
        level = self.entity_description.level
        if level is None:
            return None
        by_pack = _cluster_alarms(self.coordinator.data.cluster, level)
        union = {alarm for alarms in by_pack.values() for alarm in alarms}
        return {**_alarm_attributes(union), "packs": sorted(by_pack)}

    def _state_key(self) -> tuple[Any, ...]:
        return (self.available, self.is_on, self.extra_state_attributes)

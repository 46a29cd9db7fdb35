"""Sensors of a CAN entry: the system values a Pylon LV CAN listener learns, and energy for the Energy dashboard.

Values carried by optional (extension) frames get an entity only when the battery sent that frame during setup.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import (
    EntityCategory,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfEnergy,
    UnitOfPower,
    UnitOfRatio,
    UnitOfTemperature,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from .bms.can import CanState
from .can_coordinator import LfpCanCoordinator
from .can_entity import LfpCanEntity


@dataclass(frozen=True, kw_only=True)
class CanSensorDescription(SensorEntityDescription):
    """A value of the bus state; `sent_fn` says whether the battery sends it (None = always)."""

    value_fn: Callable[[CanState], StateType]
    sent_fn: Callable[[CanState], bool] | None = None


def _measurement(**kwargs: Any) -> dict[str, Any]:
    return {"state_class": SensorStateClass.MEASUREMENT, **kwargs}


def _volts(precision: int) -> dict[str, Any]:
    return _measurement(
        device_class=SensorDeviceClass.VOLTAGE,
        native_unit_of_measurement=UnitOfElectricPotential.VOLT,
        suggested_display_precision=precision,
    )


CURRENT = _measurement(
    device_class=SensorDeviceClass.CURRENT,
    native_unit_of_measurement=UnitOfElectricCurrent.AMPERE,
    suggested_display_precision=1,
)
TEMPERATURE = _measurement(
    device_class=SensorDeviceClass.TEMPERATURE,
    native_unit_of_measurement=UnitOfTemperature.CELSIUS,
    suggested_display_precision=1,
)
BMS_ENERGY: dict[str, Any] = {
    "device_class": SensorDeviceClass.ENERGY,
    "state_class": SensorStateClass.TOTAL_INCREASING,
    "native_unit_of_measurement": UnitOfEnergy.KILO_WATT_HOUR,
    "suggested_display_precision": 2,
}


def _limit(state: CanState, attribute: str) -> float | None:
    value = None if state.limits is None else getattr(state.limits, attribute)
    return None if value is None else float(value)


def _extreme(state: CanState, attribute: str) -> float | None:
    if state.cell_extremes is None:
        return None
    value = float(getattr(state.cell_extremes, attribute))
    return round(value / 1000, 3) if attribute.endswith("_mv") else value


def _has_extremes(state: CanState) -> bool:
    return state.cell_extremes is not None


def _has_energy(state: CanState) -> bool:
    return state.energy is not None


CAN_SENSORS: tuple[CanSensorDescription, ...] = (
    CanSensorDescription(
        key="soc",
        translation_key="soc",
        device_class=SensorDeviceClass.BATTERY,
        native_unit_of_measurement=UnitOfRatio.PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda s: s.soc_pct,
    ),
    CanSensorDescription(
        key="soh",
        translation_key="soh",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: s.soh_pct,
        **_measurement(native_unit_of_measurement=UnitOfRatio.PERCENTAGE),
    ),
    CanSensorDescription(key="voltage", translation_key="voltage", value_fn=lambda s: s.voltage_v, **_volts(2)),
    CanSensorDescription(key="current", translation_key="current", value_fn=lambda s: s.current_a, **CURRENT),
    CanSensorDescription(
        key="power",
        translation_key="power",
        value_fn=lambda s: s.power_w,
        **_measurement(
            device_class=SensorDeviceClass.POWER,
            native_unit_of_measurement=UnitOfPower.WATT,
            suggested_display_precision=0,
        ),
    ),
    CanSensorDescription(
        key="temperature", translation_key="temperature", value_fn=lambda s: s.temperature_c, **TEMPERATURE
    ),
    CanSensorDescription(
        key="charge_voltage_limit",
        translation_key="charge_voltage_limit",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: _limit(s, "charge_voltage_v"),
        **_volts(1),
    ),
    CanSensorDescription(
        key="charge_current_limit",
        translation_key="charge_current_limit",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: _limit(s, "charge_current_a"),
        **CURRENT,
    ),
    CanSensorDescription(
        key="discharge_current_limit",
        translation_key="discharge_current_limit",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: _limit(s, "discharge_current_a"),
        **CURRENT,
    ),
    CanSensorDescription(
        key="discharge_voltage_limit",
        translation_key="discharge_voltage_limit",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: _limit(s, "discharge_voltage_v"),
        sent_fn=lambda s: _limit(s, "discharge_voltage_v") is not None,
        **_volts(1),
    ),
    CanSensorDescription(
        key="module_count",
        translation_key="module_count",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda s: s.module_count,
    ),
    CanSensorDescription(
        key="lowest_cell_voltage",
        translation_key="lowest_cell_voltage",
        value_fn=lambda s: _extreme(s, "min_cell_mv"),
        sent_fn=_has_extremes,
        **_volts(3),
    ),
    CanSensorDescription(
        key="highest_cell_voltage",
        translation_key="highest_cell_voltage",
        value_fn=lambda s: _extreme(s, "max_cell_mv"),
        sent_fn=_has_extremes,
        **_volts(3),
    ),
    CanSensorDescription(
        key="min_temperature",
        translation_key="min_temperature",
        value_fn=lambda s: _extreme(s, "min_temperature_c"),
        sent_fn=_has_extremes,
        **TEMPERATURE,
    ),
    CanSensorDescription(
        key="max_temperature",
        translation_key="max_temperature",
        value_fn=lambda s: _extreme(s, "max_temperature_c"),
        sent_fn=_has_extremes,
        **TEMPERATURE,
    ),
    # The 0x359 words as received, so that bits no table names stay visible.
    CanSensorDescription(
        key="protection_flags",
        translation_key="protection_flags",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: None if s.alarms is None else s.alarms.protection,
    ),
    CanSensorDescription(
        key="warning_flags",
        translation_key="warning_flags",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: None if s.alarms is None else s.alarms.warning,
    ),
    CanSensorDescription(
        key="bms_energy_charged",
        translation_key="bms_energy_charged",
        value_fn=lambda s: None if s.energy is None else s.energy.charged_kwh,
        sent_fn=_has_energy,
        **BMS_ENERGY,
    ),
    CanSensorDescription(
        key="bms_energy_discharged",
        translation_key="bms_energy_discharged",
        value_fn=lambda s: None if s.energy is None else s.energy.discharged_kwh,
        sent_fn=_has_energy,
        **BMS_ENERGY,
    ),
)


async def async_setup_can_sensors(
    hass: HomeAssistant, entry: ConfigEntry[Any], async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Create the sensors of a CAN entry (called by the sensor platform for entries whose link is CAN)."""
    coordinator: LfpCanCoordinator = entry.runtime_data
    state = coordinator.data.state
    entities: list[SensorEntity] = [
        CanSensor(coordinator, d) for d in CAN_SENSORS if d.sent_fn is None or d.sent_fn(state)
    ]
    entities += [CanEnergySensor(coordinator, charged) for charged in (True, False)]
    async_add_entities(entities)


class CanSensor(LfpCanEntity, SensorEntity):
    """A value heard on the bus."""

    entity_description: CanSensorDescription

    @property
    def native_value(self) -> StateType:
        return self.entity_description.value_fn(self.state_data)

    def _state_key(self) -> tuple[Any, ...]:
        return (self.available, self.native_value)


class CanEnergySensor(LfpCanEntity, RestoreSensor):
    """Charge or discharge energy integrated from the bus power (kWh, total_increasing), restored, never decreasing.

    Same rules as the serial link's energy sensors: bms/energy.py integrates, a gap (silence) is skipped.
    """

    def __init__(self, coordinator: LfpCanCoordinator, charged: bool) -> None:
        key = "energy_charged" if charged else "energy_discharged"
        description = SensorEntityDescription(
            key=key,
            translation_key=key,
            device_class=SensorDeviceClass.ENERGY,
            state_class=SensorStateClass.TOTAL_INCREASING,
            native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
            suggested_display_precision=3,
        )
        super().__init__(coordinator, description)
        self.charged = charged

    async def async_added_to_hass(self) -> None:
        """Feed the last stored total into the integrator before the next frames add to it."""
        await super().async_added_to_hass()
        last = await self.async_get_last_sensor_data()
        if last is not None and isinstance(last.native_value, int | float):
            value = float(last.native_value)
            self.coordinator.energy.restore(value if self.charged else None, None if self.charged else value)

    @property
    def native_value(self) -> float:
        totals = self.coordinator.energy.totals
        return round(totals.charged_kwh if self.charged else totals.discharged_kwh, 4)

    def _state_key(self) -> tuple[Any, ...]:
        return (self.available, self.native_value)

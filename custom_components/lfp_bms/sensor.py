"""Sensors: cluster aggregates, per-pack values, per-cell voltages, and energy for the Energy dashboard."""

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

from .bms.energy import EnergyTotals
from .bms.models import ClusterSummary, OperatingState, PackAnalog, PackReading
from .const import CONF_CELL_ENTITIES, is_can_entry
from .control_entity import clock_sensors
from .coordinator import CLUSTER, LfpBmsConfigEntry, LfpBmsCoordinator
from .entity import LfpBmsEntity, add_pack_entities

PARALLEL_UPDATES = 0

AMPERE_HOURS = "Ah"


@dataclass(frozen=True, kw_only=True)
class ClusterSensorDescription(SensorEntityDescription):
    """A cluster sensor: value from the summary; `signed` values follow the invert-current option."""

    value_fn: Callable[[ClusterSummary], StateType]
    signed: bool = False


@dataclass(frozen=True, kw_only=True)
class PackSensorDescription(SensorEntityDescription):
    """A pack sensor: value from the pack's analog reading (and status where needed)."""

    value_fn: Callable[[PackReading, PackAnalog], StateType]
    signed: bool = False


def _measurement(**kwargs: Any) -> dict[str, Any]:
    return {"state_class": SensorStateClass.MEASUREMENT, **kwargs}


VOLTAGE = _measurement(
    device_class=SensorDeviceClass.VOLTAGE,
    native_unit_of_measurement=UnitOfElectricPotential.VOLT,
    suggested_display_precision=2,
)
CURRENT = _measurement(
    device_class=SensorDeviceClass.CURRENT,
    native_unit_of_measurement=UnitOfElectricCurrent.AMPERE,
    suggested_display_precision=2,
)
POWER = _measurement(
    device_class=SensorDeviceClass.POWER, native_unit_of_measurement=UnitOfPower.WATT, suggested_display_precision=0
)
SOC = _measurement(device_class=SensorDeviceClass.BATTERY, native_unit_of_measurement=UnitOfRatio.PERCENTAGE)
TEMPERATURE = _measurement(
    device_class=SensorDeviceClass.TEMPERATURE,
    native_unit_of_measurement=UnitOfTemperature.CELSIUS,
    suggested_display_precision=1,
)
CAPACITY = _measurement(native_unit_of_measurement=AMPERE_HOURS, suggested_display_precision=2)
CELL_MV = _measurement(
    device_class=SensorDeviceClass.VOLTAGE,
    native_unit_of_measurement=UnitOfElectricPotential.MILLIVOLT,
    suggested_display_precision=0,
)


def _mv_to_v(mv: int | None) -> float | None:
    return None if mv is None else round(mv / 1000, 3)


CLUSTER_SENSORS: tuple[ClusterSensorDescription, ...] = (
    ClusterSensorDescription(key="soc", translation_key="soc", value_fn=lambda s: s.soc_pct, **SOC),
    ClusterSensorDescription(key="voltage", translation_key="voltage", value_fn=lambda s: s.voltage_v, **VOLTAGE),
    ClusterSensorDescription(
        key="current", translation_key="current", value_fn=lambda s: s.current_a, signed=True, **CURRENT
    ),
    ClusterSensorDescription(key="power", translation_key="power", value_fn=lambda s: s.power_w, signed=True, **POWER),
    ClusterSensorDescription(
        key="charge_power", translation_key="charge_power", value_fn=lambda s: s.power_w, signed=True, **POWER
    ),
    ClusterSensorDescription(
        key="discharge_power", translation_key="discharge_power", value_fn=lambda s: s.power_w, signed=True, **POWER
    ),
    ClusterSensorDescription(
        key="remaining_capacity", translation_key="remaining_capacity", value_fn=lambda s: s.remaining_ah, **CAPACITY
    ),
    ClusterSensorDescription(
        key="full_capacity", translation_key="full_capacity", value_fn=lambda s: s.full_ah, **CAPACITY
    ),
    ClusterSensorDescription(
        key="stored_energy",
        translation_key="stored_energy",
        device_class=SensorDeviceClass.ENERGY_STORAGE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        suggested_display_precision=2,
        value_fn=lambda s: s.stored_energy_kwh,
    ),
    ClusterSensorDescription(
        key="packs_online",
        translation_key="packs_online",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda s: s.packs_online,
    ),
    ClusterSensorDescription(
        key="highest_cell_voltage",
        translation_key="highest_cell_voltage",
        value_fn=lambda s: _mv_to_v(s.highest_cell.mv if s.highest_cell else None),
        **{**VOLTAGE, "suggested_display_precision": 3},
    ),
    ClusterSensorDescription(
        key="lowest_cell_voltage",
        translation_key="lowest_cell_voltage",
        value_fn=lambda s: _mv_to_v(s.lowest_cell.mv if s.lowest_cell else None),
        **{**VOLTAGE, "suggested_display_precision": 3},
    ),
    ClusterSensorDescription(
        key="cell_spread", translation_key="cell_spread", value_fn=lambda s: s.cell_spread_mv, **CELL_MV
    ),
    ClusterSensorDescription(
        key="max_temperature",
        translation_key="max_temperature",
        value_fn=lambda s: s.max_temperature_c,
        **TEMPERATURE,
    ),
)

PACK_SENSORS: tuple[PackSensorDescription, ...] = (
    PackSensorDescription(key="soc", translation_key="soc", value_fn=lambda r, a: round(a.soc_pct, 1), **SOC),
    PackSensorDescription(
        key="soh",
        translation_key="soh",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda r, a: None if a.soh_pct is None else round(a.soh_pct, 1),
        **_measurement(native_unit_of_measurement=UnitOfRatio.PERCENTAGE),
    ),
    PackSensorDescription(key="voltage", translation_key="voltage", value_fn=lambda r, a: a.voltage_v, **VOLTAGE),
    PackSensorDescription(
        key="current", translation_key="current", value_fn=lambda r, a: a.current_a, signed=True, **CURRENT
    ),
    PackSensorDescription(key="power", translation_key="power", value_fn=lambda r, a: a.power_w, signed=True, **POWER),
    PackSensorDescription(
        key="charge_power", translation_key="charge_power", value_fn=lambda r, a: a.power_w, signed=True, **POWER
    ),
    PackSensorDescription(
        key="discharge_power",
        translation_key="discharge_power",
        value_fn=lambda r, a: a.power_w,
        signed=True,
        **POWER,
    ),
    PackSensorDescription(
        key="remaining_capacity",
        translation_key="remaining_capacity",
        value_fn=lambda r, a: a.remaining_ah,
        **CAPACITY,
    ),
    PackSensorDescription(
        key="full_capacity", translation_key="full_capacity", value_fn=lambda r, a: a.full_ah, **CAPACITY
    ),
    PackSensorDescription(
        key="design_capacity",
        translation_key="design_capacity",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda r, a: a.design_ah,
        # A constant: no statistics.
        **{**CAPACITY, "state_class": None},
    ),
    PackSensorDescription(
        key="cycles",
        translation_key="cycles",
        entity_category=EntityCategory.DIAGNOSTIC,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda r, a: a.cycles,
    ),
    PackSensorDescription(
        key="mosfet_temperature",
        translation_key="mosfet_temperature",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda r, a: a.mosfet_temperature_c,
        **TEMPERATURE,
    ),
    PackSensorDescription(
        key="environment_temperature",
        translation_key="environment_temperature",
        value_fn=lambda r, a: a.environment_temperature_c,
        **TEMPERATURE,
    ),
    PackSensorDescription(
        key="max_temperature",
        translation_key="max_temperature",
        value_fn=lambda r, a: a.max_temperature_c,
        **TEMPERATURE,
    ),
    PackSensorDescription(
        key="cell_min_voltage",
        translation_key="cell_min_voltage",
        value_fn=lambda r, a: _mv_to_v(a.cells.min_mv if a.cells else None),
        **{**VOLTAGE, "suggested_display_precision": 3},
    ),
    PackSensorDescription(
        key="cell_max_voltage",
        translation_key="cell_max_voltage",
        value_fn=lambda r, a: _mv_to_v(a.cells.max_mv if a.cells else None),
        **{**VOLTAGE, "suggested_display_precision": 3},
    ),
    PackSensorDescription(
        key="cell_avg_voltage",
        translation_key="cell_avg_voltage",
        value_fn=lambda r, a: None if a.cells is None else round(a.cells.avg_mv / 1000, 4),
        **{**VOLTAGE, "suggested_display_precision": 3},
    ),
    PackSensorDescription(
        key="cell_spread",
        translation_key="cell_spread",
        value_fn=lambda r, a: None if a.cells is None else a.cells.delta_mv,
        **CELL_MV,
    ),
    PackSensorDescription(
        key="cell_min_index",
        translation_key="cell_min_index",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda r, a: None if a.cells is None else a.cells.min_cell,
    ),
    PackSensorDescription(
        key="cell_max_index",
        translation_key="cell_max_index",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda r, a: None if a.cells is None else a.cells.max_cell,
    ),
    PackSensorDescription(
        key="balancing_cells",
        translation_key="balancing_cells",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda r, a: None if r.status is None else len(r.status.balancing_cells),
    ),
    PackSensorDescription(
        key="operating_state",
        translation_key="operating_state",
        device_class=SensorDeviceClass.ENUM,
        options=[state.value for state in OperatingState],
        value_fn=lambda r, a: None if (state := r.operating_state) is None else state.value,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant, entry: LfpBmsConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Create the sensors of the cluster and of every expected pack, and those of a pack added later."""
    if is_can_entry(entry.data):
        from .can_sensor import async_setup_can_sensors

        await async_setup_can_sensors(hass, entry, async_add_entities)
        return
    coordinator = entry.runtime_data
    entities: list[SensorEntity] = [ClusterSensor(coordinator, d) for d in CLUSTER_SENSORS]
    entities += [EnergySensor(coordinator, CLUSTER, charged) for charged in (True, False)]
    entities += clock_sensors(coordinator)  # BMS clock and drift, only with control allowed
    async_add_entities(entities)
    cells_enabled = bool(entry.options.get(CONF_CELL_ENTITIES, False))
    add_pack_entities(
        coordinator, async_add_entities, lambda address: _pack_sensors(coordinator, address, cells_enabled)
    )


def _pack_sensors(coordinator: LfpBmsCoordinator, address: int, cells_enabled: bool) -> list[SensorEntity]:
    """One pack's sensors; the per-cell ones sized from its current reading (none while it does not answer)."""
    entities: list[SensorEntity] = [PackSensor(coordinator, d, address) for d in PACK_SENSORS]
    entities += [EnergySensor(coordinator, address, charged) for charged in (True, False)]
    reading = coordinator.data.cluster.packs.get(address)
    analog = reading.analog if reading else None
    if analog is not None and not analog.absent:
        entities += [
            PackSensor(coordinator, cell_voltage_description(cell, cells_enabled), address)
            for cell in range(1, len(analog.cell_voltages_mv) + 1)
        ]
        entities += [
            PackSensor(coordinator, cell_temperature_description(sensor), address)
            for sensor in range(1, len(analog.cell_temperatures_c) + 1)
        ]
    return entities


def _signed(key: str, value: StateType) -> StateType:
    """Split power into its charge/discharge halves (both ≥ 0); the current's sign is the client's (invert option)."""
    if not isinstance(value, int | float):
        return value
    if key == "charge_power":
        return max(value, 0)
    if key == "discharge_power":
        return max(-value, 0)
    return value


class ClusterSensor(LfpBmsEntity, SensorEntity):
    """A sensor of the cluster device."""

    entity_description: ClusterSensorDescription

    def __init__(self, coordinator: LfpBmsCoordinator, description: ClusterSensorDescription) -> None:
        super().__init__(coordinator, description, None)

    @property
    def native_value(self) -> StateType:
        """Value from the cluster summary."""
        value = self.entity_description.value_fn(self.coordinator.data.cluster.summary)
        if self.entity_description.signed:
            return _signed(self.entity_description.key, value)
        return value

    def _state_key(self) -> tuple[Any, ...]:
        return (self.available, self.native_value)


class PackSensor(LfpBmsEntity, SensorEntity):
    """A sensor of one pack."""

    entity_description: PackSensorDescription

    def __init__(self, coordinator: LfpBmsCoordinator, description: PackSensorDescription, address: int) -> None:
        super().__init__(coordinator, description, address)

    @property
    def native_value(self) -> StateType:
        """Value from this pack's reading."""
        reading = self.reading
        if reading is None or reading.analog is None:
            return None
        value = self.entity_description.value_fn(reading, reading.analog)
        if self.entity_description.signed:
            return _signed(self.entity_description.key, value)
        return value

    def _state_key(self) -> tuple[Any, ...]:
        return (self.available, self.native_value)


def _nth[T](values: tuple[T, ...], number: int) -> T | None:
    """The 1-based `number`th value, None when the pack reports fewer (a changed pack layout)."""
    return values[number - 1] if number <= len(values) else None


def cell_voltage_description(cell: int, enabled: bool) -> PackSensorDescription:
    """One cell's voltage (disabled by default unless the per-cell option is on)."""
    return PackSensorDescription(
        key=f"cell_{cell}_voltage",
        translation_key="cell_voltage",
        translation_placeholders={"cell": str(cell)},
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=enabled,
        value_fn=lambda r, a: _mv_to_v(_nth(a.cell_voltages_mv, cell)),
        **{**VOLTAGE, "suggested_display_precision": 3},
    )


def cell_temperature_description(sensor: int) -> PackSensorDescription:
    """One cell temperature sensor (T1..Tn); disabled by default, the pack's highest is enabled."""
    return PackSensorDescription(
        key=f"cell_temperature_{sensor}",
        translation_key="cell_temperature",
        translation_placeholders={"sensor": str(sensor)},
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda r, a: _nth(a.cell_temperatures_c, sensor),
        **TEMPERATURE,
    )


class EnergySensor(LfpBmsEntity, RestoreSensor):
    """Charge or discharge energy (kWh, total_increasing), restored across restarts and never decreasing."""

    def __init__(self, coordinator: LfpBmsCoordinator, series: str | int, charged: bool) -> None:
        key = "energy_charged" if charged else "energy_discharged"
        description = SensorEntityDescription(
            key=key,
            translation_key=key,
            device_class=SensorDeviceClass.ENERGY,
            state_class=SensorStateClass.TOTAL_INCREASING,
            native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
            suggested_display_precision=3,
        )
        super().__init__(coordinator, description, None if series == CLUSTER else int(series))
        self.series = series
        self.charged = charged

    async def async_added_to_hass(self) -> None:
        """Feed the last stored total into the integrator before the next poll adds to it."""
        await super().async_added_to_hass()
        last = await self.async_get_last_sensor_data()
        if last is not None and isinstance(last.native_value, int | float):
            value = float(last.native_value)
            integrator = self.coordinator.energy_integrator(self.series)
            integrator.restore(value if self.charged else None, None if self.charged else value)

    @property
    def available(self) -> bool:
        """A counter stays available with its last total while the link works."""
        return self.coordinator.last_update_success

    @property
    def native_value(self) -> float:
        """The running total, read from the integrator itself: the poll's snapshot predates the restore, and
        writing it after a restart would drop the total to 0 (a meter reset: the statistics would count it twice)."""
        return _total(self.coordinator.energy_integrator(self.series).totals, self.charged)

    def _state_key(self) -> tuple[Any, ...]:
        return (self.available, self.native_value)


def _total(totals: EnergyTotals, charged: bool) -> float:
    return round(totals.charged_kwh if charged else totals.discharged_kwh, 4)

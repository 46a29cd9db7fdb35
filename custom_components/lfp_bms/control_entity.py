"""What the writing platforms (switch, select, number, button) and the services share.

Control exists only with the entry's "allow control" option on, only on a PACE link, and only for the packs this
link can write (the directly connected one, or every pack on an RS485 bus). Library errors become translated
Home Assistant errors here: bad input → ServiceValidationError (nothing was sent), a refusal or a disagreeing
read-back → HomeAssistantError naming the reason.
"""

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from homeassistant.components.sensor import SensorDeviceClass, SensorEntity, SensorEntityDescription, SensorStateClass
from homeassistant.const import EntityCategory, UnitOfTime
from homeassistant.core import async_get_hass, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers.translation import async_get_translations
from homeassistant.util import dt as dt_util

from .bms.client import NotWritableError
from .bms.control import (
    GROUP_NAMES,
    CommandNotAllowedError,
    ControlRefusedError,
    PaceControl,
    ReadBackError,
    RefusalReason,
)
from .bms.frame import BmsError
from .bms.modbus.control import PaceModbusControl
from .bms.models import ClusterState, PackStatus
from .bms.pace import CLOCK_MAX, CLOCK_MIN
from .bms.pace_params import ParameterError, ParameterGroup, ParameterRule, ProtocolSelection
from .const import DOMAIN
from .coordinator import BankData, LfpBmsCoordinator
from .entity import LfpBmsEntity

_LOGGER = logging.getLogger(__name__)

_REFUSAL_KEYS = {
    RefusalReason.BOTH_MOSFETS_OFF: "refused_both_mosfets_off",
    RefusalReason.CURRENT_FLOWING: "refused_current_flowing",
    RefusalReason.REFUSED: "refused",
}


def control_addresses(coordinator: LfpBmsCoordinator) -> list[int]:
    """Packs that get control entities: none unless control is allowed on a PACE link; else the writable ones."""
    if not coordinator.control_allowed or coordinator.control is None:
        return []
    return [a for a in coordinator.link_config.addresses if coordinator.link_config.writable(a)]


type ParameterControl = PaceControl | PaceModbusControl


def parameter_control(coordinator: LfpBmsCoordinator) -> ParameterControl | None:
    """What reads and writes parameter groups on this link: PACE 0x25 or PACE Modbus control (None otherwise)."""
    return coordinator.control or coordinator.modbus_control


def parameter_addresses(coordinator: LfpBmsCoordinator) -> list[int]:
    """Packs that get parameter entities: the writable ones, with control allowed on a PACE or PACE Modbus link."""
    if not coordinator.control_allowed or parameter_control(coordinator) is None:
        return []
    return [a for a in coordinator.link_config.addresses if coordinator.link_config.writable(a)]


def require_control(coordinator: LfpBmsCoordinator, *, write: bool) -> PaceControl:
    """The control object, or a ServiceValidationError saying why there is none."""
    if coordinator.control is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="control_unsupported",
            translation_placeholders={"protocol": coordinator.link_config.protocol.label},
        )
    if write and not coordinator.control_allowed:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="control_disabled",
            translation_placeholders={"title": coordinator.config_entry.title},
        )
    return coordinator.control


async def validate_values(group_type: type[ParameterGroup], values: Mapping[str, float]) -> None:
    """Every number finite and within its field's documented range, before anything is read or sent (the
    library's own checks run after reading the group). Step and the group's order rules are the library's (they
    need the other fields); an unknown field is named there too."""
    for name, value in values.items():
        spec = group_type.specs.get(name)
        if spec is None:
            continue
        if not math.isfinite(value):
            rule = ParameterRule.NOT_FINITE
        elif value < spec.minimum:
            rule = ParameterRule.BELOW_MINIMUM
        elif value > spec.maximum:
            rule = ParameterRule.ABOVE_MAXIMUM
        else:
            continue
        raise await parameter_error(
            ParameterError(
                rule,
                name,
                value=value,
                unit=spec.unit,
                minimum=spec.minimum,
                maximum=spec.maximum,
                group=group_type,
            )
        )


def bms_clock_time(moment: datetime) -> datetime:
    """`moment` as the BMS keeps it (Home Assistant's local time without a zone); a translated error when the PACE
    clock cannot hold it (the year travels as year - 2000 in one byte)."""
    try:
        local: datetime | None = dt_util.as_local(moment).replace(tzinfo=None)
    except OverflowError:  # the zone change leaves datetime's range (year 1 or 9999)
        local = None
    if local is None or not CLOCK_MIN <= local <= CLOCK_MAX:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="clock_out_of_range",
            translation_placeholders={
                "datetime": moment.isoformat(sep=" "),
                "earliest": str(CLOCK_MIN),
                "latest": str(CLOCK_MAX),
            },
        )
    return local


def _shown(value: float | None, unit: str | None) -> str:
    """A value with its unit, as the parameter messages show it."""
    return f"{value:g} {unit}" if unit else f"{value:g}"


def _field_name_key(group: type[ParameterGroup] | None, field: str) -> str:
    """Translation key of the name a user sees for a field: its number (or protocol select) entity, or for the
    history range (no group) the read_history action's field."""
    # Imported here: both platforms import this module.
    from .number import PARAMETER_NUMBERS
    from .select import PROTOCOL_SELECTS

    if group is None:
        return f"component.{DOMAIN}.services.read_history.fields.{field}.name"
    if group is ProtocolSelection:
        selects = {description.field: description.translation_key for description in PROTOCOL_SELECTS}
        return f"component.{DOMAIN}.entity.select.{selects.get(field, field)}.name"
    numbers = {(d.group, d.field): d.translation_key for d in PARAMETER_NUMBERS}
    return f"component.{DOMAIN}.entity.number.{numbers.get((group, field), field)}.name"


async def parameter_error(err: ParameterError) -> ServiceValidationError:
    """The rule a value broke, in words: one translation per rule, with the fields named as their entities are
    (in Home Assistant's language) and every value with its unit."""
    hass = async_get_hass()  # run_control serves entities and actions alike; both run in Home Assistant's loop
    language = hass.config.language
    names = {
        **await async_get_translations(hass, language, "entity", {DOMAIN}),
        **await async_get_translations(hass, language, "services", {DOMAIN}),
        **await async_get_translations(hass, language, "selector", {DOMAIN}),
    }

    def name(field: str) -> str:
        return names.get(_field_name_key(err.group, field), field)

    placeholders = {"field": name(err.field)}
    match err.reason:
        case ParameterRule.ORDER:
            assert err.other is not None
            assert err.relation is not None
            key = f"parameter_must_be_{err.relation}"
            placeholders |= {
                "value": _shown(err.value, err.unit),
                "other": name(err.other),
                "other_value": _shown(err.other_value, err.unit),
            }
        case ParameterRule.BELOW_MINIMUM:
            key = "parameter_below_minimum"
            placeholders |= {"value": _shown(err.value, err.unit), "minimum": _shown(err.minimum, err.unit)}
        case ParameterRule.ABOVE_MAXIMUM:
            key = "parameter_above_maximum"
            placeholders |= {"value": _shown(err.value, err.unit), "maximum": _shown(err.maximum, err.unit)}
        case ParameterRule.OFF_STEP:
            key = "parameter_off_step"
            placeholders |= {
                "value": _shown(err.value, err.unit),
                "step": _shown(err.step, err.unit),
                "minimum": _shown(err.minimum, err.unit),
            }
        case ParameterRule.NOT_FINITE:
            key = "parameter_not_finite"
            placeholders |= {"value": str(err.value)}
        case ParameterRule.UNKNOWN_FIELD:
            key = "parameter_unknown_field"
            group = err.group
            assert group is not None
            placeholders = {
                "field": err.field,  # what the user typed: it has no name
                "group": names.get(f"component.{DOMAIN}.selector.parameter_group.options.{GROUP_NAMES[group]}", ""),
                "fields": ", ".join(group.specs),
            }
        case _:
            key = "parameter_not_encodable"
    return ServiceValidationError(translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders)


async def run_control[T](address: int, operation: Awaitable[T]) -> T:
    """Await a library call and translate its errors."""
    try:
        return await operation
    except NotWritableError as err:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="not_writable",
            translation_placeholders={"address": str(address)},
        ) from err
    except ParameterError as err:
        raise await parameter_error(err) from err
    except CommandNotAllowedError as err:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="command_not_allowed",
            translation_placeholders={"cid2": f"0x{err.cid2:02X}"},
        ) from err
    except ControlRefusedError as err:
        # The user knows what they asked for; the message says why the pack said no. The details go to the log.
        _LOGGER.warning("pack %s refused a write: %s", address, err)
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key=_REFUSAL_KEYS[err.reason],
            translation_placeholders={"address": str(address), "rtn": f"0x{err.rtn:02X}"},
        ) from err
    except ReadBackError as err:
        _LOGGER.warning("pack %s did not apply a write: %s", address, err)
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="readback_mismatch",
            translation_placeholders={"address": str(address)},
        ) from err
    except BmsError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="write_failed",
            translation_placeholders={"address": str(address), "error": str(err) or type(err).__name__},
        ) from err


@callback
def update_pack_status(
    coordinator: LfpBmsCoordinator, address: int, change: Callable[[PackStatus], PackStatus]
) -> None:
    """Publish what a write's reply or read-back says at once, so entities show what the BMS now says. `change`
    gets the pack's last polled status; with none (the pack missed the last poll) the next poll tells."""
    data = coordinator.data
    reading = data.cluster.packs.get(address)
    if reading is None or reading.status is None:
        return
    packs = {**data.cluster.packs, address: replace(reading, status=change(reading.status))}
    coordinator.async_set_updated_data(BankData(cluster=ClusterState(packs=packs), energy=data.energy))


@callback
def set_parameter_group(coordinator: LfpBmsCoordinator, address: int, group: ParameterGroup) -> None:
    """Store a group read back after a write and tell the entities."""
    coordinator.parameters.setdefault(address, {})[type(group)] = group
    coordinator.async_update_listeners()


class LfpBmsControlEntity(LfpBmsEntity):
    """An entity of a writable pack that writes through the coordinator's PaceControl."""

    address: int

    @property
    def control(self) -> PaceControl:
        """The link's control object (entities exist only when there is one)."""
        return require_control(self.coordinator, write=True)

    async def _write[T](self, operation: Callable[[PaceControl], Awaitable[T]]) -> T:
        return await self._run(operation(self.control))

    async def _run[T](self, operation: Awaitable[T]) -> T:
        try:
            return await run_control(self.address, operation)
        except ServiceValidationError:
            raise  # nothing was sent
        except HomeAssistantError:
            # Refused or read back otherwise: show what the pack now reports rather than keep a stale state.
            await self.coordinator.async_request_refresh()
            raise


CLOCK_DESCRIPTION = SensorEntityDescription(
    key="bms_clock",
    translation_key="bms_clock",
    device_class=SensorDeviceClass.TIMESTAMP,
    entity_category=EntityCategory.DIAGNOSTIC,
)
CLOCK_DRIFT_DESCRIPTION = SensorEntityDescription(
    key="bms_clock_drift",
    translation_key="bms_clock_drift",
    device_class=SensorDeviceClass.DURATION,
    state_class=SensorStateClass.MEASUREMENT,
    native_unit_of_measurement=UnitOfTime.SECONDS,
    entity_category=EntityCategory.DIAGNOSTIC,
)


class ClockSensor(LfpBmsEntity, SensorEntity):
    """The BMS clock (as last read, in Home Assistant's time zone) or its drift against Home Assistant's time."""

    def __init__(self, coordinator: LfpBmsCoordinator, address: int, *, drift: bool) -> None:
        super().__init__(coordinator, CLOCK_DRIFT_DESCRIPTION if drift else CLOCK_DESCRIPTION, address)
        self.drift = drift

    @property
    def native_value(self) -> datetime | float | None:
        """The clock read at setup, hourly, or when synced; None before the first read."""
        reading = self.coordinator.clocks.get(self.address) if self.address is not None else None
        if reading is None:
            return None
        if self.drift:
            return round(reading.drift_s)
        return reading.bms.replace(tzinfo=dt_util.get_default_time_zone())

    def _state_key(self) -> tuple[Any, ...]:
        return (self.available, self.native_value)


def clock_sensors(coordinator: LfpBmsCoordinator) -> list[SensorEntity]:
    """Clock and drift sensors of each pack under control (none without control)."""
    return [ClockSensor(coordinator, a, drift=drift) for a in control_addresses(coordinator) for drift in (False, True)]

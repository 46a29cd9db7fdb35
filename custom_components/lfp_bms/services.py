"""Service actions, registered once in async_setup and aimed at one pack device (device_id).

Reads (read_parameters, read_history, raw_command with a read CID2) work whenever the link is PACE and the pack
is directly connected. Writes (write_parameters, set_clock, raw_command with any other CID2) need the entry's
"allow control" option and are admin-only; each is validated before anything is sent and confirmed by a read-back.
"""

from datetime import datetime
from typing import Any

import probatio
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import service
from homeassistant.util import dt as dt_util

from .bms.control import GROUP_NAMES, GROUPS, MAX_HISTORY_RECORDS, READ_CID2S, group_values
from .bms.pace import HistoryRecord
from .const import DOMAIN
from .control_entity import bms_clock_time, require_control, run_control, set_parameter_group, validate_values
from .coordinator import LfpBmsCoordinator
from .entity import pack_identifier

ATTR_DEVICE_ID = "device_id"
ATTR_GROUP = "group"
ATTR_VALUES = "values"
ATTR_COUNT = "count"
ATTR_START = "start"
ATTR_DATETIME = "datetime"
ATTR_CID2 = "cid2"
ATTR_INFO = "info"
ATTR_RETURN_REFUSAL = "return_refusal"

#: Records one read_history call may return (each is one exchange on a slow link).
MAX_SERVICE_HISTORY = min(50, MAX_HISTORY_RECORDS)

_DEVICE = {probatio.Required(ATTR_DEVICE_ID): cv.string}
_GROUP = probatio.In(list(GROUPS))

READ_PARAMETERS_SCHEMA = probatio.Schema({**_DEVICE, probatio.Optional(ATTR_GROUP): _GROUP})
WRITE_PARAMETERS_SCHEMA = probatio.Schema(
    {
        **_DEVICE,
        probatio.Required(ATTR_GROUP): _GROUP,
        probatio.Required(ATTR_VALUES): probatio.All({cv.string: probatio.Coerce(float)}, probatio.Length(min=1)),
    }
)
READ_HISTORY_SCHEMA = probatio.Schema(
    {
        **_DEVICE,
        probatio.Optional(ATTR_COUNT, default=10): probatio.All(
            probatio.Coerce(int), probatio.Range(min=1, max=MAX_SERVICE_HISTORY)
        ),
        probatio.Optional(ATTR_START, default=0): probatio.All(probatio.Coerce(int), probatio.Range(min=0, max=0xFFFF)),
    }
)
SET_CLOCK_SCHEMA = probatio.Schema({**_DEVICE, probatio.Optional(ATTR_DATETIME): cv.datetime})
RAW_COMMAND_SCHEMA = probatio.Schema(
    {
        **_DEVICE,
        probatio.Required(ATTR_CID2): probatio.All(probatio.Coerce(int), probatio.Range(min=0, max=0xFF)),
        probatio.Optional(ATTR_INFO, default=""): probatio.All(cv.string, probatio.Match(r"^([0-9A-Fa-f]{2})*$")),
        probatio.Optional(ATTR_RETURN_REFUSAL, default=False): cv.boolean,
    }
)


def _target(hass: HomeAssistant, call: ServiceCall) -> tuple[LfpBmsCoordinator, int]:
    """(coordinator, address) of the pack device in the call; ServiceValidationError for anything else."""
    device_id: str = call.data[ATTR_DEVICE_ID]
    device = dr.async_get(hass).async_get(device_id)
    if device is not None:
        for entry in hass.config_entries.async_loaded_entries(DOMAIN):
            coordinator = getattr(entry, "runtime_data", None)
            if entry.entry_id not in device.config_entries or not isinstance(coordinator, LfpBmsCoordinator):
                continue
            for address in coordinator.link_config.addresses:
                if (DOMAIN, pack_identifier(coordinator, address)) in device.identifiers:
                    return coordinator, address
    raise ServiceValidationError(
        translation_domain=DOMAIN, translation_key="not_a_pack", translation_placeholders={"device_id": device_id}
    )


def _history_record(record: HistoryRecord) -> dict[str, Any]:
    return {
        "timestamp": record.timestamp.isoformat(),
        "cell_voltages_mv": list(record.cell_voltages_mv),
        "temperatures_c": list(record.temperatures_c),
        "current_a": record.current_a,
        "voltage_v": record.voltage_v,
        "remaining_ah": record.remaining_ah,
        "full_ah": record.full_ah,
        "trailer": record.trailer.hex(),
    }


async def _read_parameters(call: ServiceCall) -> ServiceResponse:

    coordinator, address = _target(call.hass, call)
    control = require_control(coordinator, write=False)
    names = [call.data[ATTR_GROUP]] if ATTR_GROUP in call.data else list(GROUPS)
    groups: dict[str, Any] = {}
    for name in names:
        group = await run_control(address, control.read_group(address, GROUPS[name]))
        groups[name] = group_values(group)
    return {"address": address, "groups": groups}


async def _write_parameters(call: ServiceCall) -> ServiceResponse:

    coordinator, address = _target(call.hass, call)
    control = require_control(coordinator, write=True)
    group_type = GROUPS[call.data[ATTR_GROUP]]
    await validate_values(group_type, call.data[ATTR_VALUES])
    group = await run_control(address, control.write_values(address, group_type, call.data[ATTR_VALUES]))
    set_parameter_group(coordinator, address, group)
    values: dict[str, Any] = group_values(group)
    return {"address": address, "group": GROUP_NAMES[group_type], "values": values}


async def _read_history(call: ServiceCall) -> ServiceResponse:

    coordinator, address = _target(call.hass, call)
    control = require_control(coordinator, write=False)
    records = await run_control(address, control.read_history(address, call.data[ATTR_COUNT], call.data[ATTR_START]))
    return {"address": address, "records": [_history_record(r) for r in records]}


async def _set_clock(call: ServiceCall) -> None:

    coordinator, address = _target(call.hass, call)
    control = require_control(coordinator, write=True)
    moment: datetime | None = call.data.get(ATTR_DATETIME)
    if moment is None:
        moment = dt_util.now()
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt_util.get_default_time_zone())
    await run_control(address, control.set_clock(address, bms_clock_time(moment)))
    await coordinator.async_read_clock(control, address)
    coordinator.async_update_listeners()


async def _raw_command(call: ServiceCall) -> ServiceResponse:

    coordinator, address = _target(call.hass, call)
    cid2: int = call.data[ATTR_CID2]
    control = require_control(coordinator, write=cid2 not in READ_CID2S)
    info = bytes.fromhex(call.data[ATTR_INFO])
    reply = await run_control(
        address, control.raw_command(address, cid2, info, allow_write=coordinator.control_allowed)
    )
    if reply.rtn != 0 and not call.data[ATTR_RETURN_REFUSAL]:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="raw_command_refused",
            translation_placeholders={"address": str(address), "cid2": f"0x{cid2:02X}", "rtn": f"0x{reply.rtn:02X}"},
        )
    return {"address": address, "rtn": reply.rtn, "info": reply.info.hex().upper()}


def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions (once, from async_setup)."""
    hass.services.async_register(
        DOMAIN, "read_parameters", _read_parameters, READ_PARAMETERS_SCHEMA, SupportsResponse.ONLY
    )
    hass.services.async_register(DOMAIN, "read_history", _read_history, READ_HISTORY_SCHEMA, SupportsResponse.ONLY)
    service.async_register_admin_service(
        hass, DOMAIN, "write_parameters", _write_parameters, WRITE_PARAMETERS_SCHEMA, SupportsResponse.OPTIONAL
    )
    service.async_register_admin_service(hass, DOMAIN, "set_clock", _set_clock, SET_CLOCK_SCHEMA)
    service.async_register_admin_service(
        hass, DOMAIN, "raw_command", _raw_command, RAW_COMMAND_SCHEMA, SupportsResponse.ONLY
    )

"""Diagnostics: the link's counters and last frames, identities, the decoded cluster and the energy totals."""

import dataclasses
from collections.abc import Mapping
from enum import Enum
from typing import Any

from homeassistant.components.diagnostics import REDACTED, async_redact_data
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr

from .bms.energy import EnergyTotals
from .const import CONF_DEVICE, CONF_HOST, DOMAIN, is_can_entry
from .coordinator import LfpBmsConfigEntry, LfpBmsCoordinator
from .entity import cluster_identifier, pack_identifier

#: The link URL carries host names and ports; serials identify the owner's hardware.
TO_REDACT = {
    CONF_DEVICE,
    CONF_HOST,
    "serial",
    "serial_number",
    "bms_serial",
    "pack_serial",
    "unique_id",
    "url",
}


async def async_get_config_entry_diagnostics(hass: HomeAssistant, entry: LfpBmsConfigEntry) -> dict[str, Any]:
    """Everything needed to tell a wiring problem from a protocol problem from a decoding problem."""
    entry_part = {
        "title": entry.title,
        "unique_id": entry.unique_id,
        "data": dict(entry.data),
        "options": dict(entry.options),
    }
    if is_can_entry(entry.data):  # a CAN entry has a coordinator of its own
        return {"entry": async_redact_data(entry_part, TO_REDACT)}
    coordinator = entry.runtime_data
    return {
        "entry": async_redact_data(entry_part, TO_REDACT),
        "coordinator": {
            "last_update_success": coordinator.last_update_success,
            "last_exception": None if coordinator.last_exception is None else repr(coordinator.last_exception),
            "update_interval_s": None
            if coordinator.update_interval is None
            else coordinator.update_interval.total_seconds(),
            "implausible_records": coordinator.client.implausible_records,
            "energy_samples_rejected": coordinator.energy_samples_rejected,
        },
        "link": {
            "protocol": str(coordinator.link_config.protocol),
            "config": coordinator.link_config.as_dict(),
            "is_open": coordinator.link.is_open,
            "stats": coordinator.link.stats.snapshot(),
            "last_frames": _last_frames(coordinator),
        },
        "identities": async_redact_data(
            {str(address): _jsonable(identity) for address, identity in coordinator.identities.items()}, TO_REDACT
        ),
        "cluster": None if coordinator.data is None else _jsonable(coordinator.data.cluster),
        "energy": _energy(coordinator),
    }


async def async_get_device_diagnostics(
    hass: HomeAssistant, entry: LfpBmsConfigEntry, device: dr.DeviceEntry
) -> dict[str, Any]:
    """One pack (or the cluster hub): its reading, identity and energy totals."""
    if is_can_entry(entry.data):
        return {}
    coordinator = entry.runtime_data
    identifiers = {value for domain, value in device.identifiers if domain == DOMAIN}
    if cluster_identifier(coordinator) in identifiers:
        return {
            "summary": None if coordinator.data is None else _jsonable(coordinator.data.cluster.summary),
            "energy": _energy(coordinator).get("cluster"),
        }
    for address in coordinator.link_config.addresses:
        if pack_identifier(coordinator, address) in identifiers:
            reading = None if coordinator.data is None else coordinator.data.cluster.packs.get(address)
            identity = coordinator.identities.get(address)
            return {
                "address": address,
                "writable": coordinator.link_config.writable(address),
                "online": reading is not None and reading.online,
                "identity": None if identity is None else async_redact_data(_jsonable(identity), TO_REDACT),
                "reading": None if reading is None else _jsonable(reading),
                "energy": _energy(coordinator).get(str(address)),
            }
    return {}


def _energy(coordinator: LfpBmsCoordinator) -> dict[str, Any]:
    totals: Mapping[str | int, EnergyTotals] = {} if coordinator.data is None else coordinator.data.energy
    return {str(series): _jsonable(value) for series, value in totals.items()}


def _last_frames(coordinator: LfpBmsCoordinator) -> dict[str, dict[str, str | None]]:
    """Last raw request/reply per command (CID2) as text. Identity replies spell the serials in hex ASCII, so a
    frame that carries one is redacted whole."""
    secrets = {
        serial.encode().hex().upper().encode()
        for identity in coordinator.identities.values()
        for serial in (identity.bms_serial, identity.pack_serial)
        if serial and serial.strip()
    }

    def text(raw: bytes | None) -> str | None:
        if raw is None:
            return None
        if any(secret in raw.upper() for secret in secrets):
            return REDACTED
        # EOI is a CR; spelled out so that the text stays on one line.
        return raw.decode("ascii", errors="backslashreplace").replace("\r", "\\r")

    return {
        f"0x{cid2:02X}": {"request": text(request), "reply": text(reply)}
        for cid2, (request, reply) in sorted(coordinator.link.stats.last_exchange.items())
    }


def _jsonable(value: Any) -> Any:
    """Dataclasses, enums, sets and bytes as plain JSON values; sets sorted so that the output is stable."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((_jsonable(item) for item in value), key=str)
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, bytes):
        return value.hex()
    return value

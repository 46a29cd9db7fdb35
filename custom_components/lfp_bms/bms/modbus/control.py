"""Confirmed parameter writes to PACE Modbus packs (registers 60-112), the Modbus twin of control.PaceControl.

The same parameter groups as PACE 0x25 (same settings in the same natural units, PbmsTools ranges) are read
register span by span, changed, validated as a whole (ranges, steps, alarm/protect order, and what the
registers can hold), written with FC 0x10 and read back; an exception reply is a ControlRefusedError. The map has
no MOSFET switch, no clock and no history, so those are not offered.
"""

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, cast

from ..client import ClusterClient
from ..control import ControlRefusedError, ReadBackError, RefusalReason, _coerce, group_values
from ..frame import RtnError
from ..pace_params import ParameterGroup
from .pace_modbus import GROUP_NAMES, PaceModbusDriver, group_to_registers

_LOGGER = logging.getLogger(__name__)

GROUP_TYPES: Mapping[type[ParameterGroup], str] = {group: name for name, group in GROUP_NAMES.items()}


class PaceModbusControl:
    """Parameter reads and confirmed writes of the packs on one PACE Modbus bus (every pack is writable)."""

    groups: Mapping[str, type[ParameterGroup]] = GROUP_NAMES

    def __init__(self, client: ClusterClient) -> None:
        if not isinstance(client.driver, PaceModbusDriver):
            raise TypeError("PaceModbusControl needs a PACE Modbus link")
        self.client = client
        self.driver: PaceModbusDriver = client.driver

    async def read_group[G: ParameterGroup](self, address: int, group_type: type[G]) -> G:
        """One parameter group of the pack with slave id `address`."""
        self.client.check_writable(address)
        return await self.driver.read_group(self.client.modbus, address, group_type)

    async def write_values[G: ParameterGroup](
        self, address: int, group_type: type[G], values: Mapping[str, float]
    ) -> G:
        """Read the group, change the given fields, validate, write (FC 0x10), read back; as PaceControl does."""
        self.client.check_writable(address)
        name = GROUP_TYPES[group_type]
        changes = _coerce(group_type, values)
        async with self.client.lock:
            before = await self.read_group(address, group_type)
            wanted: G = replace(cast(Any, before), **changes)
            wanted.validate()
            group_to_registers(wanted)  # a value the registers cannot hold: ParameterError, nothing sent
            try:
                await self.driver.write_group(self.client.modbus, address, wanted)
            except RtnError as err:
                raise ControlRefusedError(RefusalReason.REFUSED, name, err.rtn) from err
            after = await self.read_group(address, group_type)
        _LOGGER.info("pack %s: %s before %s, after %s", address, name, group_values(before), group_values(after))
        if group_to_registers(after) != group_to_registers(wanted):
            raise ReadBackError(name, group_values(wanted), group_values(after))
        return after

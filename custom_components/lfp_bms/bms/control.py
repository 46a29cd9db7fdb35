"""Writes to a PACE 0x25 pack, each confirmed by reading the pack back (docs/protocol.md §1.9.6-§1.9.13).

Every write goes only to a directly connected pack (ClusterClient.check_writable), holds the client's lock for the
write and its read-back (so a poll never interleaves), is logged at info with the state before and after, and
raises a typed error when the BMS refuses (ControlRefusedError) or reads back something else (ReadBackError).
Parameter groups are read, changed, validated as a whole (pace_params validate) and only then written.
"""

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, cast, get_type_hints

from .client import ClusterClient
from .driver import Strategy
from .frame import BmsError, Frame, Rtn, RtnError
from .models import PackStatus
from .pace import (
    CLOCK_MAX,
    CLOCK_MIN,
    Cid2,
    HistoryRecord,
    PaceDriver,
    SwitchCommand,
    SwitchReply,
    SystemBit,
    decode_clock,
    decode_history,
    decode_mos_reply,
)
from .pace_params import (
    Balancing,
    CellOverVoltage,
    CellUnderVoltage,
    ChargeDischargeOverTemperature,
    ChargeDischargeUnderTemperature,
    ChargeOverCurrent,
    DischargeOverCurrent1,
    DischargeOverCurrent2,
    EnvironmentTemperature,
    FullChargeLowSoc,
    LimiterStartCurrent,
    MosfetOverTemperature,
    PackOverVoltage,
    PackUnderVoltage,
    ParameterError,
    ParameterGroup,
    ParameterRule,
    ProtocolSelection,
    ShortCircuit,
    Sleep,
)

_LOGGER = logging.getLogger(__name__)

#: Stable names of the parameter groups (service arguments, entity keys), in PbmsTools tab order.
GROUPS: Mapping[str, type[ParameterGroup]] = {
    "cell_overvoltage": CellOverVoltage,
    "pack_overvoltage": PackOverVoltage,
    "cell_undervoltage": CellUnderVoltage,
    "pack_undervoltage": PackUnderVoltage,
    "charge_overcurrent": ChargeOverCurrent,
    "discharge_overcurrent_1": DischargeOverCurrent1,
    "discharge_overcurrent_2": DischargeOverCurrent2,
    "short_circuit": ShortCircuit,
    "balancing": Balancing,
    "sleep": Sleep,
    "full_charge_low_soc": FullChargeLowSoc,
    "charge_discharge_overtemperature": ChargeDischargeOverTemperature,
    "charge_discharge_undertemperature": ChargeDischargeUnderTemperature,
    "mosfet_overtemperature": MosfetOverTemperature,
    "environment_temperature": EnvironmentTemperature,
    "limiter_start_current": LimiterStartCurrent,
    "protocol_selection": ProtocolSelection,
}
GROUP_NAMES: Mapping[type[ParameterGroup], str] = {group: name for name, group in GROUPS.items()}

#: CID2s that only read (PACE 0x25): safe for a raw command while control is off. Parameter-group reads included.
READ_CID2S: frozenset[int] = frozenset(
    {
        Cid2.ANALOG,
        Cid2.STATUS,
        Cid2.PACK_COUNT,
        Cid2.HISTORY,
        Cid2.CAPACITY,
        Cid2.READ_CLOCK,
        Cid2.MODEL,
        Cid2.SERIALS,
        *(group.read_cid2 for group in GROUPS.values()),
    }
)
#: Longest history walk one call may ask for (a pack holds about 400 records; each is one exchange).
MAX_HISTORY_RECORDS = 400
#: A clock read back within this many seconds of what was written counts as set (the write itself takes time).
CLOCK_TOLERANCE_S = 5.0


class RefusalReason(StrEnum):
    """Why the BMS refused a write (translation keys in the integration)."""

    BOTH_MOSFETS_OFF = "both_mosfets_off"
    CURRENT_FLOWING = "current_flowing"
    REFUSED = "refused"


class ControlRefusedError(BmsError):
    """The BMS answered a write with a refusal (RTN 09 or another non-zero RTN)."""

    def __init__(self, reason: RefusalReason, what: str, rtn: int) -> None:
        self.reason = reason
        self.what = what
        self.rtn = rtn
        super().__init__(f"{what}: refused by the BMS ({reason}, RTN 0x{rtn:02X})")


class ReadBackError(BmsError):
    """The BMS accepted a write but reading it back shows something else."""

    def __init__(self, what: str, expected: object, actual: object) -> None:
        self.what = what
        self.expected = expected
        self.actual = actual
        super().__init__(f"{what}: wrote {expected}, the BMS reads back {actual}")


class CommandNotAllowedError(BmsError):
    """A raw command outside the read-only allow-list while writes are not allowed."""

    def __init__(self, cid2: int) -> None:
        self.cid2 = cid2
        super().__init__(f"CID2 0x{cid2:02X} is not a read command")


class Switch(StrEnum):
    """The 0x99 switches: each maps to an on/off code pair and its bit in the control byte."""

    BUZZER = "buzzer"
    LED_ALARM = "led_alarm"
    LIMITER = "limiter"
    LOW_GEAR = "low_gear"


_SWITCH_CODES: Mapping[Switch, tuple[SwitchCommand, SwitchCommand]] = {
    Switch.BUZZER: (SwitchCommand.BUZZER_ON, SwitchCommand.BUZZER_OFF),
    Switch.LED_ALARM: (SwitchCommand.LED_ON, SwitchCommand.LED_OFF),
    Switch.LIMITER: (SwitchCommand.LIMITER_ON, SwitchCommand.LIMITER_OFF),
    Switch.LOW_GEAR: (SwitchCommand.LOW_GEAR, SwitchCommand.HIGH_GEAR),
}


def switch_state(reply: SwitchReply, switch: Switch) -> bool:
    """The switch's bit in a 0x99 reply's control byte."""
    return {
        Switch.BUZZER: reply.buzzer_enabled,
        Switch.LED_ALARM: reply.led_alarm_enabled,
        Switch.LIMITER: reply.limiter_enabled,
        Switch.LOW_GEAR: reply.limiter_low_gear,
    }[switch]


@dataclass(frozen=True, slots=True)
class RawReply:
    """Result of a raw command: the reply's RTN and INFO (a non-zero RTN is returned, not raised)."""

    rtn: int
    info: bytes


def group_values(group: ParameterGroup) -> dict[str, float]:
    """The settable fields of a group by name (the constant lead/reserved bytes left out)."""
    return {name: getattr(group, name) for name in group.specs}


def _coerce(group_type: type[ParameterGroup], values: Mapping[str, float]) -> dict[str, Any]:
    """Values for `replace`: known fields only, integers where the field is an int (off-step otherwise)."""
    kinds = get_type_hints(group_type)
    coerced: dict[str, Any] = {}
    for name, value in values.items():
        if name not in group_type.specs:
            raise ParameterError(ParameterRule.UNKNOWN_FIELD, name, value=value, group=group_type)
        if not math.isfinite(value):
            raise ParameterError(ParameterRule.NOT_FINITE, name, value=value, group=group_type)
        if kinds[name] is int:
            if float(value) != round(float(value)):
                spec = group_type.specs[name]
                raise ParameterError(
                    ParameterRule.OFF_STEP,
                    name,
                    value=value,
                    unit=spec.unit,
                    minimum=spec.minimum,
                    maximum=spec.maximum,
                    step=spec.step,
                    group=group_type,
                )
            coerced[name] = round(float(value))
        else:
            coerced[name] = float(value)
    return coerced


class PaceControl:
    """Confirmed writes (and the few reads they need) to the directly connected packs of one PACE link."""

    def __init__(self, client: ClusterClient) -> None:
        if not isinstance(client.driver, PaceDriver):
            raise TypeError("control is only implemented for PACE 0x25")
        self.client = client
        self.driver: PaceDriver = client.driver

    async def _exchange(self, request: bytes) -> Frame:
        return await self.client.link.exchange(request)

    # -- reads

    async def read_status(self, address: int) -> PackStatus:
        """0x44 of one pack, addressed as polling does (relay through the master, or the pack itself on a bus)."""
        config = self.client.config
        adr = address if config.strategy is Strategy.BUS else config.master_address
        statuses = self.driver.decode_status(await self._exchange(self.driver.status_request(adr, address)), address)
        if len(statuses) != 1:
            raise BmsError(f"expected one status record for pack {address}, got {len(statuses)}")
        return replace(statuses[0], address=address)

    async def read_group[G: ParameterGroup](self, address: int, group_type: type[G]) -> G:
        """One parameter group of a directly connected pack."""
        adr = self.client.check_writable(address)
        frame = await self._exchange(self.driver.request(adr, group_type.read_cid2))
        return group_type.decode(frame.info)

    async def read_clock(self, address: int) -> datetime:
        """The BMS clock (local time without a zone)."""
        adr = self.client.check_writable(address)
        return decode_clock((await self._exchange(self.driver.read_clock_request(adr))).info)

    async def read_history(self, address: int, count: int, start: int = 0) -> list[HistoryRecord]:
        """Up to `count` records from index `start` (0 = newest); stops early at the end of the history."""
        # Records are addressed by a 16-bit index (docs/protocol.md §1.9.10); a bad range is the caller's, sent nowhere.
        if count < 1:
            raise ParameterError(ParameterRule.BELOW_MINIMUM, "count", value=count, minimum=1)
        if count > MAX_HISTORY_RECORDS:
            raise ParameterError(ParameterRule.ABOVE_MAXIMUM, "count", value=count, maximum=MAX_HISTORY_RECORDS)
        if start < 0:
            raise ParameterError(ParameterRule.BELOW_MINIMUM, "start", value=start, minimum=0)
        if start + count - 1 > 0xFFFF:
            # The last record asked for must still have a 16-bit index.
            raise ParameterError(ParameterRule.ABOVE_MAXIMUM, "start", value=start, maximum=0x10000 - count)
        adr = self.client.check_writable(address)
        records: list[HistoryRecord] = []
        for index in range(start, start + count):
            record = decode_history((await self._exchange(self.driver.history_request(adr, index))).info)
            if record is None:
                break
            records.append(record)
        return records

    async def raw_command(self, address: int, cid2: int, info: bytes, *, allow_write: bool) -> RawReply:
        """One request with any CID2/INFO to a directly connected pack; writes only with `allow_write`."""
        if cid2 not in READ_CID2S and not allow_write:
            raise CommandNotAllowedError(cid2)
        adr = self.client.check_writable(address)
        try:
            frame = await self._exchange(self.driver.request(adr, cid2, info))
        except RtnError as err:
            return RawReply(rtn=err.rtn, info=err.frame.info if err.frame is not None else b"")
        if cid2 not in READ_CID2S:
            _LOGGER.info("pack %s: raw command 0x%02X %s answered %s", address, cid2, info.hex(), frame.info.hex())
        return RawReply(rtn=frame.rtn, info=frame.info)

    # -- writes

    async def set_mos(self, address: int, *, charge: bool, on: bool) -> PackStatus:
        """Switch the charge (0x9A) or discharge (0x9B) MOSFET; returns the status read back afterwards."""
        adr = self.client.check_writable(address)
        what = f"{'charge' if charge else 'discharge'} MOSFET {'on' if on else 'off'}"
        async with self.client.lock:
            before = await self.read_status(address)
            try:
                decode_mos_reply(await self._exchange(self.driver.mos_request(adr, charge=charge, on=on)))
            except RtnError as err:
                raise ControlRefusedError(self._mos_refusal(err, before, charge=charge, on=on), what, err.rtn) from err
            after = await self.read_status(address)
        _LOGGER.info(
            "pack %s: %s; MOSFETs charge/discharge before %s/%s, after %s/%s",
            address,
            what,
            before.charge_mos_on,
            before.discharge_mos_on,
            after.charge_mos_on,
            after.discharge_mos_on,
        )
        actual = after.charge_mos_on if charge else after.discharge_mos_on
        if actual is not on:
            raise ReadBackError(what, "on" if on else "off", "on" if actual else "off")
        return after

    @staticmethod
    def _mos_refusal(err: RtnError, before: PackStatus, *, charge: bool, on: bool) -> RefusalReason:
        """Name the rule the BMS applied (§1.9.7), from the system byte it sent with the refusal or read before."""
        if err.rtn != Rtn.OPERATION_REFUSED or on:
            return RefusalReason.REFUSED
        info = err.frame.info if err.frame is not None else b""
        if len(info) == 1:
            other_on = bool(info[0] >> (SystemBit.DISCHARGE_MOS if charge else SystemBit.CHARGE_MOS) & 1)
            flowing = bool(info[0] >> (SystemBit.DISCHARGING if charge else SystemBit.CHARGING) & 1)
        else:
            other_on = bool(before.discharge_mos_on if charge else before.charge_mos_on)
            flowing = bool(before.discharging if charge else before.charging)
        if not other_on:
            return RefusalReason.BOTH_MOSFETS_OFF
        if flowing:
            return RefusalReason.CURRENT_FLOWING
        return RefusalReason.REFUSED

    async def set_switch(self, address: int, switch: Switch, on: bool) -> SwitchReply:
        """A 0x99 switch; the reply carries the new control byte, whose bit must show the change."""
        adr = self.client.check_writable(address)
        code = _SWITCH_CODES[switch][0 if on else 1]
        async with self.client.lock:
            try:
                reply = SwitchReply.decode((await self._exchange(self.driver.switch_request(adr, code))).info)
            except RtnError as err:
                raise ControlRefusedError(RefusalReason.REFUSED, f"{switch} {'on' if on else 'off'}", err.rtn) from err
        actual = switch_state(reply, switch)
        _LOGGER.info("pack %s: %s set %s, control byte now 0x%02X", address, switch, on, reply.control)
        if actual is not on:
            raise ReadBackError(str(switch), on, actual)
        return reply

    async def write_values[G: ParameterGroup](
        self, address: int, group_type: type[G], values: Mapping[str, float]
    ) -> G:
        """Read the group, change the given fields, validate the whole group, write it, read it back.

        ParameterError (nothing sent) for an unknown field or a value the group would not accept; ReadBackError
        when the pack reports other values afterwards. Returns the group as read back.
        """
        adr = self.client.check_writable(address)
        name = GROUP_NAMES[group_type]
        changes = _coerce(group_type, values)
        async with self.client.lock:
            before = await self.read_group(address, group_type)
            wanted: G = replace(cast(Any, before), **changes)
            wanted.validate()
            request = self.driver.request(adr, group_type.write_cid2, wanted.encode())
            try:
                (await self._exchange(request)).check_rtn()
            except RtnError as err:
                raise ControlRefusedError(RefusalReason.REFUSED, name, err.rtn) from err
            after = await self.read_group(address, group_type)
        _LOGGER.info("pack %s: %s before %s, after %s", address, name, group_values(before), group_values(after))
        if after.encode() != wanted.encode():
            raise ReadBackError(name, group_values(wanted), group_values(after))
        return after

    async def shutdown(self, address: int) -> None:
        """0x9C: the pack powers down if idle (with current flowing it wakes at once, like a reboot)."""
        adr = self.client.check_writable(address)
        async with self.client.lock:
            try:
                (await self._exchange(self.driver.shutdown_request(adr))).check_rtn()
            except RtnError as err:
                raise ControlRefusedError(RefusalReason.REFUSED, "shutdown", err.rtn) from err
        _LOGGER.info("pack %s: shutdown sent", address)

    async def set_clock(self, address: int, moment: datetime) -> datetime:
        """Set the BMS clock to `moment` (naive local time, whole seconds) and return the clock read back."""
        adr = self.client.check_writable(address)
        moment = moment.replace(microsecond=0, tzinfo=None)
        if not CLOCK_MIN <= moment <= CLOCK_MAX:
            raise ParameterError(ParameterRule.WIRE_RANGE, "datetime")  # the integration checks it first, in words
        async with self.client.lock:
            before = await self.read_clock(address)
            try:
                (await self._exchange(self.driver.write_clock_request(adr, moment))).check_rtn()
            except RtnError as err:
                raise ControlRefusedError(RefusalReason.REFUSED, "clock", err.rtn) from err
            after = await self.read_clock(address)
        _LOGGER.info("pack %s: clock before %s, set %s, after %s", address, before, moment, after)
        if abs((after - moment).total_seconds()) > CLOCK_TOLERANCE_S:
            raise ReadBackError("clock", moment.isoformat(), after.isoformat())
        return after

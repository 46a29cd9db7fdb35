"""ClusterClient: everything the integration asks of a battery cluster on one link.

The client owns the order of exchanges on the half-duplex link (the transport serialises them) and turns
replies into one frozen ClusterState per refresh. It knows nothing about Home Assistant.
"""

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .driver import ALL_PACKS, Exchange, ProtocolDriver, ProtocolName, Strategy
from .frame import BmsError, Frame, FrameError, RtnError
from .modbus.base import ModbusDriver
from .modbus.codec import ModbusExchange, ModbusRequest
from .models import IMPLAUSIBLE, ClusterState, PackAnalog, PackIdentity, PackReading, PackStatus, SystemInfo
from .plausibility import check_analog
from .transport import LinkTimeout

_LOGGER = logging.getLogger(__name__)

#: Failed exchanges repeated (once each) per poll. One corrupted byte in a broadcast would otherwise fail the whole
#: poll; the bound keeps silent packs on a bus from each adding a second timeout to every poll.
RETRIES_PER_POLL = 2
#: Worth repeating: the reply was lost, garbled or answered something else. Not LinkError (the link is down and
#: reopened after a backoff) nor RtnError (the BMS answered and refused; asking again gets the same answer).
_RETRYABLE = (FrameError, LinkTimeout)


class NotWritableError(BmsError):
    """A write was aimed at a pack this link cannot write (not directly connected)."""

    def __init__(self, address: int) -> None:
        self.address = address
        super().__init__(f"pack {address} is not directly connected to this link and refuses writes")


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkConfig:
    """What detection learned about a link; stored in the config entry and enough to poll without probing."""

    protocol: ProtocolName
    ver: int
    cid1: int
    baudrate: int
    #: ADR of the pack the link is plugged into (PACE RS232 master: 1; Pylon master: 2).
    master_address: int
    #: Addresses of every pack expected in the cluster, in order.
    addresses: tuple[int, ...]
    strategy: Strategy
    #: ADR used for identity, clock, parameters and writes to the directly connected pack.
    #: PbmsTools writes with ADR 00 on RS232 (tests/data/captures.md A.2); on an RS485 bus each pack is its own ADR.
    local_address: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form, for a config entry."""
        return {
            "protocol": str(self.protocol),
            "ver": self.ver,
            "cid1": self.cid1,
            "baudrate": self.baudrate,
            "master_address": self.master_address,
            "addresses": list(self.addresses),
            "strategy": str(self.strategy),
            "local_address": self.local_address,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LinkConfig:
        """Inverse of as_dict (extra keys are ignored)."""
        return cls(
            protocol=ProtocolName(data["protocol"]),
            ver=int(data["ver"]),
            cid1=int(data["cid1"]),
            baudrate=int(data["baudrate"]),
            master_address=int(data["master_address"]),
            addresses=tuple(int(a) for a in data["addresses"]),
            strategy=Strategy(data["strategy"]),
            local_address=int(data["local_address"]),
        )

    def writable(self, address: int) -> bool:
        """Only the directly connected pack accepts configuration and control (docs/protocol.md §1.7.1).

        On an RS485 bus every pack is directly connected; through a master only the master is.
        """
        return self.strategy is Strategy.BUS or address == self.master_address

    def command_address(self, address: int) -> int:
        """ADR to use for a configuration/control exchange with `address`."""
        if self.strategy is Strategy.BUS:
            return address
        return self.local_address


class ClusterClient:
    """Reads a whole cluster through one link using one protocol driver."""

    def __init__(
        self,
        link: Exchange,
        driver: ProtocolDriver | ModbusDriver,
        config: LinkConfig,
        *,
        invert_current: bool = False,
    ) -> None:
        self.link = link
        self.driver = driver
        self.config = config
        #: Flip the sign of every pack's current as it is decoded (a BMS that reports charging as negative), so
        #: that power, the summary, the operating state and everything derived from them agree: + = charging.
        self.invert_current = invert_current
        #: Held by every multi-exchange sequence that must not interleave with another: a poll (read_all) and
        #: each write with its read-back (control.PaceControl), so a poll never sees a half-applied change.
        self.lock = asyncio.Lock()
        self._retries_left = 0
        #: Pack records that were checksum-valid but implausible (bms/plausibility.py) and so not published.
        self.implausible_records = 0

    async def read_all(self) -> ClusterState:
        """Analog values and status of every expected pack, by the configured strategy.

        A pack that does not answer gets a PackReading with `error` set; if no pack answers at all the
        underlying transport error propagates, so the caller can mark the link down. A lost, garbled or
        mismatched reply, or one carrying an implausible record, is asked for again once (up to RETRIES_PER_POLL
        times per poll); a record still implausible is a reading with `implausible` set (every protocol, Modbus too).
        """
        async with self.lock:
            self._retries_left = RETRIES_PER_POLL
            if isinstance(self.driver, ModbusDriver):
                return await self._read_registers(self.driver)
            if self.config.strategy is Strategy.BROADCAST:
                return await self._read_broadcast()
            return await self._read_each()

    async def _read_broadcast(self) -> ClusterState:
        master = self.config.master_address
        # The selector makes a reply that answers another request (a late one) a FrameError, not a record.
        analogs = await self._fetch_analogs(
            self.frames.analog_request(master, ALL_PACKS), self.frames.decode_analog, ALL_PACKS
        )
        statuses = await self._fetch(
            self.frames.status_request(master, ALL_PACKS), self.frames.decode_status, ALL_PACKS
        )
        return self._assemble(analogs, statuses, {})

    async def _read_each(self) -> ClusterState:
        bus = self.config.strategy is Strategy.BUS
        analogs: list[PackAnalog] = []
        statuses: list[PackStatus] = []
        errors: dict[int, str] = {}
        last_error: BmsError | None = None
        for address in self.config.addresses:
            adr = address if bus else self.config.master_address
            try:
                analog = await self._fetch_analogs(self.frames.analog_request(adr, address), self._one_analog, address)
                status = await self._fetch(self.frames.status_request(adr, address), self._one_status, address)
            except BmsError as err:
                # One silent or garbled pack must not take the others down with it.
                _LOGGER.debug("pack %s: %s", address, err)
                errors[address] = type(err).__name__
                last_error = err
                continue
            # Appended together only: _assemble pairs records with addresses by position.
            analogs += analog
            statuses += status
        if last_error is not None and len(errors) == len(self.config.addresses):
            raise last_error
        return self._assemble(analogs, statuses, errors)

    @property
    def frames(self) -> ProtocolDriver:
        """The driver of a '~' frame protocol (every path but the Modbus one)."""
        if not isinstance(self.driver, ProtocolDriver):
            raise TypeError(f"{type(self.driver).__name__} is not a frame protocol driver")
        return self.driver

    @property
    def modbus(self) -> ModbusExchange:
        """The link as a Modbus link (a Modbus driver needs one; SerialLink is)."""
        if not isinstance(self.link, ModbusExchange):
            raise TypeError(f"{type(self.link).__name__} does not speak Modbus")
        return self.link

    async def _read_registers(self, driver: ModbusDriver) -> ClusterState:
        """Each pack by its own slave id (a Modbus map has no relay), then the master's system block if any."""
        link = _RetryingModbus(self)
        analogs: list[PackAnalog] = []
        statuses: list[PackStatus] = []
        errors: dict[int, str] = {}
        last_error: BmsError | None = None
        for address in self.config.addresses:
            try:
                analog, status = await driver.read_pack(link, address)
            except BmsError as err:
                _LOGGER.debug("pack %s: %s", address, err)
                errors[address] = type(err).__name__
                last_error = err
                continue
            analogs.append(analog)
            statuses.append(status)
        if last_error is not None and len(errors) == len(self.config.addresses):
            raise last_error
        state = self._assemble(analogs, statuses, errors)
        system: SystemInfo | None = None
        if self.config.master_address not in errors:
            try:
                system = await driver.read_system(link, self.config.master_address)
            except BmsError as err:
                _LOGGER.debug("system block of %s: %s", self.config.master_address, err)
        return replace(state, system=system) if system is not None else state

    async def _fetch[T](self, request: bytes, decode: Callable[[Frame, int], T], selector: int) -> T:
        """Send `request` and decode its reply for `selector`; a failure is repeated once while the poll has
        retries left."""
        try:
            return decode(await self.link.exchange(request), selector)
        except _RETRYABLE as err:
            if self._retries_left <= 0:
                raise
            self._retries_left -= 1
            _LOGGER.debug("retrying %r after %s: %s", request, type(err).__name__, err)
        return decode(await self.link.exchange(request), selector)

    async def _fetch_analogs(
        self, request: bytes, decode: Callable[[Frame, int], list[PackAnalog]], selector: int
    ) -> list[PackAnalog]:
        """Like _fetch; a reply with an implausible record is treated like a garbled one and asked for again once
        (a nonsense value is usually a one-off). What the repeat brings is kept; _assemble judges it again."""
        records = await self._fetch(request, decode, selector)
        if self._retries_left > 0 and any(check_analog(r) for r in records if not r.absent):
            self._retries_left -= 1
            _LOGGER.debug("retrying %r: implausible record", request)
            records = await self._fetch(request, decode, selector)
        return records

    def _one_analog(self, frame: Frame, address: int) -> list[PackAnalog]:
        return self._only(self.frames.decode_analog(frame, address), address)

    def _one_status(self, frame: Frame, address: int) -> list[PackStatus]:
        return self._only(self.frames.decode_status(frame, address), address)

    @staticmethod
    def _only[T: (PackAnalog, PackStatus)](records: list[T], address: int) -> list[T]:
        """A per-pack reply must carry exactly one record; relay replies are re-addressed to the pack asked."""
        if len(records) != 1:
            raise FrameError(f"expected one pack record for address {address}, got {len(records)}")
        return records

    def _assemble(
        self, analogs: Sequence[PackAnalog], statuses: Sequence[PackStatus], errors: dict[int, str]
    ) -> ClusterState:
        # Records are matched to expected addresses by position in the reply, which is how the master
        # orders a broadcast and how _read_each appends them; the address inside a relay record is the
        # echoed INFO and may be the master's.
        answered = [a for a in self.config.addresses if a not in errors]
        packs: dict[int, PackReading] = {}
        for index, address in enumerate(answered):
            analog = analogs[index] if index < len(analogs) else None
            status = statuses[index] if index < len(statuses) else None
            packs[address] = self._reading(address, analog, status)
        for address, error in errors.items():
            packs[address] = PackReading(address=address, error=error)
        # A broadcast numbers its records consecutively from the first pack (detect._find_packs), so a record
        # beyond the expected ones belongs to the address after the last: a pack added to the group since.
        unexpected: dict[int, PackReading] = {}
        if answered and len(analogs) > len(answered):
            last = self.config.addresses[-1]
            for index in range(len(answered), len(analogs)):
                address = last + index - len(answered) + 1
                status = statuses[index] if index < len(statuses) else None
                unexpected[address] = self._reading(address, analogs[index], status)
        return ClusterState(packs=dict(sorted(packs.items())), unexpected=unexpected)

    def _reading(self, address: int, analog: PackAnalog | None, status: PackStatus | None) -> PackReading:
        """One pack's reading from its records, re-addressed to the pack polled; an implausible record is not
        published (its values stay out of the reading), like a reply that did not arrive."""
        reading = _reading(address, analog, status, self.invert_current)
        if reading.analog is None or reading.analog.absent:
            return reading
        problem = check_analog(reading.analog)
        if problem is None:
            return reading
        self.implausible_records += 1
        _LOGGER.debug("pack %s: implausible record not published: %s", address, problem)
        return PackReading(address=address, error=IMPLAUSIBLE, implausible=problem)

    async def read_identity(self, address: int) -> PackIdentity:
        """Identity strings of a directly connected pack (slaves behind a master have none to give)."""
        if not self.config.writable(address):
            return PackIdentity()
        try:
            if isinstance(self.driver, ModbusDriver):
                return await self.driver.read_identity(self.modbus, address)
            return await self.driver.read_identity(self.link, self.config.command_address(address))
        except RtnError:
            return PackIdentity()

    def check_writable(self, address: int) -> int:
        """ADR for a write to `address`, or NotWritableError."""
        if not self.config.writable(address):
            raise NotWritableError(address)
        return self.config.command_address(address)


class _RetryingModbus(ModbusExchange):
    """The client's Modbus link with the poll's retry budget: a lost or garbled reply is asked for again."""

    def __init__(self, client: ClusterClient) -> None:
        self._client = client
        self._link = client.modbus

    async def modbus_exchange(self, request: ModbusRequest, *, timeout: float | None = None) -> bytes:
        try:
            return await self._link.modbus_exchange(request, timeout=timeout)
        except _RETRYABLE as err:
            if self._client._retries_left <= 0:
                raise
            self._client._retries_left -= 1
            _LOGGER.debug("retrying %s after %s: %s", request, type(err).__name__, err)
        return await self._link.modbus_exchange(request, timeout=timeout)


def _reading(address: int, analog: PackAnalog | None, status: PackStatus | None, invert: bool) -> PackReading:
    """One pack's reading from its records, re-addressed to the pack polled, current sign applied."""
    if analog is None:
        return PackReading(address=address, error="missing")
    if analog.address != address:
        analog = _readdress(analog, address)
    if invert:
        analog = replace(analog, current_a=0.0 - analog.current_a)  # not -x: an idle pack must not read -0.0
    if status is not None and status.address != address:
        status = _readdress(status, address)
    return PackReading(address=address, analog=analog, status=status, error="absent" if analog.absent else None)


def _readdress[R: (PackAnalog, PackStatus)](record: R, address: int) -> R:
    return replace(record, address=address)

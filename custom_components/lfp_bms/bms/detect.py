"""Find out what is on a link: baud rate, protocol family, VER/CID1 as the BMS answers, pack addresses and the
cheapest way to read them all (docs/protocol.md §1.11 and §1.12). Bounded in time; reports each stage.
"""

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .client import ClusterClient, LinkConfig
from .driver import ALL_PACKS, ProtocolDriver, ProtocolName, Strategy
from .family20 import classify_analog_reply
from .frame import BmsError, Frame, Rtn, RtnError, encode_frame
from .modbus.detect import MODBUS_BAUDS, detect_modbus
from .models import ClusterState, PackIdentity
from .pace import PaceDriver, decode_pack_count
from .progress import DetectProgress, Progress, Stage
from .registry import make_driver, make_frame_driver
from .transport import LinkError, SerialLink

_LOGGER = logging.getLogger(__name__)

#: PACE and most clones run 9600; Pylontech RS485 defaults to 115200; Seplos V3 (not spoken here) 19200.
DEFAULT_BAUDS = (9600, 115200, 19200)
PROBE_TIMEOUT = 0.6
SCAN_TIMEOUT = 0.35
DETECT_TIMEOUT = 60.0
MAX_ADDRESS = 15


class NoBatteryFoundError(BmsError):
    """Nothing on the link answered any probe."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    """One analog request that a family answers, and at which ADR."""

    ver: int
    cid1: int
    adr: int
    info: bytes

    def frame(self) -> bytes:
        """The request bytes."""
        return encode_frame(self.ver, self.adr, self.cid1, 0x42, self.info)


#: In the order of docs/protocol.md §1.11: PACE at the master (ADR 1) and stand-alone (ADR 0), Pylon at its first
#: address 2, Seplos at 0/1, EG4 (CID1 4A, requests without INFO).
PROBES: tuple[Probe, ...] = (
    Probe(ver=0x25, cid1=0x46, adr=1, info=b"\x01"),
    Probe(ver=0x25, cid1=0x46, adr=0, info=b"\x00"),
    Probe(ver=0x20, cid1=0x46, adr=2, info=b"\x02"),
    Probe(ver=0x20, cid1=0x46, adr=0, info=b"\x00"),
    Probe(ver=0x20, cid1=0x46, adr=1, info=b"\x01"),
    Probe(ver=0x20, cid1=0x4A, adr=1, info=b""),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectionResult:
    """Everything the config flow shows and stores."""

    config: LinkConfig
    identity: PackIdentity
    state: ClusterState
    #: Seconds one full refresh took during detection (bounds the shortest sensible poll interval).
    refresh_s: float


async def detect(
    link: SerialLink,
    *,
    bauds: Sequence[int] = DEFAULT_BAUDS,
    progress: Progress | None = None,
    timeout: float = DETECT_TIMEOUT,
    modbus_first: bool = False,
) -> DetectionResult:
    """Probe `link` (opened here at each baud) and return what answers. Raises NoBatteryFoundError or LinkError.

    The ASCII protocols are tried first, then Modbus RTU (PACE Modbus, Seplos V3); `modbus_first` turns the
    order round (an RS485 port known to be set to a Modbus protocol)."""
    report = progress or (lambda step: None)
    found: list[ProtocolName] = []
    try:
        async with asyncio.timeout(timeout):
            if modbus_first and (result := await _detect_modbus(link, report, found)) is not None:
                return result
            try:
                return await _detect(link, bauds, report, found)
            except NoBatteryFoundError:
                if modbus_first or (result := await _detect_modbus(link, report, found)) is None:
                    raise
                return result
    except TimeoutError:
        if found:
            raise  # a battery answered but a later stage hung: a link problem, not "no battery"
        raise NoBatteryFoundError(f"no battery answered within {timeout} s") from None


async def _detect(
    link: SerialLink, bauds: Sequence[int], report: Progress, found: list[ProtocolName]
) -> DetectionResult:
    for baud in bauds:
        report(DetectProgress(stage=Stage.BAUD, baudrate=baud))
        await link.set_baudrate(baud)
        answer = await _probe_protocol(link)
        if answer is None:
            continue
        probe, reply, protocol = answer
        found.append(protocol)
        report(DetectProgress(stage=Stage.PROTOCOL, baudrate=baud, protocol=protocol))
        driver = make_frame_driver(protocol, ver=reply.ver, cid1=reply.cid1)
        report(DetectProgress(stage=Stage.PACK_ADDRESSES, baudrate=baud, protocol=protocol))
        config = await _find_packs(link, driver, probe.adr, baud)
        client = ClusterClient(link, driver, config)
        packs = len(config.addresses)
        report(DetectProgress(stage=Stage.IDENTITY, baudrate=baud, protocol=protocol, packs=packs))
        identity = await client.read_identity(config.master_address)
        report(DetectProgress(stage=Stage.FIRST_READ, baudrate=baud, protocol=protocol, packs=packs))
        started = time.monotonic()
        state = await client.read_all()
        return DetectionResult(config=config, identity=identity, state=state, refresh_s=time.monotonic() - started)
    raise NoBatteryFoundError("no battery answered at " + ", ".join(str(b) for b in bauds) + " baud")


async def _detect_modbus(link: SerialLink, report: Progress, found: list[ProtocolName]) -> DetectionResult | None:
    """PACE Modbus or Seplos V3 on `link` (reads only), set up like the ASCII families; None when neither answers."""
    answer = await detect_modbus(link, bauds=MODBUS_BAUDS, progress=report)
    if answer is None:
        return None
    protocol, baud, addresses = answer
    found.append(protocol)
    config = LinkConfig(
        protocol=protocol,
        ver=0,
        cid1=0,
        baudrate=baud,
        master_address=addresses[0],
        addresses=tuple(addresses),
        strategy=Strategy.BUS,
        local_address=addresses[0],
    )
    client = ClusterClient(link, make_driver(protocol), config)
    step = DetectProgress(stage=Stage.IDENTITY, baudrate=baud, modbus=True, protocol=protocol, packs=len(addresses))
    report(step)
    identity = await client.read_identity(config.master_address)
    report(replace(step, stage=Stage.FIRST_READ))
    started = time.monotonic()
    state = await client.read_all()
    return DetectionResult(config=config, identity=identity, state=state, refresh_s=time.monotonic() - started)


async def _probe_protocol(link: SerialLink) -> tuple[Probe, Frame, ProtocolName] | None:
    """The first probe whose answer a family decodes. A refusal (e.g. RTN 01 from a VER 0x20 pack to a VER 0x25
    probe) or an undecodable answer only proves that something is there: the later probes find out what."""
    # A sleeping pack may swallow the first frame after a quiet period (docs/protocol.md §6: sleep after 5 min without
    # traffic); the first probe is therefore tried twice.
    for index, probe in enumerate((PROBES[0], *PROBES)):
        try:
            reply = await link.exchange(probe.frame(), timeout=PROBE_TIMEOUT)
        except LinkError:
            raise  # the port itself failed: no probe can succeed
        except BmsError as err:
            _LOGGER.debug("probe %s: %s", index, err)
            continue
        protocol = _classify(probe, reply)
        if protocol is not None:
            return probe, reply, protocol
        _LOGGER.debug("probe %s: answer not understood: %s", index, reply.raw)
    return None


def _classify(probe: Probe, reply: Frame) -> ProtocolName | None:
    """Which family answered. The reply's VER may differ from ours ("lying" firmwares): the payload decides."""
    if probe.ver == 0x25:
        try:
            PaceDriver().decode_analog(reply)
        except BmsError:
            return None
        return ProtocolName.PACE25
    return classify_analog_reply(reply)


async def _find_packs(link: SerialLink, driver: ProtocolDriver, adr: int, baud: int) -> LinkConfig:
    def config(strategy: Strategy, addresses: Sequence[int], master: int = adr) -> LinkConfig:
        return LinkConfig(
            protocol=driver.name,
            ver=driver.ver,
            cid1=driver.cid1,
            baudrate=baud,
            master_address=master,
            addresses=tuple(addresses),
            strategy=strategy,
            local_address=master,
        )

    if Strategy.BROADCAST in driver.strategies:
        count = await _pack_count(link, driver, adr)
        records = await _broadcast_records(link, driver, adr)
        if records is not None and (records > 1 or count > 1):
            first = 1 if driver.name is ProtocolName.PACE25 else adr
            return config(Strategy.BROADCAST, range(first, first + records))
        if count > 1 and Strategy.RELAY in driver.strategies:
            return config(Strategy.RELAY, range(1, count + 1))
    addresses, refused = await _scan_bus(link, driver, adr)
    if addresses == [adr] and (relayed := await _relayed(link, driver, adr, refused)):
        return config(Strategy.RELAY, [adr, *relayed])
    return config(Strategy.BUS, addresses, master=addresses[0])


async def _pack_count(link: SerialLink, driver: ProtocolDriver, adr: int) -> int:
    if not isinstance(driver, PaceDriver):
        return 1
    try:
        return decode_pack_count((await link.exchange(driver.pack_count_request(adr), timeout=PROBE_TIMEOUT)).info)
    except BmsError:
        return 1


async def _broadcast_records(link: SerialLink, driver: ProtocolDriver, adr: int) -> int | None:
    """Number of pack records in a broadcast reply, None when the master does not broadcast."""
    try:
        # A broadcast reply of 16 packs at 9600 baud takes ~2 s on the wire.
        reply = await link.exchange(driver.analog_request(adr, ALL_PACKS), timeout=3.0)
        return len(driver.decode_analog(reply))
    except BmsError as err:
        _LOGGER.debug("no broadcast: %s", err)
        return None


async def _scan_bus(link: SerialLink, driver: ProtocolDriver, first: int) -> tuple[list[int], list[int]]:
    """Every address 0..15 (Pylon: 2..17) that answers an analog request, starting with the one found; and the
    addresses refused with RTN 90 (ADR error): the listener knows them as another pack's, which is what the
    master on a console link says of its slaves."""
    found = [first]
    refused: list[int] = []
    base = 2 if driver.name is ProtocolName.PYLON else 0
    for address in range(base, base + MAX_ADDRESS + 1):
        if address == first:
            continue
        try:
            await link.exchange(driver.analog_request(address, address), timeout=SCAN_TIMEOUT)
        except RtnError as err:
            (refused if err.rtn == Rtn.ADR_ERROR else found).append(address)
        except BmsError:
            continue
        else:
            found.append(address)
    if 0 in found and len(found) > 1 and driver.name is not ProtocolName.SEPLOS:
        # ADR 00 reaches "whoever is connected" (tests/data/captures.md A.2; EG4 on its console port too): the same
        # pack as a numbered one. Only a Seplos bus numbers a real pack 0 (DIP 0).
        found.remove(0)
    return sorted(found), refused


async def _relayed(link: SerialLink, driver: ProtocolDriver, master: int, candidates: Sequence[int]) -> list[int]:
    """The refused addresses that the master relays (ADR = master, INFO = the pack; Seplos V2 on RS232). Only for
    a protocol whose request names the pack: an EG4 request has no INFO, the ADR alone selects."""
    relayed = []
    for address in candidates:
        request = driver.analog_request(master, address)
        if request == driver.analog_request(master, master):
            break
        try:
            records = driver.decode_analog(await link.exchange(request, timeout=SCAN_TIMEOUT))
        except BmsError:
            continue
        if len(records) == 1:
            relayed.append(address)
    return relayed

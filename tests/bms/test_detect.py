"""Detection against the simulator: every family and link mode it simulates, baud order, nothing on the line.

The simulator serves TCP and cannot emulate a wrong baud rate (its `baud` only paces replies; a socket has no
line rate), so `BaudGatedLink` stands in for the UART: the simulated pack only hears frames sent at its baud, as a
real pack at 115200 would not understand frames sent at 9600.
"""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from custom_components.lfp_bms.bms import detect as detect_module
from custom_components.lfp_bms.bms.detect import DEFAULT_BAUDS, DetectionResult, NoBatteryFoundError, detect
from custom_components.lfp_bms.bms.driver import ProtocolName, Strategy
from custom_components.lfp_bms.bms.frame import Frame
from custom_components.lfp_bms.bms.modbus import detect as modbus_detect
from custom_components.lfp_bms.bms.modbus.detect import MODBUS_BAUDS
from custom_components.lfp_bms.bms.progress import DetectProgress, Stage
from custom_components.lfp_bms.bms.simulator import Simulator, SimulatorConfig
from custom_components.lfp_bms.bms.transport import LinkError, LinkTimeout, SerialLink


@pytest.fixture(autouse=True)
def _short_probe_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The unpaced simulator answers at once; short timeouts keep the silent probes and the bus scan quick."""
    monkeypatch.setattr(detect_module, "PROBE_TIMEOUT", 0.15)
    monkeypatch.setattr(detect_module, "SCAN_TIMEOUT", 0.15)
    monkeypatch.setattr(modbus_detect, "PROBE_TIMEOUT", 0.15)
    monkeypatch.setattr(modbus_detect, "SCAN_TIMEOUT", 0.15)


class BaudGatedLink(SerialLink):
    """A link to the simulator on which the pack only understands frames sent at `pack_baud`."""

    def __init__(self, url: str, pack_baud: int) -> None:
        super().__init__(url)
        self.pack_baud = pack_baud
        self.bauds_tried: list[int] = []

    async def set_baudrate(self, baudrate: int) -> None:
        self.bauds_tried.append(baudrate)
        await super().set_baudrate(baudrate)

    async def exchange(self, request: bytes, *, timeout: float | None = None) -> Frame:
        if self.baudrate != self.pack_baud:
            raise LinkTimeout(f"nothing understood at {self.baudrate} baud")
        return await super().exchange(request, timeout=timeout)


@asynccontextmanager
async def gated(baud: int, **options: Any) -> AsyncGenerator[tuple[Simulator, BaudGatedLink]]:
    async with Simulator(SimulatorConfig(speed=0, paced=False, baud=baud, **options)) as sim:
        link = BaudGatedLink(sim.url, baud)
        try:
            yield sim, link
        finally:
            await link.close()


def assert_every_pack_read(result: DetectionResult, sim: Simulator) -> None:
    assert result.config.addresses == tuple(sim.addresses)
    assert list(result.state.packs) == sim.addresses
    for address, reading in result.state.packs.items():
        assert reading.online, reading.error
        assert reading.analog is not None
        assert reading.analog.cell_voltages_mv == sim.cluster.pack(address).analog(address).cell_voltages_mv


def bauds_until(baud: int) -> list[int]:
    return list(DEFAULT_BAUDS[: DEFAULT_BAUDS.index(baud) + 1])


BAUDS = [9600, 115200]


@pytest.mark.parametrize("baud", BAUDS)
@pytest.mark.parametrize(
    ("packs", "strategy"),
    [
        # A lone pack could be a bus member whose master role means nothing: the bus scan decides (and must not
        # count ADR 00, PACE's alias of the connected pack, as a second pack).
        (1, Strategy.BUS),
        (2, Strategy.BROADCAST),
        (16, Strategy.BROADCAST),
    ],
)
async def test_pace25_rs232_master(baud: int, packs: int, strategy: Strategy) -> None:
    stages: list[DetectProgress] = []
    async with gated(baud, packs=packs) as (sim, link):
        result = await detect(link, progress=stages.append)
    config = result.config
    assert link.bauds_tried == bauds_until(baud)
    assert config.baudrate == baud
    assert config.protocol is ProtocolName.PACE25
    assert (config.ver, config.cid1) == (0x25, 0x46)
    assert config.master_address == 1
    assert config.local_address == 1
    assert config.strategy is strategy
    assert_every_pack_read(result, sim)
    assert result.identity.model == sim.cluster.pack(1).model
    # Each stage carries what is known so far, for the config flow to put into words.
    pace = ProtocolName.PACE25
    assert stages == [
        *(DetectProgress(stage=Stage.BAUD, baudrate=b) for b in bauds_until(baud)),
        DetectProgress(stage=Stage.PROTOCOL, baudrate=baud, protocol=pace),
        DetectProgress(stage=Stage.PACK_ADDRESSES, baudrate=baud, protocol=pace),
        DetectProgress(stage=Stage.IDENTITY, baudrate=baud, protocol=pace, packs=packs),
        DetectProgress(stage=Stage.FIRST_READ, baudrate=baud, protocol=pace, packs=packs),
    ]
    assert [str(step) for step in stages[-4:]] == ["protocol pace25", "pack addresses", "identity", "first read"]


@pytest.mark.parametrize("baud", BAUDS)
async def test_pace25_rs485(baud: int) -> None:
    async with gated(baud, packs=3, link="rs485") as (sim, link):
        result = await detect(link)
    assert result.config.protocol is ProtocolName.PACE25
    assert result.config.baudrate == baud
    assert_every_pack_read(result, sim)


@pytest.mark.parametrize("baud", BAUDS)
@pytest.mark.parametrize(
    ("protocol", "link_mode", "packs", "cid1"),
    [
        # Pylon on the RS232 master answers the PACE probe at ADR 00 with RTN 01 (VER error): a refusal must not
        # end the search at this baud (regression), the VER 0x20 probes come next.
        ("pylon", "rs232-master", 1, 0x46),
        ("pylon", "rs232-master", 2, 0x46),
        ("pylon", "rs485", 2, 0x46),
        # Seplos packs 0 and 1 refuse the PACE probes at ADR 01/00 the same way.
        ("seplos", "rs485", 1, 0x46),
        ("seplos", "rs485", 2, 0x46),
        ("eg4", "rs485", 2, 0x4A),
    ],
)
async def test_family20(baud: int, protocol: str, link_mode: str, packs: int, cid1: int) -> None:
    async with gated(baud, protocol=protocol, link=link_mode, packs=packs) as (sim, link):
        result = await detect(link)
    config = result.config
    assert config.protocol == protocol
    assert (config.ver, config.cid1) == (0x20, cid1)
    assert config.baudrate == baud
    assert config.master_address == sim.addresses[0]
    assert_every_pack_read(result, sim)


async def test_sleeping_pack_is_woken_by_the_first_probe() -> None:
    """A pack asleep swallows the first frame (docs/protocol.md §6 item 2); the first probe is sent twice."""
    async with gated(9600, packs=2, faults="asleep=300") as (sim, link):
        result = await detect(link)
    assert result.config.strategy is Strategy.BROADCAST
    assert_every_pack_read(result, sim)


@asynccontextmanager
async def silent_link() -> AsyncGenerator[SerialLink]:
    """A link on which a server accepts frames and never answers."""
    async with Simulator(SimulatorConfig(packs=1, speed=0, paced=False, faults="drop=1")) as sim:
        link = SerialLink(sim.url)
        try:
            yield link
        finally:
            await link.close()


async def test_no_battery() -> None:
    stages: list[str] = []
    async with silent_link() as link:
        with pytest.raises(NoBatteryFoundError):
            await detect(link, progress=lambda step: stages.append(str(step)))
    # The ASCII probes at each baud rate, then the Modbus ones (PACE Modbus, Seplos V3).
    assert stages == [f"baud {b}" for b in DEFAULT_BAUDS] + [f"baud {b} (Modbus)" for b in MODBUS_BAUDS]


async def test_no_battery_within_the_time_bound() -> None:
    """The overall bound ends detection with NoBatteryFoundError (not a bare TimeoutError) when nothing answered."""
    stages: list[str] = []
    async with silent_link() as link:
        with pytest.raises(NoBatteryFoundError, match=r"within 0\.3 s"):
            await detect(link, progress=lambda step: stages.append(str(step)), timeout=0.3)
    # Cut short: 7 probes of 0.15 s at the first baud do not fit in 0.3 s.
    assert stages == ["baud 9600"]


async def test_link_that_cannot_open_is_a_link_error() -> None:
    async with Simulator(SimulatorConfig(packs=1, speed=0, paced=False)) as sim:
        url = sim.url
    link = SerialLink(url, connect_timeout=2.0)
    try:
        with pytest.raises(LinkError):
            await detect(link)
    finally:
        await link.close()

"""Detection paths beyond test_detect.py: relaying masters, masters that do not broadcast or count, answers that
no family understands, refusals during the bus scan, and a stage that hangs after a battery answered."""

import asyncio
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from custom_components.lfp_bms.bms import detect as detect_module
from custom_components.lfp_bms.bms.detect import NoBatteryFoundError, detect
from custom_components.lfp_bms.bms.driver import ProtocolName, Strategy
from custom_components.lfp_bms.bms.frame import Frame, Rtn, RtnError, decode_frame, encode_frame
from custom_components.lfp_bms.bms.modbus.codec import ModbusRequest
from custom_components.lfp_bms.bms.simulator import LinkMode, Simulator, SimulatorConfig
from custom_components.lfp_bms.bms.transport import LinkTimeout, SerialLink

#: Decides what happens to a request before it reaches the simulator: None passes it on.
type Interceptor = Callable[[Frame], BaseException | None]


@pytest.fixture(autouse=True)
def _short_probe_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detect_module, "PROBE_TIMEOUT", 0.15)
    monkeypatch.setattr(detect_module, "SCAN_TIMEOUT", 0.15)


class InterceptedLink(SerialLink):
    """A link to the simulator on which some requests are lost or refused before they reach a pack."""

    def __init__(self, url: str, intercept: Interceptor) -> None:
        super().__init__(url)
        self.intercept = intercept

    async def exchange(self, request: bytes, *, timeout: float | None = None) -> Frame:
        if (error := self.intercept(decode_frame(request))) is not None:
            raise error
        return await super().exchange(request, timeout=timeout)


@asynccontextmanager
async def intercepted(intercept: Interceptor, **options: Any) -> AsyncGenerator[tuple[Simulator, SerialLink]]:
    async with Simulator(SimulatorConfig(speed=0, paced=False, **options)) as sim:
        link = InterceptedLink(sim.url, intercept)
        try:
            yield sim, link
        finally:
            await link.close()


def passes(request: Frame) -> BaseException | None:
    return None


def cid2(request: Frame) -> int:
    # In a request the RTN position holds the command.
    return request.rtn


ALL_PACKS_INFO = b"\xff"


async def test_seplos_rs232_master_relays_its_slaves() -> None:
    """Seplos V2 on RS232: the slaves refuse their own ADR (RTN 90) but the master relays INFO = slave."""
    async with intercepted(passes, protocol="seplos", link="rs232-master", packs=3) as (sim, link):
        result = await detect(link)
    assert result.config.strategy is Strategy.RELAY
    assert result.config.addresses == tuple(sim.addresses)
    assert all(reading.online for reading in result.state.packs.values())


async def test_eg4_console_port_cannot_relay() -> None:
    """An EG4 request has no INFO to name a pack, so the master on the console port is all that can be read."""
    async with intercepted(passes, protocol="eg4", link="rs232-master", packs=3) as (sim, link):
        result = await detect(link)
    assert result.config.strategy is Strategy.BUS
    assert result.config.addresses == (sim.addresses[0],)


async def test_pace_master_that_counts_but_does_not_broadcast_is_read_by_relay() -> None:
    def no_broadcast(request: Frame) -> BaseException | None:
        return LinkTimeout("no broadcast") if request.info == ALL_PACKS_INFO else None

    async with intercepted(no_broadcast, packs=3) as (sim, link):
        result = await detect(link)
    assert result.config.strategy is Strategy.RELAY
    assert result.config.addresses == tuple(sim.addresses)
    assert [reading.online for reading in result.state.packs.values()] == [True, True, True]


async def test_pace_master_without_pack_count_still_broadcasts() -> None:
    def no_pack_count(request: Frame) -> BaseException | None:
        return RtnError(Rtn.CID2_INVALID) if cid2(request) == 0x90 else None

    async with intercepted(no_pack_count, packs=2) as (sim, link):
        result = await detect(link)
    assert result.config.strategy is Strategy.BROADCAST
    assert result.config.addresses == tuple(sim.addresses)


async def test_pack_that_refuses_with_another_code_is_still_found() -> None:
    """During the bus scan any refusal but RTN 90 (ADR error) proves a pack at that address."""

    def pack_5_refuses(request: Frame) -> BaseException | None:
        return RtnError(Rtn.CID2_INVALID) if request.adr == 5 and cid2(request) == 0x42 else None

    async with intercepted(pack_5_refuses, protocol="seplos", link="rs485", packs=2) as (sim, link):
        result = await detect(link)
    assert result.config.strategy is Strategy.BUS
    assert result.config.addresses == (*sim.addresses, 5)
    assert result.state.packs[5].error == "RtnError"
    assert [result.state.packs[a].online for a in sim.addresses] == [True, True]


class NonsenseLink(SerialLink):
    """Something on the line answers every request with a well-formed frame no family decodes."""

    def __init__(self) -> None:
        super().__init__("socket://127.0.0.1:9")
        self.requests = 0

    async def set_baudrate(self, baudrate: int) -> None:
        pass

    async def exchange(self, request: bytes, *, timeout: float | None = None) -> Frame:
        self.requests += 1
        sent = decode_frame(request)
        return decode_frame(encode_frame(sent.ver, sent.adr, sent.cid1, Rtn.OK, b"\x00\x01"))

    async def modbus_exchange(self, request: ModbusRequest, *, timeout: float | None = None) -> bytes:
        raise LinkTimeout("no Modbus slave on this line")  # the Modbus probes that follow the ASCII ones


async def test_answers_no_family_understands_are_no_battery() -> None:
    link = NonsenseLink()
    with pytest.raises(NoBatteryFoundError, match="no battery answered at 9600 baud"):
        await detect(link, bauds=[9600])
    # Every probe was tried (the first one twice) before giving up.
    assert link.requests == len(detect_module.PROBES) + 1


async def test_a_stage_that_hangs_after_a_battery_answered_is_a_timeout() -> None:
    hang = asyncio.Event()

    class HangingIdentity(InterceptedLink):
        async def exchange(self, request: bytes, *, timeout: float | None = None) -> Frame:
            if cid2(decode_frame(request)) == 0xC1:
                await hang.wait()  # never set: the identity stage hangs
            return await super().exchange(request, timeout=timeout)

    stages: list[str] = []
    async with Simulator(SimulatorConfig(speed=0, paced=False, packs=2)) as sim:
        link = HangingIdentity(sim.url, passes)
        try:
            # A battery answered, so this is a bare timeout, not NoBatteryFoundError.
            with pytest.raises(TimeoutError):
                await detect(link, progress=lambda step: stages.append(str(step)), timeout=1.0)
        finally:
            await link.close()
    assert stages[-1] == "identity"


async def test_seplos_bus_keeps_pack_zero() -> None:
    """A Seplos RS485 bus numbers a real pack 0 (DIP 0): it is kept even when another address answered first."""
    sim = Simulator(SimulatorConfig(protocol=ProtocolName.SEPLOS, link=LinkMode.RS485, packs=3, speed=0, paced=False))
    await sim.start()
    link = SerialLink(sim.url)
    try:
        result = await detect(link, bauds=(9600,))
    finally:
        await link.close()
        await sim.stop()
    assert result.config.addresses == (0, 1, 2)
    assert all(reading.online for reading in result.state.packs.values())

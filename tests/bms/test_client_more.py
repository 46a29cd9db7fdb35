"""ClusterClient beyond test_client.py: retries within a poll, replies short of packs, re-addressed relay records,
identity and write permission by strategy, and the stored form of a LinkConfig."""

from collections.abc import AsyncGenerator, Sequence

import pytest

from custom_components.lfp_bms.bms.client import RETRIES_PER_POLL, ClusterClient, LinkConfig, NotWritableError
from custom_components.lfp_bms.bms.driver import ProtocolName, Strategy
from custom_components.lfp_bms.bms.frame import Frame, FrameError, Rtn, RtnError, decode_frame
from custom_components.lfp_bms.bms.models import PackIdentity
from custom_components.lfp_bms.bms.pace import PaceDriver
from custom_components.lfp_bms.bms.simulator import Simulator, SimulatorConfig
from custom_components.lfp_bms.bms.transport import SerialLink


def pace_config(strategy: Strategy, addresses: tuple[int, ...], *, local: int = 1) -> LinkConfig:
    return LinkConfig(
        protocol=ProtocolName.PACE25,
        ver=0x25,
        cid1=0x46,
        baudrate=9600,
        master_address=addresses[0],
        addresses=addresses,
        strategy=strategy,
        local_address=local,
    )


class FlakyLink(SerialLink):
    """Replies to analog requests arrive garbled as `garbled` says, one entry per reply in order (then intact);
    `refuse` CID2s are refused by the BMS."""

    def __init__(self, url: str, *, garbled: Sequence[bool] = (), refuse: frozenset[int] = frozenset()) -> None:
        super().__init__(url)
        self.garbled = list(garbled)
        self.refuse = refuse
        self.sent: list[int] = []

    async def exchange(self, request: bytes, *, timeout: float | None = None) -> Frame:
        command = decode_frame(request).rtn  # the CID2 position of a request
        self.sent.append(command)
        if command in self.refuse:
            raise RtnError(Rtn.CID2_INVALID)
        reply = await super().exchange(request, timeout=timeout)
        if command == 0x42 and self.garbled and self.garbled.pop(0):
            raise FrameError("checksum mismatch")
        return reply


@pytest.fixture
async def sim3() -> AsyncGenerator[Simulator]:
    async with Simulator(SimulatorConfig(packs=3, speed=0, paced=False, seed=5)) as sim:
        yield sim


def client_for(sim: Simulator, config: LinkConfig, garbled: Sequence[bool] = ()) -> tuple[FlakyLink, ClusterClient]:
    link = FlakyLink(sim.url, garbled=garbled)
    return link, ClusterClient(link, PaceDriver(), config)


async def test_a_garbled_reply_is_asked_for_again(sim3: Simulator) -> None:
    link, client = client_for(sim3, pace_config(Strategy.RELAY, (1, 2, 3)), garbled=[True])
    try:
        state = await client.read_all()
    finally:
        await link.close()
    assert [reading.online for reading in state.packs.values()] == [True, True, True]
    # Three analog and three status requests, plus the one repeat.
    assert link.sent == [0x42, 0x42, 0x44, 0x42, 0x44, 0x42, 0x44]


async def test_an_exchange_is_repeated_once_only(sim3: Simulator) -> None:
    link, client = client_for(sim3, pace_config(Strategy.RELAY, (1, 2, 3)), garbled=[True, True])
    try:
        state = await client.read_all()
    finally:
        await link.close()
    assert state.packs[1].error == "FrameError"
    assert state.packs[2].online
    assert state.packs[3].online


async def test_repeats_are_bounded_per_poll(sim3: Simulator) -> None:
    # Every pack's first analog reply is garbled: the first RETRIES_PER_POLL packs are repeated, the next is lost.
    pattern = [True, False] * RETRIES_PER_POLL + [True]
    config = pace_config(Strategy.RELAY, tuple(range(1, RETRIES_PER_POLL + 2)))
    link, client = client_for(sim3, config, garbled=pattern)
    try:
        state = await client.read_all()
        # The budget is per poll: the next poll starts with a fresh one.
        link.garbled = [True, False]
        again = await client.read_all()
    finally:
        await link.close()
    assert [reading.error for reading in state.packs.values()] == [None] * RETRIES_PER_POLL + ["FrameError"]
    assert all(reading.online for reading in again.packs.values())


async def test_relay_records_are_readdressed_to_the_pack_asked(sim3: Simulator) -> None:
    link, client = client_for(sim3, pace_config(Strategy.RELAY, (1, 2, 3)))
    try:
        state = await client.read_all()
    finally:
        await link.close()
    for address, reading in state.packs.items():
        assert reading.analog is not None
        assert reading.status is not None
        assert reading.analog.address == reading.status.address == address
        assert reading.analog.cell_voltages_mv == sim3.cluster.pack(address).analog(address).cell_voltages_mv


async def test_broadcast_short_of_an_expected_pack_marks_it_missing(sim3: Simulator) -> None:
    link, client = client_for(sim3, pace_config(Strategy.BROADCAST, (1, 2, 3, 4)))
    try:
        state = await client.read_all()
    finally:
        await link.close()
    assert [reading.online for reading in state.packs.values()] == [True, True, True, False]
    assert state.packs[4].error == "missing"
    assert state.summary.packs_online == 3


async def test_identity_only_from_the_directly_connected_pack(sim3: Simulator) -> None:
    link = FlakyLink(sim3.url)
    client = ClusterClient(link, PaceDriver(), pace_config(Strategy.RELAY, (1, 2, 3)))
    try:
        master = await client.read_identity(1)
        sent_before = len(link.sent)
        slave = await client.read_identity(2)
    finally:
        await link.close()
    assert master.model == sim3.cluster.pack(1).model
    assert slave == PackIdentity()
    assert len(link.sent) == sent_before  # a slave is not even asked


async def test_identity_refused_outright_is_empty(sim3: Simulator) -> None:
    link = FlakyLink(sim3.url, refuse=frozenset({0xC1, 0xC2}))
    client = ClusterClient(link, PaceDriver(), pace_config(Strategy.RELAY, (1, 2, 3)))
    try:
        identity = await client.read_identity(1)
    finally:
        await link.close()
    assert identity.model is None
    assert identity.serial is None


def test_writes_only_to_directly_connected_packs() -> None:
    relay = ClusterClient(FlakyLink("socket://127.0.0.1:9"), PaceDriver(), pace_config(Strategy.RELAY, (1, 2), local=0))
    # PbmsTools writes to the RS232 master with ADR 00 (tests/data/captures.md A.2).
    assert relay.check_writable(1) == 0
    with pytest.raises(NotWritableError) as refused:
        relay.check_writable(2)
    assert refused.value.address == 2
    assert "pack 2" in str(refused.value)
    bus = ClusterClient(FlakyLink("socket://127.0.0.1:9"), PaceDriver(), pace_config(Strategy.BUS, (1, 2)))
    assert [bus.check_writable(address) for address in (1, 2)] == [1, 2]


def test_link_config_round_trips_through_its_stored_form() -> None:
    config = pace_config(Strategy.RELAY, (1, 2, 3), local=0)
    stored = config.as_dict()
    assert stored["strategy"] == "relay"
    assert stored["addresses"] == [1, 2, 3]
    assert LinkConfig.from_dict({**stored, "unknown": 1}) == config


async def test_pack_asked_at_adr_0_is_reported_under_the_address_asked() -> None:
    """ADR 00 reaches whoever is connected (tests/data/captures.md A.2); its records carry its own address, and are
    filed under the configured one so that the reading's address and its records agree."""
    async with Simulator(SimulatorConfig(packs=1, speed=0, paced=False)) as sim:
        link, client = client_for(sim, pace_config(Strategy.BUS, (0,), local=0))
        try:
            state = await client.read_all()
        finally:
            await link.close()
        truth = sim.cluster.pack(1).analog(1)
    reading = state.packs[0]
    assert reading.online
    assert reading.analog is not None
    assert reading.status is not None
    assert reading.analog.address == reading.status.address == 0
    assert reading.analog.cell_voltages_mv == truth.cell_voltages_mv

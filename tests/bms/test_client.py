"""ClusterClient against the simulator: every strategy, a pack going offline, a silent link, the cluster summary."""

from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest

from custom_components.lfp_bms.bms.client import RETRIES_PER_POLL, ClusterClient, LinkConfig
from custom_components.lfp_bms.bms.driver import ALL_PACKS, Exchange, ProtocolName, Strategy
from custom_components.lfp_bms.bms.frame import BmsError, Frame, FrameError, RtnError, decode_frame
from custom_components.lfp_bms.bms.models import ClusterState, OperatingState, PackAnalog
from custom_components.lfp_bms.bms.pace import Cid2, PaceDriver
from custom_components.lfp_bms.bms.simulator import ConstantProfile, Simulator, SimulatorConfig
from custom_components.lfp_bms.bms.transport import LinkError, LinkTimeout, SerialLink

#: Short enough that a silent pack does not slow the suite; the unpaced simulator answers in microseconds.
REPLY_TIMEOUT = 0.3


@asynccontextmanager
async def cluster(timeout: float = REPLY_TIMEOUT, **options: Any) -> AsyncGenerator[tuple[Simulator, SerialLink]]:
    async with Simulator(SimulatorConfig(speed=0, paced=False, seed=7, **options)) as sim:
        link = SerialLink(sim.url, timeout=timeout)
        try:
            yield sim, link
        finally:
            await link.close()


def pace_config(addresses: Sequence[int], strategy: Strategy) -> LinkConfig:
    return LinkConfig(
        protocol=ProtocolName.PACE25,
        ver=0x25,
        cid1=0x46,
        baudrate=9600,
        master_address=1,
        addresses=tuple(addresses),
        strategy=strategy,
        local_address=1,
    )


def client_for(link: Exchange, sim: Simulator, strategy: Strategy) -> ClusterClient:
    return ClusterClient(link, PaceDriver(), pace_config(sim.addresses, strategy))


def assert_pack_matches(state: ClusterState, sim: Simulator, address: int) -> None:
    """The reading of `address` carries that pack's own values (the simulator's ground truth)."""
    reading = state.packs[address]
    assert reading.online, reading.error
    assert reading.analog is not None
    assert reading.status is not None
    truth = sim.cluster.pack(address).analog(address)
    assert reading.analog.address == address
    assert reading.status.address == address
    assert reading.analog.cell_voltages_mv == truth.cell_voltages_mv
    assert reading.analog.voltage_v == pytest.approx(truth.voltage_v, abs=0.001)
    assert reading.analog.current_a == pytest.approx(truth.current_a, abs=0.01)
    assert reading.analog.remaining_ah == pytest.approx(truth.remaining_ah, abs=0.01)


MODES = [
    pytest.param("rs232-master", Strategy.BROADCAST, id="broadcast"),
    pytest.param("rs232-master", Strategy.RELAY, id="relay"),
    pytest.param("rs485", Strategy.BUS, id="bus"),
]


@pytest.mark.parametrize(("link_mode", "strategy"), MODES)
async def test_read_all(link_mode: str, strategy: Strategy) -> None:
    async with cluster(packs=4, link=link_mode, profile=ConstantProfile(-30.0)) as (sim, link):
        sim.advance(600)  # packs drift apart, so a record landing on the wrong address would show
        state = await client_for(link, sim, strategy).read_all()
    assert list(state.packs) == [1, 2, 3, 4]
    for address in sim.addresses:
        assert_pack_matches(state, sim, address)
    assert state.summary.packs_online == 4


@pytest.mark.parametrize(("link_mode", "strategy"), MODES)
async def test_invert_current_applies_where_the_data_enters(link_mode: str, strategy: Strategy) -> None:
    """With invert_current a charging cluster reads as discharging everywhere the current is used: the packs'
    current and power, their operating state and the summary. The BMS's own flags stay as it sent them; an idle
    pack stays at +0.0."""
    async with cluster(packs=3, link=link_mode, profile=ConstantProfile(30.0)) as (sim, link):
        sim.advance(60)
        assert sim.cluster.pack(3).command_mos(charge=True, on=False)  # pack 3 idle
        sim.advance(10)
        config = pace_config(sim.addresses, strategy)
        plain = await ClusterClient(link, PaceDriver(), config).read_all()
        inverted = await ClusterClient(link, PaceDriver(), config, invert_current=True).read_all()
    for address in (1, 2):
        before, after = plain.packs[address], inverted.packs[address]
        assert before.analog is not None
        assert after.analog is not None
        assert before.analog.current_a > 1
        assert after.analog.current_a == -before.analog.current_a
        assert after.analog.power_w == -before.analog.power_w
        assert (before.operating_state, after.operating_state) == (OperatingState.CHARGING, OperatingState.DISCHARGING)
        assert after.status == before.status
    idle = inverted.packs[3].analog
    assert idle is not None
    assert idle.current_a == 0.0
    assert str(idle.current_a) == "0.0"
    assert inverted.summary.current_a == -plain.summary.current_a
    assert inverted.summary.power_w == -plain.summary.power_w


@pytest.mark.parametrize(
    ("link_mode", "strategy", "error"),
    [
        # Through the master an offline slave is an all-zero record; on the bus it is silence.
        pytest.param("rs232-master", Strategy.BROADCAST, "absent", id="broadcast"),
        pytest.param("rs232-master", Strategy.RELAY, "absent", id="relay"),
        pytest.param("rs485", Strategy.BUS, "LinkTimeout", id="bus"),
    ],
)
async def test_one_pack_offline(link_mode: str, strategy: Strategy, error: str) -> None:
    async with cluster(packs=4, link=link_mode) as (sim, link):
        sim.cluster.set_online(3, False)
        state = await client_for(link, sim, strategy).read_all()
    offline = state.packs[3]
    assert offline.error == error
    assert not offline.online
    for address in (1, 2, 4):
        assert_pack_matches(state, sim, address)
    assert state.summary.packs_online == 3


async def test_offline_pack_from_the_fault_plan() -> None:
    """The simulator's scheduled outage (`offline=ADDR@START+DURATION`) is seen while it lasts."""
    async with cluster(packs=3, link="rs485", faults="offline=2@10+60") as (sim, link):
        client = client_for(link, sim, Strategy.BUS)
        before = await client.read_all()
        sim.advance(20)
        during = await client.read_all()
        sim.advance(60)
        after = await client.read_all()
    assert before.packs[2].online
    assert during.packs[2].error == "LinkTimeout"
    assert during.packs[1].online
    assert during.packs[3].online
    assert after.packs[2].online


@pytest.mark.parametrize(
    ("link_mode", "strategy"),
    [
        pytest.param("rs232-master", Strategy.BROADCAST, id="broadcast"),
        pytest.param("rs232-master", Strategy.RELAY, id="relay"),
        pytest.param("rs485", Strategy.BUS, id="bus"),
    ],
)
async def test_all_silent_raises_the_transport_error(link_mode: str, strategy: Strategy) -> None:
    async with cluster(packs=3, link=link_mode) as (sim, link):
        for address in sim.addresses:
            sim.cluster.set_online(address, False)
        with pytest.raises(LinkTimeout):
            await client_for(link, sim, strategy).read_all()


class FailingStatus(Exchange):
    """Passes exchanges through, but the 0x44 request for one pack times out (a reply lost on the wire)."""

    def __init__(self, link: Exchange, address: int) -> None:
        self.link = link
        self.address = address

    async def exchange(self, request: bytes, *, timeout: float | None = None) -> Frame:
        sent = decode_frame(request)
        if sent.cid2 == 0x44 and sent.info == bytes([self.address]):
            raise LinkTimeout("status reply lost")
        return await self.link.exchange(request, timeout=timeout)


@pytest.mark.parametrize(
    ("link_mode", "strategy"),
    [pytest.param("rs232-master", Strategy.RELAY, id="relay"), pytest.param("rs485", Strategy.BUS, id="bus")],
)
async def test_status_lost_for_one_pack_does_not_shift_the_others(link_mode: str, strategy: Strategy) -> None:
    """Regression: the analog record of a pack whose status failed was kept, so every later pack got its
    neighbour's values (records are paired with addresses by position)."""
    async with cluster(packs=4, link=link_mode, profile=ConstantProfile(-30.0)) as (sim, link):
        sim.advance(600)
        state = await client_for(FailingStatus(link, 2), sim, strategy).read_all()
    assert state.packs[2].error == "LinkTimeout"
    for address in (1, 3, 4):
        assert_pack_matches(state, sim, address)


async def test_summary_is_capacity_weighted() -> None:
    """Packs of 100/50/200 Ah at different SOC: the cluster SOC weights each by its full capacity."""
    async with cluster(
        packs=3, link="rs232-master", design_ah=[100.0, 50.0, 200.0], profile=ConstantProfile(-40.0)
    ) as (sim, link):
        # Pack 2 sits out an hour of discharge, so its SOC differs from the others'.
        sim.cluster.set_online(2, False)
        sim.advance(3600)
        sim.cluster.set_online(2, True)
        state = await client_for(link, sim, Strategy.BROADCAST).read_all()
    truths = [sim.cluster.pack(a).analog(a) for a in sim.addresses]
    full = sum(t.full_ah for t in truths)
    # PACE sends no SOC in the standard record: each pack's SOC is remaining/full.
    socs = [t.remaining_ah / t.full_ah * 100 for t in truths]
    weighted = sum(soc * t.full_ah for soc, t in zip(socs, truths, strict=True)) / full
    summary = state.summary
    assert summary.packs_online == 3
    assert summary.soc_pct == pytest.approx(weighted, abs=0.1)
    assert abs(weighted - sum(socs) / len(socs)) > 1  # the weighting matters for these packs
    assert summary.full_ah == pytest.approx(full, abs=0.02)
    assert summary.remaining_ah == pytest.approx(sum(t.remaining_ah for t in truths), abs=0.02)
    assert summary.current_a == pytest.approx(sum(t.current_a for t in truths), abs=0.03)
    assert summary.voltage_v == pytest.approx(sum(t.voltage_v for t in truths) / 3, abs=0.001)
    lowest = min((mv, t.address) for t in truths for mv in t.cell_voltages_mv)
    highest = max((mv, t.address) for t in truths for mv in t.cell_voltages_mv)
    assert summary.lowest_cell is not None
    assert summary.highest_cell is not None
    assert (summary.lowest_cell.mv, summary.highest_cell.mv) == (lowest[0], highest[0])
    assert summary.cell_spread_mv == highest[0] - lowest[0]


async def test_summary_leaves_out_offline_packs() -> None:
    async with cluster(packs=3, link="rs232-master", design_ah=[100.0, 50.0, 200.0]) as (sim, link):
        sim.cluster.set_online(3, False)
        state = await client_for(link, sim, Strategy.BROADCAST).read_all()
    truths = [sim.cluster.pack(a).analog(a) for a in (1, 2)]
    assert state.summary.packs_online == 2
    assert state.summary.full_ah == pytest.approx(sum(t.full_ah for t in truths), abs=0.02)


def last_valid_analogs(sim: Simulator) -> list[PackAnalog]:
    """The records of the newest checksum-valid broadcast analog reply the simulator sent."""
    for sent in reversed(sim.sent):
        if decode_frame(sent.request).cid2 == Cid2.ANALOG:
            return PaceDriver().decode_analog(decode_frame(sent.reply), ALL_PACKS)
    raise AssertionError("no valid analog reply was sent")


async def test_retry_rescues_polls_with_a_corrupted_reply() -> None:
    """Half of all replies corrupted (seeded): polls that met a corrupted reply still succeed after a retry, with
    values from the valid reply only; a poll fails only once its retries are used up, and never asks more often."""
    rescued = failed = 0
    async with cluster(timeout=0.05, packs=2, link="rs232-master", faults="corrupt=0.5") as (sim, link):
        client = client_for(link, sim, Strategy.BROADCAST)
        for _ in range(16):
            sim.advance(10)
            before = link.stats.snapshot()
            try:
                state = await client.read_all()
            except LinkTimeout:
                failed += 1
                delta = {key: link.stats.snapshot()[key] - value for key, value in before.items()}
                # Out of retries: either one exchange failed twice or the poll's retries ran out.
                assert delta["timeouts"] in (2, RETRIES_PER_POLL + 1), delta
                assert delta["requests"] <= 2 + RETRIES_PER_POLL, delta
                continue
            delta = {key: link.stats.snapshot()[key] - value for key, value in before.items()}
            # Every failed attempt (a corrupted reply, then silence until the timeout) was repeated exactly once.
            assert delta["checksum_errors"] == delta["timeouts"] <= RETRIES_PER_POLL, delta
            assert delta["requests"] == 2 + delta["timeouts"], delta
            rescued += delta["timeouts"] > 0
            for address, analog in zip(sim.addresses, last_valid_analogs(sim), strict=True):
                published = state.packs[address].analog
                assert published is not None
                assert (published.voltage_v, published.current_a, published.cell_voltages_mv) == (
                    analog.voltage_v,
                    analog.current_a,
                    analog.cell_voltages_mv,
                )
                assert_pack_matches(state, sim, address)
    assert sim.injector.counts["corrupt"] > 0
    assert rescued > 0  # without the retry each of these polls would have failed
    assert failed < 16


class Scripted(Exchange):
    """Raises the same error for every request and counts the requests."""

    def __init__(self, error: BmsError) -> None:
        self.error = error
        self.requests: list[bytes] = []

    async def exchange(self, request: bytes, *, timeout: float | None = None) -> Frame:
        self.requests.append(request)
        raise self.error


@pytest.mark.parametrize(
    ("error", "attempts"),
    [
        # The link is down (reopened after a backoff) or the BMS refused: asking again changes nothing.
        pytest.param(LinkError("down"), 1, id="link_error"),
        pytest.param(RtnError(0x09), 1, id="refused"),
        # Lost or garbled: asked once more.
        pytest.param(LinkTimeout("lost"), 2, id="timeout"),
        pytest.param(FrameError("garbled"), 2, id="frame_error"),
    ],
)
async def test_only_transient_failures_are_retried(error: BmsError, attempts: int) -> None:
    link = Scripted(error)
    config = pace_config((1, 2), Strategy.BROADCAST)
    with pytest.raises(type(error)):
        await ClusterClient(link, PaceDriver(), config).read_all()
    assert len(link.requests) == attempts
    assert len(set(link.requests)) == 1  # the retry repeats the same request


async def test_retries_per_poll_are_bounded_on_a_bus() -> None:
    """Every pack silent on an RS485 bus: each exchange is repeated at most once and the poll at most
    RETRIES_PER_POLL times, so the poll costs packs + RETRIES_PER_POLL timeouts, not twice as many."""
    link = Scripted(LinkTimeout("silent"))
    config = pace_config((1, 2, 3, 4), Strategy.BUS)
    client = ClusterClient(link, PaceDriver(), config)
    with pytest.raises(LinkTimeout):
        await client.read_all()
    assert len(link.requests) == 4 + RETRIES_PER_POLL
    with pytest.raises(LinkTimeout):
        await client.read_all()  # the allowance is per poll
    assert len(link.requests) == 2 * (4 + RETRIES_PER_POLL)

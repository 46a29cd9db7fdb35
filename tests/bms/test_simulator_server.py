"""Serving: line-rate pacing, fault injection (seeded), the log of published replies, clean shutdown, pty, CLI."""

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from custom_components.lfp_bms.bms import pace
from custom_components.lfp_bms.bms.driver import ALL_PACKS
from custom_components.lfp_bms.bms.frame import BmsError, decode_frame, split_frames
from custom_components.lfp_bms.bms.simulator import (
    FaultKind,
    FaultPlan,
    FaultSpecError,
    Outage,
    Simulator,
    SimulatorConfig,
    cli,
)
from custom_components.lfp_bms.bms.transport import LinkError, LinkTimeout, SerialLink

DRIVER = pace.PaceDriver()


@asynccontextmanager
async def serve(timeout: float = 0.3, **options: object) -> AsyncIterator[tuple[Simulator, SerialLink]]:
    options.setdefault("speed", 0)
    options.setdefault("paced", False)
    sim = Simulator(SimulatorConfig(**options))  # type: ignore[arg-type]
    await sim.start()
    link = SerialLink(sim.url, timeout=timeout, reconnect_backoff=(0.0, 0.0))
    try:
        yield sim, link
    finally:
        await link.close()
        await sim.stop()


# --- line rate ----------------------------------------------------------------------------------------------------


async def test_sixteen_pack_broadcast_takes_the_wire_time_at_9600_baud() -> None:
    async with serve(timeout=6.0, packs=16, paced=True, baud=9600, turnaround_ms=40) as (sim, link):
        frame = await link.exchange(DRIVER.analog_request(1, ALL_PACKS))
    stats = sim.stats
    assert stats.last_reply_bytes == len(frame.raw) == 18 + 2 * (2 + 16 * 59)
    assert stats.bytes_out == len(frame.raw)
    assert stats.bytes_in == len(DRIVER.analog_request(1, ALL_PACKS))
    expected = len(frame.raw) * 10 / 9600
    assert stats.last_wire_seconds == pytest.approx(expected)
    # The simulator's own measurement of how long it spent putting the bytes out (timer resolution slack).
    assert stats.last_send_seconds >= expected - 0.005


async def test_unpaced_replies_report_no_wire_time() -> None:
    async with serve(packs=2, paced=True, baud=0) as (sim, link):
        frame = await link.exchange(DRIVER.analog_request(1, ALL_PACKS))
    assert sim.stats.bytes_out == len(frame.raw)
    assert sim.stats.wire_seconds_out == 0.0


# --- faults -------------------------------------------------------------------------------------------------------


def test_fault_grammar() -> None:
    plan = FaultPlan.parse(
        "corrupt=0.01, drop=0.02,late=0.01,truncate=0.01,garbage=0.01,wrong_addr=0.01,"
        "close_every=300,offline=3@60+30,offline=2@10,asleep=300,late_ms=800"
    )
    assert plan.probabilities[FaultKind.DROP] == 0.02
    assert plan.probabilities[FaultKind.WRONG_ADDR] == 0.01
    assert plan.close_every_s == 300
    assert plan.outages == (Outage(3, 60, 30), Outage(2, 10, None))
    assert plan.asleep_after_s == 300
    assert plan.late_ms == 800
    assert FaultPlan.parse("").empty
    for bad in ("drop=2", "drop", "bogus=1", "offline=3", "offline=x@1", "drop=0.1,drop=0.2", "asleep=0"):
        with pytest.raises(FaultSpecError):
            FaultPlan.parse(bad)


@pytest.mark.parametrize("kind", ["drop", "corrupt", "truncate"])
async def test_lost_replies_time_out_and_are_never_logged(kind: str) -> None:
    async with serve(faults=f"{kind}=1") as (sim, link):
        with pytest.raises(LinkTimeout):
            await link.exchange(DRIVER.analog_request(1, 1))
    assert sim.injector.counts[kind] == 1
    assert not sim.sent
    if kind != "drop":
        assert sim.stats.bytes_out > 0
    if kind == "corrupt":
        assert link.stats.checksum_errors == 1


async def test_garbage_before_a_reply_is_skipped_by_the_client() -> None:
    async with serve(faults="garbage=1") as (sim, link):
        frame = await link.exchange(DRIVER.analog_request(1, 1))
    assert sim.stats.bytes_out > len(frame.raw)
    assert [entry.reply for entry in sim.sent] == [frame.raw]
    assert sim.sent[0].fault == "garbage"


async def test_wrong_address_reply() -> None:
    async with serve(packs=2, faults="wrong_addr=1") as (sim, link):
        with pytest.raises(LinkTimeout):
            await link.exchange(DRIVER.analog_request(1, 1))
    assert link.stats.wrong_address == 1
    assert decode_frame(sim.sent[0].reply).adr == 2


async def test_late_reply_arrives_after_the_timeout() -> None:
    async with serve(faults="late=1,late_ms=400", timeout=0.1) as (sim, link):
        with pytest.raises(LinkTimeout):
            await link.exchange(DRIVER.analog_request(1, 1))
        # The BMS is still busy with the late reply; the next exchange receives it (a classic mix-up).
        frame = await link.exchange(DRIVER.analog_request(1, 1), timeout=2.0)
    assert sim.sent[0].fault == "late"
    assert frame.raw == sim.sent[0].reply


async def test_connection_closed_by_the_simulator() -> None:
    async with serve(faults="close_every=100") as (sim, link):
        await link.exchange(DRIVER.analog_request(1, 1))
        sim.advance(150)
        with pytest.raises(LinkError):
            await link.exchange(DRIVER.analog_request(1, 1))
        # A new connection is served again.
        await link.close()
        await link.exchange(DRIVER.analog_request(1, 1))
    assert sim.injector.counts["close"] == 1


async def test_asleep_bms_wakes_on_traffic() -> None:
    async with serve(faults="asleep=300") as (sim, link):
        with pytest.raises(LinkTimeout):
            await link.exchange(DRIVER.analog_request(1, 1))  # first contact wakes it
        await link.exchange(DRIVER.analog_request(1, 1))
        sim.advance(200)
        await link.exchange(DRIVER.analog_request(1, 1))
        sim.advance(301)
        with pytest.raises(LinkTimeout):
            await link.exchange(DRIVER.analog_request(1, 1))
        await link.exchange(DRIVER.analog_request(1, 1))
    assert sim.injector.counts["asleep"] == 2


async def test_scheduled_offline_pack() -> None:
    async with serve(packs=3, faults="offline=2@0+100") as (sim, link):
        first = DRIVER.decode_analog(await link.exchange(DRIVER.analog_request(1, ALL_PACKS)), ALL_PACKS)
        sim.advance(150)
        later = DRIVER.decode_analog(await link.exchange(DRIVER.analog_request(1, ALL_PACKS)), ALL_PACKS)
    assert [r.absent for r in first] == [False, True, False]
    assert [r.absent for r in later] == [False, False, False]


async def _outcomes(seed: int) -> tuple[list[str], Simulator, list[bytes]]:
    results: list[str] = []
    received: list[bytes] = []
    spec = "corrupt=0.15,drop=0.15,truncate=0.1,garbage=0.15,wrong_addr=0.1"
    async with serve(seed=seed, faults=spec, timeout=0.05) as (sim, link):
        for _ in range(30):
            try:
                frame = await link.exchange(DRIVER.analog_request(1, 1))
            except BmsError as err:
                results.append(type(err).__name__)
            else:
                results.append("ok")
                received.append(frame.raw)
    return results, sim, received


async def test_faults_are_deterministic_and_only_logged_frames_reach_the_client() -> None:
    first, sim, received = await _outcomes(5)
    again, sim_again, _ = await _outcomes(5)
    assert first == again
    assert sim.injector.counts == sim_again.injector.counts
    assert {"ok", "LinkTimeout"} <= set(first)
    assert len(sim.injector.counts) >= 4
    published = {entry.reply for entry in sim.sent}
    assert set(received) <= published
    for entry in sim.sent:
        candidates, rest = split_frames(entry.reply)
        assert rest == b""
        assert [decode_frame(c).raw for c in candidates] == [entry.reply]


# --- lifecycle, pty, CLI -----------------------------------------------------------------------------------------


async def test_stop_leaves_no_tasks_behind() -> None:
    before = asyncio.all_tasks()
    sim = Simulator(SimulatorConfig(packs=2, speed=0, paced=True, baud=9600))
    await sim.start()
    link = SerialLink(sim.url, timeout=0.5)
    await link.exchange(DRIVER.analog_request(1, 1))
    # Stop with the client still connected and a request in flight.
    pending = asyncio.ensure_future(link.exchange(DRIVER.analog_request(1, ALL_PACKS)))
    await asyncio.sleep(0.05)
    await sim.stop()
    with pytest.raises(BmsError):
        await pending
    await link.close()
    assert asyncio.all_tasks() == before


async def test_pty_serving() -> None:
    sim = Simulator(SimulatorConfig(packs=1, speed=0, paced=False, pty=True))
    await sim.start()
    try:
        path = sim.pty_path
        assert path is not None
        assert path.startswith("/dev/")
        link = SerialLink(path, timeout=1.0)
        try:
            frame = await link.exchange(DRIVER.analog_request(1, 1))
        finally:
            await link.close()
    finally:
        await sim.stop()
    assert DRIVER.decode_analog(frame, 1)[0].cell_voltages_mv == sim.cluster.pack(1).cell_mv
    assert sim.pty_path is None


async def test_cli_arguments() -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(
        [
            "--packs",
            "3",
            "--protocol",
            "pylon",
            "--link",
            "rs485",
            "--cells",
            "16,15,16",
            "--tails",
            "14",
            "--faults",
            "drop=0.1",
            "--profile",
            "script:60:10;60:-5",
            "--no-pacing",
            "--speed",
            "10",
        ]
    )
    config = cli.config_from_args(args)
    assert config.packs == 3
    assert config.cells == [16, 15, 16]
    assert config.paced is False
    assert [spec.address for spec in config.pack_specs()] == [2, 3, 4]  # Pylon numbers from ADR 2
    assert config.profile is not None
    assert config.profile.current_at(90) == -5
    assert cli.parse_profile("sine:30").current_at(12 * 3600) == pytest.approx(30)
    with pytest.raises(SystemExit):
        parser.parse_args(["--faults", "bogus=1"])
    bad = parser.parse_args(["--packs", "17"])
    assert await cli.run(bad) == 2

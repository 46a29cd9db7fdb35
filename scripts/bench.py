"""Refresh time of a whole cluster against the wire limit, and what a refresh costs Home Assistant.

Run it through `scripts/bench [--json] [--quick]`; docs/performance.md explains the method and the figures.

The simulated cluster runs in a child process (`bench.py serve CONFIG`), so that its line-rate pacing shares
neither the event loop nor the CPU accounting with the side being measured. Physics is frozen there and moved
on by POLL_S before every timed refresh, so each refresh sees what a poll at the default interval would see.
"""

import argparse
import asyncio
import contextlib
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant

from custom_components.lfp_bms.bms.client import ClusterClient, LinkConfig
from custom_components.lfp_bms.bms.driver import ProtocolName, Strategy
from custom_components.lfp_bms.bms.frame import Frame
from custom_components.lfp_bms.bms.modbus.codec import ModbusRequest
from custom_components.lfp_bms.bms.pace import PaceDriver
from custom_components.lfp_bms.bms.registry import make_driver
from custom_components.lfp_bms.bms.simulator import (
    ConstantProfile,
    LinkMode,
    Simulator,
    SimulatorConfig,
)
from custom_components.lfp_bms.bms.transport import BITS_PER_BYTE, SerialLink

ROOT = Path(__file__).resolve().parent.parent
PACKS = (1, 8, 16)
BAUDS = (9600, 115200)
#: (strategy, how the host is wired): the master's RS232 link carries broadcast and relay, an RS485 bus only bus.
STRATEGIES = (
    (Strategy.BROADCAST, LinkMode.RS232_MASTER),
    (Strategy.RELAY, LinkMode.RS232_MASTER),
    (Strategy.BUS, LinkMode.RS485),
)
#: The simulator's default BMS turnaround (SimulatorConfig.turnaround_ms), used as is.
TURNAROUND_S = SimulatorConfig().turnaround_ms / 1000
#: A steady charge, so that values move between refreshes as they do on a working cluster.
CHARGE_A = 40.0
#: Physics moved on between two refreshes: the integration's default poll interval.
POLL_S = 10.0
#: Timed refreshes per case and path; the median is reported.
REPEATS = 3
#: Sampling period of the event-loop lag ticker.
TICK_S = 0.001
#: How long the idle event loop is sampled for the noise floor of the stall figure.
IDLE_S = 2.0


# --------------------------------------------------------------------------------------------------------------
# The simulator child process


async def serve(config_json: str) -> None:
    """Serve one simulated cluster; print its URL, answer `stats` and `advance S` lines on stdin, stop at EOF."""
    options = json.loads(config_json)
    sim = Simulator(SimulatorConfig(**options, profile=ConstantProfile(CHARGE_A)))
    await sim.start()
    print(json.dumps({"url": sim.url}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            command, _, argument = line.decode().strip().partition(" ")
            if command == "stats":
                print(json.dumps(asdict(sim.stats)), flush=True)
            elif command == "advance":
                sim.advance(float(argument))
                print("{}", flush=True)
    finally:
        await sim.stop()


class SimulatorProcess:
    """A simulated cluster in a child process (speed 0: physics moves only on `advance`)."""

    def __init__(self, packs: int, baud: int, link: LinkMode, protocol: ProtocolName = ProtocolName.PACE25) -> None:
        self.options = {
            "packs": packs,
            "baud": baud,
            "link": str(link),
            "speed": 0,
            "paced": True,
            "protocol": str(protocol),
        }
        self.url = ""
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> SimulatorProcess:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "serve",
            json.dumps(self.options),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self.url = (await self._line())["url"]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._proc is not None
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        await self._proc.wait()

    async def _line(self) -> dict[str, Any]:
        assert self._proc is not None
        assert self._proc.stdout is not None
        line = await self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the simulator process ended")
        result: dict[str, Any] = json.loads(line)
        return result

    async def _ask(self, command: str) -> dict[str, Any]:
        assert self._proc is not None
        assert self._proc.stdin is not None
        self._proc.stdin.write(command.encode() + b"\n")
        await self._proc.stdin.drain()
        return await self._line()

    async def stats(self) -> dict[str, Any]:
        """The simulator's wire counters (SimulatorStats)."""
        return await self._ask("stats")

    async def advance(self, seconds: float) -> None:
        """Move the physics on by `seconds`."""
        await self._ask(f"advance {seconds}")


# --------------------------------------------------------------------------------------------------------------
# Measuring one refresh


def link_config(packs: int, baud: int, strategy: Strategy) -> LinkConfig:
    """What detection stores for a PACE cluster read by `strategy` (ADR 1 is the master, or the first pack)."""
    return LinkConfig(
        protocol=ProtocolName.PACE25,
        ver=0x25,
        cid1=0x46,
        baudrate=baud,
        master_address=1,
        addresses=tuple(range(1, packs + 1)),
        strategy=strategy,
        local_address=1,
    )


class LinkMeter:
    """The link's own counters, plus the time spent inside `exchange()` (request written → reply decoded)."""

    def __init__(self, link: SerialLink, baud: int) -> None:
        self.link = link
        self.baud = baud
        self.exchange_s = 0.0
        inner = link.exchange

        async def exchange(request: bytes, *, timeout: float | None = None) -> Frame:
            started = time.perf_counter()
            try:
                return await inner(request, timeout=timeout)
            finally:
                self.exchange_s += time.perf_counter() - started

        link.exchange = exchange  # type: ignore[method-assign]
        inner_modbus = link.modbus_exchange

        async def modbus_exchange(request: ModbusRequest, *, timeout: float | None = None) -> bytes:
            started = time.perf_counter()
            try:
                return await inner_modbus(request, timeout=timeout)
            finally:
                self.exchange_s += time.perf_counter() - started

        link.modbus_exchange = modbus_exchange  # type: ignore[method-assign]

    def mark(self) -> tuple[int, int, int, float]:
        stats = self.link.stats
        return stats.requests, stats.bytes_out, stats.bytes_in, self.exchange_s

    def since(self, mark: tuple[int, int, int, float]) -> tuple[int, int, float, float]:
        """Exchanges, bytes both ways, the wire limit and the time inside exchange() since `mark`.

        The wire limit is what the line cannot beat: every byte at 10 bits per byte, plus one BMS turnaround
        per exchange.
        """
        requests, out, received, inside = mark
        stats = self.link.stats
        exchanges = stats.requests - requests
        wire_bytes = stats.bytes_out - out + stats.bytes_in - received
        limit = wire_bytes * BITS_PER_BYTE / self.baud + exchanges * TURNAROUND_S
        return exchanges, wire_bytes, limit, self.exchange_s - inside


@dataclass(slots=True, kw_only=True)
class Run:
    """One timed refresh."""

    wall_s: float
    wire_limit_s: float
    exchanges: int
    wire_bytes: int
    #: Wall time inside exchange(): the wire, the BMS turnaround and the simulator's own lateness.
    exchange_s: float
    #: CPU time of the event-loop thread (everything HA and the integration did on it).
    cpu_s: float
    gc_s: float
    listeners_cpu_s: float = 0.0
    writes: int = 0


class GcClock:
    """Thread CPU spent in the cyclic garbage collector (it runs wherever an allocation happens to trigger it)."""

    def __init__(self) -> None:
        self.spent_s = 0.0
        self._started = 0.0

    def __call__(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.spent_s += time.thread_time() - self._started

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


async def timed(meter: LinkMeter, refresh: Callable[[], Awaitable[object]]) -> Run:
    """Wall time, wire limit and loop-thread CPU of one refresh (no ticker runs meanwhile: it costs CPU too)."""
    mark = meter.mark()
    with GcClock() as collector:
        cpu0 = time.thread_time()
        t0 = time.perf_counter()
        await refresh()
        wall = time.perf_counter() - t0
        cpu = time.thread_time() - cpu0
    exchanges, wire_bytes, limit, inside = meter.since(mark)
    return Run(
        wall_s=wall,
        wire_limit_s=limit,
        exchanges=exchanges,
        wire_bytes=wire_bytes,
        exchange_s=inside,
        cpu_s=cpu,
        gc_s=collector.spent_s,
    )


@contextlib.asynccontextmanager
async def stall_ticker() -> AsyncIterator[list[float]]:
    """Sample the event-loop lag every TICK_S; yields a one-element list holding the largest lag seen."""
    loop = asyncio.get_running_loop()
    worst = [0.0]

    async def tick() -> None:
        while True:
            before = loop.time()
            await asyncio.sleep(TICK_S)
            worst[0] = max(worst[0], loop.time() - before - TICK_S)

    task = asyncio.create_task(tick())
    await asyncio.sleep(0)
    try:
        yield worst
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def median(values: list[float], scale: float = 1.0, digits: int = 4) -> float:
    return round(statistics.median(values) * scale, digits)


def summarise(runs: list[Run], max_stall_s: float) -> dict[str, Any]:
    refresh = statistics.median(r.wall_s for r in runs)
    limit = statistics.median(r.wire_limit_s for r in runs)
    return {
        "refresh_s": round(refresh, 4),
        "wire_limit_s": round(limit, 4),
        "ratio": round(refresh / limit, 3),
        "exchanges": runs[0].exchanges,
        "wire_bytes": runs[0].wire_bytes,
        # Where the time above the limit went: inside exchange() (the simulator answering late, which the
        # client cannot change) and outside it (the client and HA working between exchanges).
        "late_inside_exchanges_ms": median([r.exchange_s - r.wire_limit_s for r in runs], 1000, 1),
        "outside_exchanges_ms": median([r.wall_s - r.exchange_s for r in runs], 1000, 1),
        "cpu_ms": median([r.cpu_s for r in runs], 1000, 1),
        "gc_ms": median([r.gc_s for r in runs], 1000, 1),
        "max_loop_stall_ms": round(max_stall_s * 1000, 1),
    }


# --------------------------------------------------------------------------------------------------------------
# The two paths


async def bench_client(packs: int, baud: int, strategy: Strategy, link_mode: LinkMode) -> dict[str, Any]:
    """Full refreshes through the ClusterClient alone, on a SerialLink with the coordinator's defaults."""
    async with SimulatorProcess(packs, baud, link_mode) as sim:
        link = SerialLink(sim.url, baudrate=baud)
        meter = LinkMeter(link, baud)
        client = ClusterClient(link, PaceDriver(), link_config(packs, baud, strategy))
        try:
            state = await client.read_all()  # warm-up: connection, first decode
            assert state.summary.packs_online == packs, state
            runs = []
            for _ in range(REPEATS):
                await sim.advance(POLL_S)
                runs.append(await timed(meter, client.read_all))
            await sim.advance(POLL_S)
            async with stall_ticker() as worst:
                await client.read_all()
        finally:
            await link.close()
    return summarise(runs, worst[0])


#: The Modbus rows (client path): a PACE Modbus bus of 8 packs at 9600 and a Seplos V3 bus of 4 at 19200.
MODBUS_CASES = ((ProtocolName.PACE_MODBUS, 8, 9600), (ProtocolName.SEPLOS_V3, 4, 19200))


async def bench_modbus(protocol: ProtocolName, packs: int, baud: int) -> dict[str, Any]:
    """Full refreshes of a Modbus bus through the ClusterClient (every pack by its own slave id)."""
    async with SimulatorProcess(packs, baud, LinkMode.RS485, protocol) as sim:
        link = SerialLink(sim.url, baudrate=baud)
        meter = LinkMeter(link, baud)
        first = 0 if protocol is ProtocolName.SEPLOS_V3 else 1
        config = LinkConfig(
            protocol=protocol,
            ver=0,
            cid1=0,
            baudrate=baud,
            master_address=first,
            addresses=tuple(range(first, first + packs)),
            strategy=Strategy.BUS,
            local_address=first,
        )
        client = ClusterClient(link, make_driver(protocol), config)
        try:
            state = await client.read_all()
            assert state.summary.packs_online == packs, state
            runs = []
            for _ in range(REPEATS):
                await sim.advance(POLL_S)
                runs.append(await timed(meter, client.read_all))
            await sim.advance(POLL_S)
            async with stall_ticker() as worst:
                await client.read_all()
        finally:
            await link.close()
    return {"protocol": str(protocol), "packs": packs, "baud": baud, "strategy": "bus"} | summarise(runs, worst[0])


@contextlib.asynccontextmanager
async def home_assistant() -> AsyncIterator[HomeAssistant]:
    """A real HomeAssistant, built as PHCC builds it for tests (registries in memory), custom integrations on."""
    from homeassistant import loader
    from pytest_homeassistant_custom_component.common import async_test_home_assistant

    with tempfile.TemporaryDirectory() as config_dir:
        async with async_test_home_assistant(config_dir=config_dir) as hass:
            hass.data.pop(loader.DATA_CUSTOM_COMPONENTS)  # what PHCC's enable_custom_integrations does
            try:
                yield hass
            finally:
                await hass.async_stop(force=True)


async def detected_entry_data(url: str, baud: int) -> tuple[dict[str, Any], float]:
    """Entry data exactly as the config flow stores it after detection, and how long detection took."""
    from custom_components.lfp_bms.bms.detect import detect
    from custom_components.lfp_bms.config_flow import CONF_REFRESH_S, CONF_SERIAL
    from custom_components.lfp_bms.const import CONF_DEVICE

    link = SerialLink(url)
    started = time.perf_counter()
    try:
        result = await detect(link, bauds=(baud,))
    finally:
        await link.close()
    detect_s = time.perf_counter() - started
    data = {
        CONF_DEVICE: url,
        CONF_SERIAL: result.identity.serial,
        CONF_REFRESH_S: round(result.refresh_s, 3),
        **result.config.as_dict(),
    }
    return data, detect_s


async def bench_ha(packs: int, baud: int, strategy: Strategy, link_mode: LinkMode) -> dict[str, Any]:
    """Detection, setup of the entry it yields, then full refreshes through the coordinator with every entity."""
    from homeassistant.const import EVENT_STATE_CHANGED, EVENT_STATE_REPORTED
    from homeassistant.core import Event, callback
    from homeassistant.helpers.entity_platform import async_get_platforms
    from homeassistant.setup import async_setup_component
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    from custom_components.lfp_bms.const import CONF_SCAN_INTERVAL, DOMAIN, MAX_SCAN_INTERVAL
    from custom_components.lfp_bms.entity import LfpBmsEntity

    async with SimulatorProcess(packs, baud, link_mode) as sim:
        data, detect_s = await detected_entry_data(sim.url, baud)
        detected_strategy = data["strategy"]
        data["strategy"] = str(strategy)  # relay is measured too, although detection prefers broadcast
        async with home_assistant() as hass:
            # usb (our manifest's dependency) is part of HA's default_config and set up at HA's start, not ours.
            assert await async_setup_component(hass, "usb", {})
            await hass.async_block_till_done()
            async with stall_ticker() as idle_stall:
                await asyncio.sleep(IDLE_S)
            entry = MockConfigEntry(
                domain=DOMAIN,
                title="bench",
                unique_id=sim.url,
                data=data,
                # No scheduled poll during the measurement: every refresh is one started and timed here.
                options={CONF_SCAN_INTERVAL: MAX_SCAN_INTERVAL},
            )
            entry.add_to_hass(hass)
            async with stall_ticker() as setup_stall:
                started = time.perf_counter()
                assert await hass.config_entries.async_setup(entry.entry_id)
                await hass.async_block_till_done()
                setup_s = time.perf_counter() - started
            coordinator = entry.runtime_data
            meter = LinkMeter(coordinator.link, baud)
            setup_wire = meter.since((0, 0, 0, 0.0))[2]  # the link was opened by this setup
            writes = [0]

            @callback
            def count_write(_event: Event[Any]) -> None:
                writes[0] += 1

            @callback
            def every(_data: Any) -> bool:
                return True

            # A write of an unchanged state fires state_reported instead of state_changed.
            hass.bus.async_listen(EVENT_STATE_CHANGED, count_write)
            hass.bus.async_listen(EVENT_STATE_REPORTED, count_write, event_filter=every)
            listeners_cpu = [0.0]
            update_listeners = coordinator.async_update_listeners

            def timed_update_listeners() -> None:
                cpu0 = time.thread_time()
                update_listeners()
                listeners_cpu[0] += time.thread_time() - cpu0

            coordinator.async_update_listeners = timed_update_listeners

            async def refresh() -> None:
                writes[0] = 0
                listeners_cpu[0] = 0.0
                await coordinator.async_refresh()
                await hass.async_block_till_done()
                assert coordinator.last_update_success

            runs: list[Run] = []
            for _ in range(REPEATS):
                await sim.advance(POLL_S)
                run = await timed(meter, refresh)
                run.writes, run.listeners_cpu_s = writes[0], listeners_cpu[0]
                runs.append(run)
            await sim.advance(POLL_S)
            async with stall_ticker() as worst:
                await refresh()
            # The same refresh without change-only writes: every entity writes its state.
            for platform in async_get_platforms(hass, DOMAIN):
                for entity in platform.entities.values():
                    if isinstance(entity, LfpBmsEntity):
                        entity._written = None  # forget what was written last
            await sim.advance(POLL_S)
            async with stall_ticker() as worst_all:
                all_run = await timed(meter, refresh)
            all_run.writes, all_run.listeners_cpu_s = writes[0], listeners_cpu[0]
            entities = len(hass.states.async_all())
            # A second setup of the same entry, as after a restart: registries already hold every entity.
            started = time.perf_counter()
            assert await hass.config_entries.async_reload(entry.entry_id)
            await hass.async_block_till_done()
            reload_s = time.perf_counter() - started
            assert await hass.config_entries.async_unload(entry.entry_id)
    row = summarise(runs, worst[0])
    row |= {
        "entity_write_cpu_ms": median([r.listeners_cpu_s for r in runs], 1000, 1),
        "state_writes": statistics.median(r.writes for r in runs),
        "entities": entities,
        "all_writes": all_run.writes,
        "all_writes_cpu_ms": round(all_run.cpu_s * 1000, 1),
        "all_writes_entity_write_cpu_ms": round(all_run.listeners_cpu_s * 1000, 1),
        "all_writes_max_loop_stall_ms": round(worst_all[0] * 1000, 1),
        "idle_max_loop_stall_ms": round(idle_stall[0] * 1000, 1),
        "detect_s": round(detect_s, 3),
        "detected_strategy": detected_strategy,
        "setup_s": round(setup_s, 3),
        "setup_wire_limit_s": round(setup_wire, 3),
        "setup_max_loop_stall_ms": round(setup_stall[0] * 1000, 1),
        "reload_s": round(reload_s, 3),
    }
    return row


# --------------------------------------------------------------------------------------------------------------
# The matrix


async def run_case(packs: int, baud: int, strategy: Strategy, mode: LinkMode) -> dict[str, Any]:
    """One case: the HA path is what the user gets (refresh_s, ratio); the client path is kept for comparison."""
    client = await bench_client(packs, baud, strategy, mode)
    ha = await bench_ha(packs, baud, strategy, mode)
    row: dict[str, Any] = {"packs": packs, "baud": baud, "strategy": str(strategy), "link": str(mode)}
    row |= {key: ha.pop(key) for key in ("refresh_s", "wire_limit_s", "ratio")}
    row["ha_cpu_ms"] = ha.pop("cpu_ms")
    row["max_loop_stall_ms"] = ha.pop("max_loop_stall_ms")
    row |= ha
    row |= {f"client_{key}": value for key, value in client.items()}
    return row


async def main_async(quick: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for packs in (16,) if quick else PACKS:
        for baud in BAUDS:
            for strategy, mode in STRATEGIES[:1] if quick else STRATEGIES:
                row = await run_case(packs, baud, strategy, mode)
                print(f"bench: {packs} packs, {baud} baud, {strategy}: {row['refresh_s']} s", file=sys.stderr)
                rows.append(row)
    for protocol, packs, baud in MODBUS_CASES:
        modbus = await bench_modbus(protocol, packs, baud)
        print(f"bench: {protocol}, {packs} packs, {baud} baud: {modbus['refresh_s']} s", file=sys.stderr)
        rows.append(modbus)
    setup = next(r for r in rows if r["packs"] == 16 and r["baud"] == max(BAUDS) and r["strategy"] == "broadcast")
    slow = next(r for r in rows if r["packs"] == 16 and r["baud"] == min(BAUDS) and r["strategy"] == "broadcast")
    rows.append(
        {
            "setup_s": setup["setup_s"],
            "packs": 16,
            "baud": max(BAUDS),
            "strategy": "broadcast",
            "setup_wire_limit_s": setup["setup_wire_limit_s"],
            "setup_max_loop_stall_ms": setup["setup_max_loop_stall_ms"],
            "reload_s": setup["reload_s"],
            f"setup_s_{min(BAUDS)}": slow["setup_s"],
            f"setup_wire_limit_s_{min(BAUDS)}": slow["setup_wire_limit_s"],
        }
    )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The figures as a Markdown table (the layout docs/performance.md uses)."""
    lines = [
        "| packs | baud | strategy | exch. | refresh s | wire limit s | ratio | client s | late in exch. ms "
        "| outside exch. ms | HA CPU ms | entity writes (CPU ms) | max stall ms |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "refresh_s" not in r or "protocol" in r:
            continue
        lines.append(
            f"| {r['packs']} | {r['baud']} | {r['strategy']} | {r['exchanges']} | {r['refresh_s']:.3f} "
            f"| {r['wire_limit_s']:.3f} | {r['ratio']:.3f} | {r['client_refresh_s']:.3f} "
            f"| {r['late_inside_exchanges_ms']} | {r['outside_exchanges_ms']} | {r['ha_cpu_ms']} "
            f"| {r['state_writes']:g} ({r['entity_write_cpu_ms']}) | {r['max_loop_stall_ms']} |"
        )
    lines += [
        "",
        "| Modbus (client path) | packs | baud | exch. | refresh s | wire limit s | ratio | max stall ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['protocol']} | {r['packs']} | {r['baud']} | {r['exchanges']} | {r['refresh_s']:.3f} "
        f"| {r['wire_limit_s']:.3f} | {r['ratio']:.3f} | {r['max_loop_stall_ms']} |"
        for r in rows
        if "protocol" in r
    ]
    setup = rows[-1]
    lines.append("")
    lines.append(
        f"Setup of a 16-pack entry after detection: {setup['setup_s']} s at {setup['baud']} baud "
        f"(of which wire limit {setup['setup_wire_limit_s']} s, longest stall {setup['setup_max_loop_stall_ms']} ms), "
        f"{setup[f'setup_s_{min(BAUDS)}']} s at {min(BAUDS)} baud "
        f"(wire limit {setup[f'setup_wire_limit_s_{min(BAUDS)}']} s); reload {setup['reload_s']} s."
    )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        asyncio.run(serve(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON list (one object per case, then setup)")
    parser.add_argument("--quick", action="store_true", help="16 packs, broadcast only")
    args = parser.parse_args()
    rows = asyncio.run(main_async(args.quick))
    print(json.dumps(rows, indent=1) if args.json else table(rows))


if __name__ == "__main__":
    main()

"""The simulated cluster's master on the inverter CAN port: Pylon LV CAN frames from the physics, once a period.

Two ways onto the wire, both optional: python-can's `virtual` interface (any channel name, e.g. one per test), and
an emulated slcan USB adapter served on TCP (`socket://127.0.0.1:PORT`, which python-can's `slcan` interface
opens through pyserial). The BMS can require the inverter's keep-alive (0x305): with `keep_alive_timeout_s` set it
falls silent when none arrived for that long, as some firmwares do (docs/protocol.md §3.1).

sim = CanSimulator(cluster, CanSimulatorConfig(virtual_channel="test-1", slcan=True, period_s=0.2))
await sim.start()
sim.url           # slcan adapter for python-can: can.Bus(interface="slcan", channel=sim.url)
sim.silent = True # the battery stops talking (cable pulled)
await sim.drop_slcan()   # the adapter goes away: connections closed, new ones refused ...
await sim.serve_slcan()  # ... until it is back, on the same port
await sim.stop()
"""

import asyncio
import contextlib
from collections import deque
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import can

from ..can import (
    KEEP_ALIVE_ID,
    PROTECTION_BITS,
    WARNING_BITS,
    AlarmFlags,
    CanFlag,
    CanFrame,
    Capacity,
    CellExtremes,
    CellExtremesKelvin,
    ChargeLimits,
    EnergyCounters,
    ExtremeIds,
    InstalledCapacity,
    Manufacturer,
    Measurements,
    ModuleCounts,
    Requests,
    StateOfCharge,
    encode,
)
from ..models import Condition
from .physics import Cluster, PackModel

#: slcan "Sn" bit-rate codes.
SLCAN_BITRATES = {
    "S0": 10_000,
    "S1": 20_000,
    "S2": 50_000,
    "S3": 100_000,
    "S4": 125_000,
    "S5": 250_000,
    "S6": 500_000,
    "S7": 800_000,
    "S8": 1_000_000,
}
#: Extension frames sent by default besides the Pylon V1.2 set (0x351/355/356/359/35C/35E).
DEFAULT_EXTENSIONS = frozenset({0x354, 0x370, 0x371, 0x372, 0x378, 0x379})
#: Charge / discharge current limit per pack, in C (of the design capacity).
CHARGE_LIMIT_C = 0.5
DISCHARGE_LIMIT_C = 1.0
#: Force-charge request thresholds (US2000B-Plus: bit 5 at 5-10 % SOC, bit 4 at 9-13 %, docs/protocol.md §3.2).
FORCE_CHARGE_1_SOC = 10
FORCE_CHARGE_2_SOC = 13

_FLAG_OF: dict[Condition, CanFlag] = {
    Condition.CELL_OVERVOLTAGE: CanFlag.CELL_OVERVOLTAGE,
    Condition.PACK_OVERVOLTAGE: CanFlag.CELL_OVERVOLTAGE,
    Condition.CELL_UNDERVOLTAGE: CanFlag.CELL_UNDERVOLTAGE,
    Condition.PACK_UNDERVOLTAGE: CanFlag.CELL_UNDERVOLTAGE,
    Condition.CHARGE_OVERTEMPERATURE: CanFlag.CELL_OVERTEMPERATURE,
    Condition.DISCHARGE_OVERTEMPERATURE: CanFlag.CELL_OVERTEMPERATURE,
    Condition.CHARGE_UNDERTEMPERATURE: CanFlag.CELL_UNDERTEMPERATURE,
    Condition.DISCHARGE_UNDERTEMPERATURE: CanFlag.CELL_UNDERTEMPERATURE,
    Condition.DISCHARGE_OVERCURRENT: CanFlag.DISCHARGE_OVERCURRENT,
    Condition.DISCHARGE_OVERCURRENT_2: CanFlag.DISCHARGE_OVERCURRENT,
    Condition.SHORT_CIRCUIT: CanFlag.DISCHARGE_OVERCURRENT,
    Condition.CHARGE_OVERCURRENT: CanFlag.CHARGE_OVERCURRENT,
}


def _word(conditions: Iterable[Condition], table: Mapping[int, CanFlag]) -> int:
    flags = {_FLAG_OF[c] for c in conditions if c in _FLAG_OF}
    return sum(1 << bit for bit, flag in table.items() if flag in flags)


def cluster_frames(
    cluster: Cluster,
    *,
    manufacturer: str = "PYLON",
    extensions: frozenset[int] = DEFAULT_EXTENSIONS,
) -> list[CanFrame]:
    """One broadcast of the master: system values over the reachable packs. Empty when none is reachable."""
    packs = [p for p in cluster.packs if p.reachable]
    if not packs:
        return []
    master = packs[0]
    full_ah = sum(p.full_ah for p in packs)
    soc = round(sum(p.soc_pct * p.full_ah for p in packs) / full_ah) if full_ah else 0
    cell_temps = [t for p in packs for t in p.cell_temps_c]
    protections = {c for p in packs for c in p.protections}
    warnings = {c for p in packs for c in p.warnings}
    frames: list[CanFrame] = [
        ChargeLimits(
            charge_voltage_v=round(cluster.config.charger_cv_per_cell_v * master.spec.cells, 1),
            charge_current_a=sum(CHARGE_LIMIT_C * p.spec.design_ah for p in packs if p.charge_mos_on),
            discharge_current_a=sum(DISCHARGE_LIMIT_C * p.spec.design_ah for p in packs if p.discharge_mos_on),
            discharge_voltage_v=master.settings.pack_uv_alarm_mv / 1000,
        ),
        StateOfCharge(soc_pct=soc, soh_pct=round(sum(p.soh_pct for p in packs) / len(packs))),
        Measurements(
            voltage_v=round(sum(p.voltage_mv for p in packs) / len(packs) / 1000, 2),
            current_a=round(sum(p.current_a for p in packs), 1),
            temperature_c=round(sum(cell_temps) / len(cell_temps), 1),
        ),
        AlarmFlags(
            protection=_word(protections, PROTECTION_BITS),
            warning=_word(warnings, WARNING_BITS),
            module_count=len(packs),
            online_bitmap=sum(1 << p.address for p in packs if p.address < 8),
        ),
        Requests(
            charge_enable=any(p.charge_mos_on for p in packs),
            discharge_enable=any(p.discharge_mos_on for p in packs),
            force_charge_1=soc <= FORCE_CHARGE_1_SOC,
            force_charge_2=soc <= FORCE_CHARGE_2_SOC,
            full_charge=False,
        ),
        Manufacturer(name=manufacturer),
    ]
    frames += _extension_frames(cluster, packs, extensions)
    return frames


def _extension_frames(cluster: Cluster, packs: list[PackModel], extensions: frozenset[int]) -> list[CanFrame]:
    cells = [(mv, p.address, i + 1) for p in packs for i, mv in enumerate(p.cell_mv)]
    temps = [(t, p.address, i + 1) for p in packs for i, t in enumerate(p.cell_temps_c)]
    low, high = min(cells), max(cells)
    cold, hot = min(temps), max(temps)
    frames: list[CanFrame] = []
    if 0x354 in extensions:
        frames.append(
            Capacity(
                nominal_ah=sum(p.spec.design_ah for p in packs),
                remaining_ah=round(sum(p.remaining_ah for p in packs), 1),
            )
        )
    for extremes_class, frame_id in ((CellExtremes, 0x370), (CellExtremesKelvin, 0x373)):
        if frame_id in extensions:
            frames.append(
                extremes_class(
                    min_cell_mv=low[0],
                    max_cell_mv=high[0],
                    min_temperature_c=round(cold[0], 1),
                    max_temperature_c=round(hot[0], 1),
                )
            )
    if 0x371 in extensions:
        # Id = address × 256 + cell/sensor number.
        frames.append(
            ExtremeIds(
                max_temperature_id=hot[1] * 256 + hot[2],
                min_temperature_id=cold[1] * 256 + cold[2],
                max_cell_id=high[1] * 256 + high[2],
                min_cell_id=low[1] * 256 + low[2],
            )
        )
    if 0x372 in extensions:
        frames.append(
            ModuleCounts(
                online=len(packs),
                blocking_charge=sum(not p.charge_mos_on for p in packs),
                blocking_discharge=sum(not p.discharge_mos_on for p in packs),
                offline=len(cluster.packs) - len(packs),
            )
        )
    if 0x378 in extensions:
        frames.append(
            EnergyCounters(
                charged_kwh=sum(p.bms_counters.charged_wh for p in cluster.packs) / 1000,
                discharged_kwh=sum(p.bms_counters.discharged_wh for p in cluster.packs) / 1000,
            )
        )
    if 0x379 in extensions:
        frames.append(InstalledCapacity(capacity_ah=round(sum(p.spec.design_ah for p in cluster.packs))))
    return frames


@dataclass(frozen=True, slots=True, kw_only=True)
class CanSimulatorConfig:
    """Where and how the simulated master broadcasts."""

    #: Seconds between two broadcasts (Pylon: about 1 s).
    period_s: float = 1.0
    #: Fall silent when no 0x305 arrived for this many seconds (None = send regardless, the default).
    keep_alive_timeout_s: float | None = None
    manufacturer: str = "PYLON"
    extensions: frozenset[int] = DEFAULT_EXTENSIONS
    #: python-can `virtual` channel to send on (None = none).
    virtual_channel: str | None = None
    #: Also serve an emulated slcan adapter on TCP.
    slcan: bool = False
    host: str = "127.0.0.1"
    port: int = 0
    #: The battery's CAN bit rate: an adapter set to another rate hears nothing.
    bitrate: int = 500_000
    #: Simulated seconds per wall second advanced before each broadcast (0 = only `Cluster.advance()`).
    speed: float = 0.0
    log_size: int = 10000


@dataclass(slots=True, eq=False)  # hashed by identity: kept in a set
class _SlcanClient:
    writer: asyncio.StreamWriter
    open: bool = False
    listen_only: bool = False
    bitrate: int | None = None


@dataclass(slots=True)
class CanSimulatorStats:
    broadcasts: int = 0
    keep_alives: int = 0
    slcan_connections: int = 0
    slcan_commands: list[str] = field(default_factory=list)


class CanSimulator:
    """The master pack's CAN port: broadcasts `cluster_frames` every period onto every configured sink."""

    def __init__(self, cluster: Cluster, config: CanSimulatorConfig | None = None) -> None:
        self.cluster = cluster
        self.config = config or CanSimulatorConfig()
        #: Test switch: the battery sends nothing while True (cable pulled, BMS asleep).
        self.silent = False
        self.stats = CanSimulatorStats()
        #: (arbitration id, data) of every frame broadcast, and of every frame received from the host.
        self.sent: deque[tuple[int, bytes]] = deque(maxlen=self.config.log_size)
        self.received: deque[tuple[int, bytes]] = deque(maxlen=self.config.log_size)
        self._bus: can.BusABC | None = None
        self._server: asyncio.Server | None = None
        self._port = self.config.port
        self._clients: set[_SlcanClient] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_keep_alive = 0.0
        self._last_wall = 0.0
        self._broadcast = asyncio.Event()
        self._tick = asyncio.Event()

    # -- lifecycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._last_keep_alive = self._last_wall = loop.time()
        cfg = self.config
        if cfg.virtual_channel is not None:
            self._bus = can.Bus(interface="virtual", channel=cfg.virtual_channel)
        if cfg.slcan:
            await self.serve_slcan()
        self._spawn(self._run())

    async def serve_slcan(self) -> None:
        """Accept slcan connections (again): the first call binds a free port when none was configured."""
        if self._server is None:
            self._server = await asyncio.start_server(self._on_connect, self.config.host, self._port)
            self._port = self._server.sockets[0].getsockname()[1]

    async def drop_slcan(self) -> None:
        """Test switch: the adapter goes away. Open connections are closed, new ones refused until serve_slcan()."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for client in list(self._clients):
            client.writer.close()
        if server is not None:
            await server.wait_closed()

    async def stop(self) -> None:
        await self.drop_slcan()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._bus is not None:
            self._bus.shutdown()
            self._bus = None

    @property
    def url(self) -> str:
        """pyserial URL of the slcan adapter."""
        assert self.config.slcan, "slcan is off"
        return f"socket://{self.config.host}:{self._port}"

    # -- what the battery does

    @property
    def sending(self) -> bool:
        """Broadcasting now: not silenced, and (when required) kept alive."""
        if self.silent:
            return False
        timeout = self.config.keep_alive_timeout_s
        return timeout is None or asyncio.get_running_loop().time() - self._last_keep_alive < timeout

    async def wait_broadcast(self) -> None:
        """Return after the next broadcast went out."""
        self._broadcast.clear()
        await self._broadcast.wait()

    async def wait_tick(self) -> None:
        """Return after the next period, whether it broadcast or not."""
        self._tick.clear()
        await self._tick.wait()

    def frames(self) -> list[tuple[int, bytes]]:
        """The frames of one broadcast now."""
        cfg = self.config
        return [
            encode(f) for f in cluster_frames(self.cluster, manufacturer=cfg.manufacturer, extensions=cfg.extensions)
        ]

    def _host_frame(self, arbitration_id: int, data: bytes) -> None:
        self.received.append((arbitration_id, data))
        if arbitration_id == KEEP_ALIVE_ID:
            self.stats.keep_alives += 1
            self._last_keep_alive = asyncio.get_running_loop().time()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.tick()
            await asyncio.sleep(self.config.period_s)
            if self.config.speed > 0:
                now = loop.time()
                self.cluster.advance((now - self._last_wall) * self.config.speed)
                self._last_wall = now

    async def tick(self) -> None:
        """Read what the host sent, then broadcast once (unless silent)."""
        if self._bus is not None:
            while (msg := self._bus.recv(0)) is not None:
                if not msg.is_extended_id:
                    self._host_frame(msg.arbitration_id, bytes(msg.data))
        if self.sending:
            for arbitration_id, data in self.frames():
                self.sent.append((arbitration_id, data))
                if self._bus is not None:
                    self._bus.send(can.Message(arbitration_id=arbitration_id, data=data, is_extended_id=False))
                line = f"t{arbitration_id:03X}{len(data)}{data.hex().upper()}\r".encode()
                for client in self._clients:
                    if client.open and client.bitrate in (None, self.config.bitrate):
                        client.writer.write(line)
            for client in list(self._clients):
                with contextlib.suppress(ConnectionError):
                    await client.writer.drain()
            self.stats.broadcasts += 1
            self._broadcast.set()
        self._tick.set()

    # -- the emulated slcan adapter

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        client = _SlcanClient(writer)
        self._clients.add(client)
        self.stats.slcan_connections += 1
        buffer = b""
        try:
            while chunk := await reader.read(1024):
                buffer += chunk
                *commands, buffer = buffer.split(b"\r")
                for command in commands:
                    writer.write(self._slcan_command(client, command.decode("ascii", "replace")))
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._clients.discard(client)
            writer.close()

    def _slcan_command(self, client: _SlcanClient, command: str) -> bytes:
        """Answer one slcan command: CR = ok, BEL = error (the Lawicel protocol)."""
        self.stats.slcan_commands.append(command)
        ok, error = b"\r", b"\a"
        head = command[:1]
        if command in SLCAN_BITRATES:
            if client.open:
                return error  # the rate can only change while the channel is closed
            client.bitrate = SLCAN_BITRATES[command]
            return ok
        if head in ("O", "L"):
            client.open, client.listen_only = True, head == "L"
            return ok
        if head == "C":
            client.open = False
            return ok
        if head == "V":
            return b"V1013\r"
        if head == "N":
            return b"NSIM1\r"
        if head in ("t", "T"):
            if not client.open or client.listen_only:
                return error
            try:
                width = 3 if head == "t" else 8
                arbitration_id = int(command[1 : 1 + width], 16)
                length = int(command[1 + width])
                data = bytes.fromhex(command[2 + width : 2 + width + 2 * length])
            except ValueError, IndexError:
                return error
            if head == "t" and len(data) == length:
                self._host_frame(arbitration_id, data)
            return b"z\r" if head == "t" else b"Z\r"
        if command == "" or head in ("s", "F", "Z", "M", "m", "X", "W", "Q", "Y"):
            return ok  # filters, timestamps, data rate: accepted and ignored
        return error

"""The simulated cluster on a TCP port (`socket://127.0.0.1:PORT`) and optionally a pty, at line rate, with faults.

One request is answered at a time across all connections (the wire is half duplex). Before each request the
physics is advanced lazily by the wall time since the last request times `speed` (speed 0 freezes it: only
`Simulator.advance()` moves time, which is what deterministic tests use). A reply is written after the request's
own wire time plus the turnaround, paced at 10 bits per byte; with `baud=0` or `paced=False` it goes out at once.
"""

import asyncio
import contextlib
import os
import tty
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from ..driver import ProtocolName
from ..frame import Frame, FrameError, decode_frame, encode_frame, split_frames
from .faults import FaultInjector, FaultKind, FaultPlan
from .modbus import MODBUS_PROTOCOLS, ModbusResponder, make_modbus_responder, readdressed, split_requests
from .physics import Cluster, PackSpec, PhysicsConfig, Profile
from .responders import LinkMode, Responder, make_responder

#: 8N1: a start bit, 8 data bits and a stop bit per byte.
BITS_PER_BYTE = 10
_READ_SIZE = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorConfig:
    """Everything that shapes a simulated cluster. Per-pack options take one value or one per pack."""

    packs: int = 1
    protocol: ProtocolName = ProtocolName.PACE25
    link: LinkMode = LinkMode.RS232_MASTER
    host: str = "127.0.0.1"
    #: 0 = pick a free port.
    port: int = 0
    #: Also serve on a pty (its path is `Simulator.pty_path`).
    pty: bool = False
    #: Line rate for pacing; 0 = no pacing.
    baud: int = 9600
    #: False = reply at once (fast tests), whatever the baud.
    paced: bool = True
    turnaround_ms: float = 40.0
    seed: int = 0
    #: Simulated seconds per wall second for the lazy physics advance (0 = only `advance()` moves time).
    speed: float = 1.0
    faults: str = ""
    cells: int | Sequence[int] = 16
    temperatures: int | Sequence[int] = 6
    #: PACE 0x25 analog tail variant per pack: 0, 1, 8 or 14 bytes.
    tails: int | Sequence[int] = 0
    design_ah: float | Sequence[float] = 100.0
    #: PACE 0x44: the extra byte some firmwares append after each record.
    status_extra_byte: bool = False
    physics: PhysicsConfig = field(default_factory=PhysicsConfig)
    profile: Profile | None = None
    #: Bound of the log of sent replies.
    log_size: int = 10000

    def __post_init__(self) -> None:
        if not 1 <= self.packs <= 16:
            raise ValueError(f"packs must be 1-16, not {self.packs}")
        object.__setattr__(self, "protocol", ProtocolName(self.protocol))
        object.__setattr__(self, "link", LinkMode(self.link))
        if self.baud < 0 or self.speed < 0 or self.turnaround_ms < 0:
            raise ValueError("baud, speed and turnaround must not be negative")
        FaultPlan.parse(self.faults)  # fail early on a bad SPEC

    def first_address(self) -> int:
        """PACE numbers packs from DIP address 1; Pylon from ADR 2 (docs/protocol.md §1.7.2); Seplos from DIP 0."""
        return {ProtocolName.PYLON: 2, ProtocolName.SEPLOS: 0, ProtocolName.SEPLOS_V3: 0}.get(self.protocol, 1)

    def pack_specs(self) -> list[PackSpec]:
        def per_pack[T](value: T | Sequence[T], i: int) -> T:
            if isinstance(value, Sequence) and not isinstance(value, str):
                if len(value) != self.packs:
                    raise ValueError(f"{len(value)} per-pack values for {self.packs} packs")
                return value[i]
            return value

        first = self.first_address()
        specs = []
        for i in range(self.packs):
            cells = per_pack(self.cells, i)
            specs.append(
                PackSpec(
                    address=first + i,
                    cells=cells,
                    temperatures=per_pack(self.temperatures, i),
                    tail=per_pack(self.tails, i),
                    design_ah=per_pack(self.design_ah, i),
                )
            )
        return specs


@dataclass(frozen=True, slots=True)
class SentReply:
    """A checksum-valid reply the simulator published (corrupted and truncated ones are never logged)."""

    sim_time: float
    request: bytes
    reply: bytes
    fault: str | None


@dataclass(slots=True)
class SimulatorStats:
    """Counters of the simulated wire."""

    connections: int = 0
    requests: int = 0
    replies: int = 0
    unanswered: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    #: sum of bytes * 10 / baud over every paced reply: what the wire needs.
    wire_seconds_out: float = 0.0
    #: sum of measured time spent writing those replies (>= wire_seconds_out when pacing works).
    send_seconds_out: float = 0.0
    last_reply_bytes: int = 0
    last_wire_seconds: float = 0.0
    last_send_seconds: float = 0.0


class _Channel(ABC):
    """A byte stream to one host: a TCP connection or the pty."""

    name: str

    @abstractmethod
    async def read(self) -> bytes:
        """Next chunk; b"" when the host went away."""

    @abstractmethod
    async def write(self, data: bytes) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    @property
    def can_close(self) -> bool:
        return True


class _TcpChannel(_Channel):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.name = str(writer.get_extra_info("peername"))

    async def read(self) -> bytes:
        try:
            return await self._reader.read(_READ_SIZE)
        except ConnectionError:
            return b""

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()

    def close(self) -> None:
        self._writer.close()


class _PtyChannel(_Channel):
    """The master side of a pty; the host opens the slave path like a serial port."""

    name = "pty"

    def __init__(self) -> None:
        self.master_fd, self.slave_fd = os.openpty()
        tty.setraw(self.slave_fd)  # no CR/LF translation, no echo
        os.set_blocking(self.master_fd, False)
        self.path = os.ttyname(self.slave_fd)
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.master_fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.master_fd, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # EIO: no slave side any more
        if data:
            self._queue.put_nowait(data)

    async def read(self) -> bytes:
        return await self._queue.get()

    async def write(self, data: bytes) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            # Nobody reading the slave: the kernel buffer fills and the rest is lost, as on a real wire.
            os.write(self.master_fd, data)

    @property
    def can_close(self) -> bool:
        return False

    def close(self) -> None:
        self._loop.remove_reader(self.master_fd)
        for fd in (self.master_fd, self.slave_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


class Simulator:
    """A simulated battery cluster served on TCP (and a pty). Use `await start()` / `await stop()` or `async with`."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        cfg = self.config
        self.fault_plan = FaultPlan.parse(cfg.faults)
        self.cluster = Cluster(cfg.pack_specs(), seed=cfg.seed, config=cfg.physics, profile=cfg.profile)
        for outage in self.fault_plan.outages:
            if self.cluster.has_pack(outage.address):
                self.cluster.schedule_offline(outage.address, outage.start_s, outage.duration_s)
        #: A Modbus protocol's packs are slaves on an RS485 bus (the link mode does not apply); the ASCII
        #: responder is then the PACE one, unused.
        self.modbus: ModbusResponder | None = (
            make_modbus_responder(cfg.protocol, self.cluster) if cfg.protocol in MODBUS_PROTOCOLS else None
        )
        self.responder: Responder = make_responder(
            ProtocolName.PACE25 if self.modbus else cfg.protocol, self.cluster, cfg.link, cfg.status_extra_byte
        )
        self.injector = FaultInjector(self.fault_plan, cfg.seed)
        self.stats = SimulatorStats()
        self.sent: deque[SentReply] = deque(maxlen=cfg.log_size)
        self._server: asyncio.Server | None = None
        self._pty: _PtyChannel | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._channels: set[_Channel] = set()
        self._bus = asyncio.Lock()
        self._last_wall: float | None = None
        #: Simulated time of the last request (for the asleep fault); None = never talked to.
        self._last_traffic: float | None = None
        self._port = 0

    # -- lifecycle

    async def start(self) -> None:
        """Listen (and open the pty); returns when the simulator accepts connections."""
        loop = asyncio.get_running_loop()
        self._last_wall = loop.time()
        self._server = await asyncio.start_server(self._on_connect, self.config.host, self.config.port)
        self._port = self._server.sockets[0].getsockname()[1]
        if self.config.pty:
            self._pty = _PtyChannel()
            self._spawn(self._serve(self._pty))

    async def stop(self) -> None:
        """Close everything; no task, timer, fd or thread is left behind."""
        if self._server is not None:
            self._server.close()
        for channel in list(self._channels):
            channel.close()
        if self._pty is not None:
            self._pty.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self._pty = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """serialx URL of the TCP endpoint."""
        return f"socket://{self.config.host}:{self._port}"

    @property
    def pty_path(self) -> str | None:
        return None if self._pty is None else self._pty.path

    # -- API for tests and the benchmark

    def advance(self, seconds: float) -> None:
        """Run the physics `seconds` of simulated time forward, at once."""
        self.cluster.advance(seconds)

    @property
    def addresses(self) -> list[int]:
        return [p.address for p in self.cluster.packs]

    # -- serving

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await self._serve(_TcpChannel(reader, writer))

    async def _serve(self, channel: _Channel) -> None:
        self.stats.connections += 1
        self._channels.add(channel)
        self._sync_clock()
        opened_at = self.cluster.time_s
        buffer = b""
        try:
            while True:
                chunk = await channel.read()
                if not chunk:
                    return
                self.stats.bytes_in += len(chunk)
                candidates, buffer = (split_requests if self.modbus else split_frames)(buffer + chunk)
                for raw in candidates:
                    async with self._bus:
                        if not await self._handle(channel, raw, opened_at):
                            return
        finally:
            self._channels.discard(channel)
            channel.close()

    def _sync_clock(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._last_wall is not None and self.config.speed > 0:
            self.cluster.advance((now - self._last_wall) * self.config.speed)
        self._last_wall = now

    @property
    def _paced(self) -> bool:
        return self.config.paced and self.config.baud > 0

    async def _handle(self, channel: _Channel, raw: bytes, opened_at: float) -> bool:
        """Answer one request candidate; False when the connection is to be dropped."""
        self._sync_clock()
        self.stats.requests += 1
        plan = self.fault_plan
        now = self.cluster.time_s
        if plan.close_every_s is not None and channel.can_close and now - opened_at >= plan.close_every_s:
            self.injector.count("close")
            return False
        if plan.asleep_after_s is not None:
            asleep = self._last_traffic is None or now - self._last_traffic >= plan.asleep_after_s
            self._last_traffic = now
            if asleep:
                self.injector.count("asleep")  # the request only wakes the BMS
                self.stats.unanswered += 1
                return True
        falsifiable: Frame | None = None
        if self.modbus is not None:
            reply = self.modbus.respond_raw(raw)  # split_requests passed only CRC-valid requests
        else:
            try:
                request = decode_frame(raw)
            except FrameError:
                self.stats.unanswered += 1
                return True  # a garbled request gets no answer
            raw, reply = request.raw, self.responder.respond(request)
            falsifiable = request if self.responder.falsifies(request) else None
        if reply is None:
            self.stats.unanswered += 1
            return True
        await self._send(channel, raw, reply, falsifiable)
        return True

    async def _send(self, channel: _Channel, request: bytes, reply: bytes, falsifiable: Frame | None = None) -> None:
        """Send `reply` with the fault drawn for it; `falsifiable`: the request, when the nonsense fault applies."""
        fault = self.injector.draw(nonsense=falsifiable is not None)
        if fault is FaultKind.DROP:
            self.stats.unanswered += 1
            return
        if self._paced:
            # The reply cannot start before the request has crossed the wire, plus the BMS's turnaround.
            await asyncio.sleep(len(request) * BITS_PER_BYTE / self.config.baud + self.config.turnaround_ms / 1000)
        out = reply
        logged: bytes | None = reply
        match fault:
            case FaultKind.LATE:
                await asyncio.sleep(self.fault_plan.late_ms / 1000)
            case FaultKind.TRUNCATE:
                out, logged = self.injector.truncate(reply), None
            case FaultKind.CORRUPT:
                out, logged = self.injector.corrupt(reply), None
            case FaultKind.GARBAGE:
                out = self.injector.garbage() + reply
            case FaultKind.WRONG_ADDR if self.modbus is not None:
                out = logged = readdressed(reply)
            case FaultKind.NONSENSE if falsifiable is not None:
                kind = self.injector.nonsense()
                out = logged = self.responder.nonsense(falsifiable, reply, kind, self.injector.rng)
            case FaultKind.WRONG_ADDR:
                frame = decode_frame(reply)
                out = logged = encode_frame(frame.ver, (frame.adr + 1) & 0xFF, frame.cid1, frame.cid2, frame.info)
        if logged is not None:
            self.sent.append(SentReply(self.cluster.time_s, request, logged, None if fault is None else str(fault)))
        self.stats.replies += 1
        self.stats.bytes_out += len(out)
        self.stats.last_reply_bytes = len(out)
        await self._write_paced(channel, out)

    async def _write_paced(self, channel: _Channel, data: bytes) -> None:
        """Write `data` as a UART would deliver it: each piece only once its last byte has crossed the wire."""
        if not self._paced:
            await channel.write(data)
            return
        loop = asyncio.get_running_loop()
        byte_time = BITS_PER_BYTE / self.config.baud
        chunk = max(1, int(0.01 / byte_time))  # about 10 ms of line time per write
        start = loop.time()
        wire = len(data) * byte_time
        for offset in range(0, len(data), chunk):
            piece = data[offset : offset + chunk]
            deadline = start + (offset + len(piece)) * byte_time
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            if offset + len(piece) == len(data):
                # Account before the last piece goes out, so that a client holding the reply sees the counters.
                spent = loop.time() - start
                self.stats.wire_seconds_out += wire
                self.stats.send_seconds_out += spent
                self.stats.last_wire_seconds = wire
                self.stats.last_send_seconds = spent
            await channel.write(piece)

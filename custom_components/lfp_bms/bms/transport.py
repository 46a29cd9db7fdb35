"""Request/reply link to a BMS over anything serialx opens: a serial device, a TCP bridge, RFC 2217 or ESPHome.

One request is in flight at a time (the RS485 bus and the RS232 master link are half duplex). Failures are split
into three kinds so that the caller can react: `LinkError` (the link is gone; reopened after a backoff),
`LinkTimeout` (the link is fine but nobody answered) and `RtnError` (the BMS answered and refused).
"""

import asyncio
import contextlib
import dataclasses
import logging
from dataclasses import dataclass, field

import serialx

from .driver import Exchange
from .frame import EOI, MAX_FRAME_LEN, BmsError, Frame, FrameError, RtnError, decode_frame, split_frames
from .modbus.codec import ModbusExceptionError, ModbusExchange, ModbusRequest, crc_ok, decode_reply, reply_frame_length

_LOGGER = logging.getLogger(__name__)

#: 8N1: a start bit, 8 data bits and a stop bit per byte.
BITS_PER_BYTE = 10
_EOI = bytes((EOI,))


class TransportError(BmsError):
    """The link could not deliver a reply."""


class LinkError(TransportError):
    """The port cannot be opened, or the connection was lost."""


class LinkTimeout(TransportError):  # noqa: N818  # the contract's name, read as "link timed out"
    """No valid reply arrived before the deadline."""


@dataclass(slots=True)
class LinkStats:
    """Running counters of one link, for diagnostics."""

    requests: int = 0
    good_frames: int = 0
    #: Candidates between SOI and EOI that failed decode_frame (checksum, length, hex).
    checksum_errors: int = 0
    timeouts: int = 0
    #: Timeouts with the start of a frame (SOI but no EOI) in the buffer: a reply cut off on the wire.
    truncated: int = 0
    wrong_address: int = 0
    refused: int = 0
    #: Times the link was dropped (or failed to open) and a reconnect was scheduled.
    reconnects: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    #: Last (raw request, raw reply or None) per request CID2.
    last_exchange: dict[int, tuple[bytes, bytes | None]] = field(default_factory=dict)

    def snapshot(self) -> dict[str, int]:
        """The counters as a plain dict (without `last_exchange`)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "last_exchange"}


class _ReceiveProtocol(asyncio.Protocol):
    """Collects received bytes and wakes the reader; remembers that the connection is gone."""

    def __init__(self, stats: LinkStats) -> None:
        self.buffer = bytearray()
        self.lost = False
        self._stats = stats
        self._waiter: asyncio.Future[None] | None = None
        self._loop = asyncio.get_running_loop()
        #: While a reply is awaited: its deadline, pushed back by every chunk up to `_deadline_cap`.
        self._deadline: asyncio.Timeout | None = None
        self._idle_timeout = 0.0
        self._deadline_cap = 0.0
        #: Modbus RTU has no end marker: every chunk may complete a reply.
        self.wake_on_any = False

    def expect_reply(self, deadline: asyncio.Timeout | None, idle_timeout: float = 0.0, cap: float = 0.0) -> None:
        """Let received bytes push `deadline` back to `idle_timeout` after the last one (None: stop doing so)."""
        self._deadline, self._idle_timeout, self._deadline_cap = deadline, idle_timeout, cap

    def data_received(self, data: bytes) -> None:
        self._stats.bytes_in += len(data)
        self.buffer += data
        deadline = self._deadline
        if deadline is not None and not deadline.expired():
            # A reply still arriving is not late (a 16-pack broadcast takes 2 s at 9600 baud): keep the deadline
            # at least `_idle_timeout` after the last byte. Pushed back by 1.5× so that it moves only every
            # half timeout, not on each of the hundreds of chunks a slow line delivers.
            now = self._loop.time()
            when = deadline.when()
            if when is not None and when - now < self._idle_timeout:
                deadline.reschedule(min(now + 1.5 * self._idle_timeout, self._deadline_cap))
        if self.wake_on_any or _EOI in data:
            # Only a complete frame is worth a look: a slow line delivers hundreds of chunks per refresh and
            # waking the reader for each one cost more CPU than the whole decode.
            self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait_for_data(self) -> None:
        """Return when more bytes arrived; raise ConnectionResetError once the connection is gone."""
        if self.lost:
            raise ConnectionResetError("connection lost")
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None


class SerialLink(Exchange, ModbusExchange):
    """A serialx port (8N1, exclusive) used for one request → one reply at a time."""

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 9600,
        timeout: float = 1.0,
        gap: float = 0.0,
        connect_timeout: float = 5.0,
        reconnect_backoff: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        self._url = url
        self._baudrate = baudrate
        self._timeout = timeout
        self._gap = gap
        self._connect_timeout = connect_timeout
        self._backoff_initial, self._backoff_max = reconnect_backoff
        self.stats = LinkStats()
        self._lock = asyncio.Lock()
        self._transport: serialx.BaseSerialTransport | None = None
        self._protocol: _ReceiveProtocol | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._next_send_at = 0.0

    @property
    def url(self) -> str:
        return self._url

    @property
    def baudrate(self) -> int:
        return self._baudrate

    @property
    def is_open(self) -> bool:
        return (
            self._transport is not None
            and self._protocol is not None
            and not self._protocol.lost
            and not self._transport.is_closing()
        )

    async def open(self) -> None:
        """Open the port now (ignoring any reconnect backoff). Raises LinkError."""
        async with self._lock:
            if not self.is_open:
                await self._connect()

    async def close(self) -> None:
        """Close the port (idempotent) and forget the backoff; a later exchange reopens it."""
        async with self._lock:
            await self._close_transport()
            self._failures = 0
            self._retry_at = 0.0

    async def set_baudrate(self, baudrate: int) -> None:
        """Switch the baud rate: reconfigure the open port, or reopen it when the backend refuses."""
        async with self._lock:
            self._baudrate = baudrate
            transport = self._transport
            if transport is None or not self.is_open:
                return  # applied at the next open
            try:
                await transport.reconfigure_port(baudrate=baudrate)
            except (OSError, serialx.SerialException) as err:
                _LOGGER.debug("%s: reconfigure to %d baud failed (%s), reopening", self._url, baudrate, err)
                await self._close_transport()
                await self._connect()

    async def exchange(self, request: bytes, *, timeout: float | None = None) -> Frame:
        """Send `request` and return the first valid reply for its address, RTN checked.

        Raises LinkError, LinkTimeout, RtnError, or FrameError when `request` itself is not a frame.
        """
        sent = decode_frame(request)
        async with self._lock:
            await self._settle()
            await self._ensure_open()
            await self._wait_gap()
            try:
                frame = await self._transact(request, sent, self._timeout if timeout is None else timeout)
            finally:
                self._next_send_at = asyncio.get_running_loop().time() + self._gap
        try:
            return frame.check_rtn()
        except RtnError:
            self.stats.refused += 1
            raise

    async def _transact(self, request: bytes, sent: Frame, timeout: float) -> Frame:
        transport, protocol = self._transport, self._protocol
        assert transport is not None
        assert protocol is not None
        if protocol.buffer:
            # Stale input (a late reply, echo, noise) must not be taken for the answer to this request.
            _LOGGER.debug("%s: discarding %d stale bytes", self._url, len(protocol.buffer))
            protocol.buffer.clear()
        self.stats.last_exchange[sent.cid2] = (request, None)
        # The deadline runs from the last byte received, but never past the wire time of the longest frame.
        cap = asyncio.get_running_loop().time() + timeout
        cap += (len(request) + MAX_FRAME_LEN) * BITS_PER_BYTE / self._baudrate
        try:
            async with asyncio.timeout(timeout) as deadline:
                protocol.expect_reply(deadline, timeout, cap)
                try:
                    transport.write(request)
                    self.stats.requests += 1
                    self.stats.bytes_out += len(request)
                    frame = await self._read_reply(protocol, sent.adr)
                except (OSError, serialx.SerialException) as err:
                    # Raised inside the timeout block so that a TimeoutError (an OSError) here is the deadline's.
                    raise LinkError(f"{self._url}: connection lost: {err}") from err
                finally:
                    protocol.expect_reply(None)
        except TimeoutError:
            self.stats.timeouts += 1
            if protocol.buffer.startswith(b"~"):
                self.stats.truncated += 1
            raise LinkTimeout(f"{self._url}: no reply to CID2 0x{sent.cid2:02X} within {timeout} s") from None
        except LinkError:
            await self._drop_link()
            raise
        self.stats.good_frames += 1
        self.stats.last_exchange[sent.cid2] = (request, frame.raw)
        self._failures = 0
        return frame

    async def _read_reply(self, protocol: _ReceiveProtocol, adr: int) -> Frame:
        while True:
            candidates, rest = split_frames(bytes(protocol.buffer))
            protocol.buffer[:] = rest
            for raw in candidates:
                try:
                    frame = decode_frame(raw)
                except FrameError as err:
                    self.stats.checksum_errors += 1
                    _LOGGER.debug("%s: dropping malformed frame %r: %s", self._url, raw, err)
                    continue
                # PACE answers ADR 00 with 00, so only two non-zero addresses can disagree.
                if adr and frame.adr and frame.adr != adr:
                    self.stats.wrong_address += 1
                    _LOGGER.debug("%s: skipping reply from ADR %02X, expected %02X", self._url, frame.adr, adr)
                    continue
                return frame
            await protocol.wait_for_data()

    @staticmethod
    async def _settle() -> None:
        # Two loop iterations let what already sits in the OS buffer (a late reply, a hang-up) reach the
        # protocol before the link state and the stale input are judged; one is not enough because the
        # reader callback runs after this task in the iteration that sees the data.
        for _ in range(2):
            await asyncio.sleep(0)

    async def _wait_gap(self) -> None:
        # Sleeps only for what is left of the gap (usually nothing: the caller's own work took longer).
        delay = self._next_send_at - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _ensure_open(self) -> None:
        if self.is_open:
            return
        if self._transport is not None:
            # Lost while idle (e.g. a bridge's idle timeout): no request failed, so reopen at once.
            _LOGGER.debug("%s: connection lost while idle, reopening", self._url)
            self.stats.reconnects += 1
            await self._close_transport()
        remaining = self._retry_at - asyncio.get_running_loop().time()
        if remaining > 0:
            # Fail fast instead of sleeping so that a coordinator poll does not hang on a dead link.
            raise LinkError(f"{self._url}: link down, next reconnect attempt in {remaining:.1f} s")
        await self._connect()

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        protocol = _ReceiveProtocol(self.stats)
        try:
            async with asyncio.timeout(self._connect_timeout):
                transport, _ = await serialx.create_serial_connection(
                    loop,
                    lambda: protocol,
                    self._url,
                    self._baudrate,
                    parity=serialx.Parity.NONE,
                    stopbits=serialx.StopBits.ONE,
                    byte_size=8,
                    exclusive=True,
                )
        except (OSError, serialx.SerialException, ValueError) as err:  # ValueError: malformed socket URL
            self._schedule_reconnect()
            raise LinkError(f"cannot open {self._url}: {str(err) or type(err).__name__}") from err
        self._transport, self._protocol = transport, protocol
        _LOGGER.debug("%s: opened at %d baud", self._url, self._baudrate)

    async def _drop_link(self) -> None:
        await self._close_transport()
        self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        self.stats.reconnects += 1
        self._failures += 1
        delay = min(self._backoff_max, self._backoff_initial * 2 ** (self._failures - 1))
        self._retry_at = asyncio.get_running_loop().time() + delay
        _LOGGER.debug("%s: reconnect in %.2f s (failure %d)", self._url, delay, self._failures)

    async def _close_transport(self) -> None:
        transport = self._transport
        self._transport = self._protocol = None
        if transport is None:
            return
        with contextlib.suppress(OSError, serialx.SerialException):
            transport.close()
        try:
            # A stalled write must not hold up shutdown forever.
            async with asyncio.timeout(self._connect_timeout):
                await transport.wait_closed()
        except TimeoutError:
            transport.abort()
        _LOGGER.debug("%s: closed", self._url)

    # -- Modbus RTU (bms/modbus): the same link, lock, gap and reconnect; framing by length and CRC

    async def modbus_exchange(self, request: ModbusRequest, *, timeout: float | None = None) -> bytes:
        """Send a Modbus request and return its reply's data (see codec.decode_reply).

        Raises LinkError, LinkTimeout, ModbusExceptionError (the slave refused) or FrameError (a reply from the
        right slave that does not fit the request).
        """
        raw = request.encode()
        async with self._lock:
            await self._settle()
            await self._ensure_open()
            await self._wait_gap()
            try:
                frame = await self._modbus_transact(request, raw, self._timeout if timeout is None else timeout)
            finally:
                self._next_send_at = asyncio.get_running_loop().time() + self._gap
        try:
            return decode_reply(request, frame)
        except ModbusExceptionError:
            self.stats.refused += 1
            raise

    async def _modbus_transact(self, request: ModbusRequest, raw: bytes, timeout: float) -> bytes:
        transport, protocol = self._transport, self._protocol
        assert transport is not None
        assert protocol is not None
        protocol.buffer.clear()  # stale input must not be taken for this reply
        self.stats.last_exchange[request.function] = (raw, None)
        cap = (
            asyncio.get_running_loop().time()
            + timeout
            + (len(raw) + request.reply_len) * BITS_PER_BYTE / self._baudrate
        )
        protocol.wake_on_any = True
        try:
            async with asyncio.timeout(timeout) as deadline:
                protocol.expect_reply(deadline, timeout, cap)
                try:
                    transport.write(raw)
                    self.stats.requests += 1
                    self.stats.bytes_out += len(raw)
                    frame = await self._read_modbus_reply(protocol, request, raw)
                except (OSError, serialx.SerialException) as err:
                    raise LinkError(f"{self._url}: connection lost: {err}") from err
                finally:
                    protocol.expect_reply(None)
        except TimeoutError:
            self.stats.timeouts += 1
            if protocol.buffer:
                self.stats.truncated += 1
            raise LinkTimeout(f"{self._url}: no Modbus reply from slave {request.slave} within {timeout} s") from None
        except LinkError:
            await self._drop_link()
            raise
        finally:
            protocol.wake_on_any = False
        self.stats.good_frames += 1
        self.stats.last_exchange[request.function] = (raw, frame)
        self._failures = 0
        return frame

    async def _read_modbus_reply(self, protocol: _ReceiveProtocol, request: ModbusRequest, raw: bytes) -> bytes:
        """The first CRC-valid frame from the slave asked. An echo of the request (a half-duplex adapter) and
        frames of other slaves are skipped; a byte that starts no valid frame is noise and dropped."""
        while True:
            buffer = protocol.buffer
            while buffer:
                if buffer.startswith(raw):
                    del buffer[: len(raw)]  # our own request, echoed
                    continue
                length = reply_frame_length(buffer, request)
                if length is None or len(buffer) < length:
                    break
                candidate = bytes(buffer[:length])
                if not crc_ok(candidate):
                    if candidate[0] == request.slave and candidate[1] & 0x7F == request.function:
                        self.stats.checksum_errors += 1  # our reply, corrupted on the wire
                    del buffer[:1]
                    continue
                del buffer[:length]
                if candidate[0] != request.slave:
                    self.stats.wrong_address += 1
                    continue
                return candidate
            await protocol.wait_for_data()

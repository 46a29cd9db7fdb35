"""SerialLink against a scripted fake BMS: TCP on 127.0.0.1 (socket://) and a pty (plain device path).

Every frame is built with frame.encode_frame; the fake answers whatever its script writes for each request.
"""

import asyncio
import contextlib
import os
import socket
import termios
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from custom_components.lfp_bms.bms.frame import FrameError, RtnError, encode_frame, split_frames
from custom_components.lfp_bms.bms.transport import LinkError, LinkStats, LinkTimeout, SerialLink

VER, CID1 = 0x25, 0x46
ANALOG = 0x42


def request(adr: int = 1, cid2: int = ANALOG, info: bytes = b"\x01") -> bytes:
    return encode_frame(VER, adr, CID1, cid2, info)


def reply(adr: int = 1, rtn: int = 0x00, info: bytes = b"\x11\x22") -> bytes:
    return encode_frame(VER, adr, CID1, rtn, info)


def corrupt(frame: bytes) -> bytes:
    """The same frame with one checksum character changed."""
    bad = b"0" if frame[-2:-1] != b"0" else b"1"
    return frame[:-2] + bad + frame[-1:]


Script = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


class FakeBms:
    """TCP server that hands each received request (SOI..EOI) to a script; the script writes or closes."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.connections = 0
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while not writer.is_closing():
                try:
                    data = await reader.readuntil(b"\r")
                except asyncio.IncompleteReadError, ConnectionError:
                    break
                self.requests.append(data)
                await self.script(data, writer)
                if writer.is_closing():
                    break
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def serve(script: Script) -> AsyncIterator[FakeBms]:
    bms = FakeBms(script)
    server = await asyncio.start_server(bms.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    bms.url = f"socket://127.0.0.1:{port}"
    try:
        yield bms
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def link_to(bms: FakeBms, **kwargs: float | tuple[float, float]) -> AsyncIterator[SerialLink]:
    link = SerialLink(bms.url, **kwargs)  # type: ignore[arg-type]
    try:
        yield link
    finally:
        await link.close()


def answer(*chunks: bytes) -> Script:
    """A script that writes the same chunks for every request."""

    async def script(_request: bytes, writer: asyncio.StreamWriter) -> None:
        for chunk in chunks:
            writer.write(chunk)

    return script


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_reply_is_decoded_and_counted() -> None:
    req, rep = request(), reply()
    async with serve(answer(rep)) as bms, link_to(bms) as link:
        was_open = link.is_open
        frame = await link.exchange(req)
        assert (was_open, link.is_open) == (False, True)  # opened lazily
        assert link.url == bms.url
        assert link.baudrate == 9600
    assert bms.requests == [req]
    assert (frame.ver, frame.adr, frame.cid1, frame.rtn, frame.info, frame.raw) == (VER, 1, CID1, 0, b"\x11\x22", rep)
    assert link.stats.last_exchange == {ANALOG: (req, rep)}
    snapshot = link.stats.snapshot()
    assert snapshot == {
        "requests": 1,
        "good_frames": 1,
        "checksum_errors": 0,
        "timeouts": 0,
        "truncated": 0,
        "wrong_address": 0,
        "refused": 0,
        "reconnects": 0,
        "bytes_out": len(req),
        "bytes_in": len(rep),
    }


async def test_noise_before_soi_and_crlf_are_ignored() -> None:
    # docs/protocol.md §1.1: some senders add LF after the CR; line noise before SOI is dropped.
    rep = reply(info=b"\x0a\x0b")
    async with serve(answer(b"\x00\xff\r\nnoise", rep + b"\n")) as bms, link_to(bms) as link:
        first = await link.exchange(request())
        second = await link.exchange(request())
    assert first.info == second.info == b"\x0a\x0b"
    assert link.stats.good_frames == 2
    assert link.stats.checksum_errors == 0


async def test_corrupted_frame_is_counted_and_reading_continues() -> None:
    good = reply(info=b"\x01\x02")
    async with serve(answer(corrupt(good), good)) as bms, link_to(bms) as link:
        frame = await link.exchange(request())
    assert frame.raw == good
    assert link.stats.checksum_errors == 1
    assert link.stats.good_frames == 1


async def test_frame_cut_off_by_a_new_soi_resyncs() -> None:
    good = reply()
    async with serve(answer(good[:10], good)) as bms, link_to(bms) as link:
        frame = await link.exchange(request())
    assert frame.raw == good


async def test_no_reply_raises_link_timeout_and_keeps_the_link() -> None:
    async def silent(_request: bytes, _writer: asyncio.StreamWriter) -> None:
        return None

    req = request(cid2=0x44)
    async with serve(silent) as bms, link_to(bms, timeout=0.05) as link:
        with pytest.raises(LinkTimeout):
            await link.exchange(req)
        assert link.is_open
        with pytest.raises(LinkTimeout):
            await link.exchange(req, timeout=0.01)
        assert bms.connections == 1
    assert link.stats.timeouts == 2
    assert link.stats.requests == 2
    assert link.stats.reconnects == 0
    assert link.stats.last_exchange == {0x44: (req, None)}


async def test_late_reply_is_not_taken_for_the_next_request() -> None:
    release, late_sent = asyncio.Event(), asyncio.Event()
    late, fresh = reply(info=b"\xde\xad"), reply(info=b"\xbe\xef")

    async def script(req: bytes, writer: asyncio.StreamWriter) -> None:
        if len(fake.requests) == 1:
            await release.wait()
            writer.write(late)
            late_sent.set()
        else:
            writer.write(fresh)

    async with serve(script) as fake, link_to(fake, timeout=0.05) as link:
        with pytest.raises(LinkTimeout):
            await link.exchange(request())
        release.set()
        await late_sent.wait()
        await asyncio.sleep(0.01)  # let the late reply reach the link's receive buffer
        frame = await link.exchange(request())
    assert frame.info == b"\xbe\xef"
    assert link.stats.good_frames == 1


async def test_reply_from_another_address_is_skipped() -> None:
    async with serve(answer(reply(adr=3, info=b"\x03"), reply(adr=2, info=b"\x02"))) as bms, link_to(bms) as link:
        frame = await link.exchange(request(adr=2))
    assert (frame.adr, frame.info) == (2, b"\x02")
    assert link.stats.wrong_address == 1


@pytest.mark.parametrize(("request_adr", "reply_adr"), [(0, 0), (0, 5), (5, 0)])
async def test_address_zero_matches_any(request_adr: int, reply_adr: int) -> None:
    async with serve(answer(reply(adr=reply_adr))) as bms, link_to(bms) as link:
        frame = await link.exchange(request(adr=request_adr))
    assert frame.adr == reply_adr
    assert link.stats.wrong_address == 0


async def test_refusal_raises_rtn_error_and_is_counted() -> None:
    refused = reply(rtn=0x09, info=b"")
    req = request(cid2=0x99)
    async with serve(answer(refused)) as bms, link_to(bms) as link:
        with pytest.raises(RtnError) as caught:
            await link.exchange(req)
        assert link.is_open
    assert caught.value.rtn == 0x09
    assert caught.value.frame is not None
    assert caught.value.frame.raw == refused
    assert link.stats.refused == 1
    assert link.stats.last_exchange[0x99] == (req, refused)


def close_on_first_request(rep: bytes) -> Script:
    """Hang up on the very first request (without answering), answer every later one."""
    seen: list[bytes] = []

    async def script(req: bytes, writer: asyncio.StreamWriter) -> None:
        seen.append(req)
        if len(seen) == 1:
            writer.close()
        else:
            writer.write(rep)

    return script


async def test_lost_connection_fails_fast_during_backoff() -> None:
    rep = reply()
    async with serve(close_on_first_request(rep)) as bms, link_to(bms, reconnect_backoff=(60.0, 60.0)) as link:
        with pytest.raises(LinkError):
            await link.exchange(request())
        assert not link.is_open
        with pytest.raises(LinkError, match="reconnect"):
            await link.exchange(request())
        assert bms.connections == 1  # no reconnect attempt while in backoff
        assert link.stats.requests == 1
        await link.close()  # an explicit close forgets the backoff
        frame = await link.exchange(request())
        assert bms.connections == 2
    assert frame.raw == rep
    assert link.stats.reconnects == 1


async def test_reconnects_once_the_backoff_has_passed() -> None:
    rep = reply()
    async with serve(close_on_first_request(rep)) as bms, link_to(bms, reconnect_backoff=(0.01, 0.01)) as link:
        with pytest.raises(LinkError):
            await link.exchange(request())
        await asyncio.sleep(0.03)  # outlast the 10 ms backoff
        frame = await link.exchange(request())
        assert bms.connections == 2
    assert frame.raw == rep
    assert link.stats.reconnects == 1


async def test_connection_lost_while_idle_reopens_at_once() -> None:
    rep = reply()
    writers: list[asyncio.StreamWriter] = []

    async def script(_request: bytes, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        writer.write(rep)

    async with serve(script) as bms, link_to(bms, reconnect_backoff=(60.0, 60.0)) as link:
        await link.exchange(request())
        writers[0].close()  # a bridge's idle timeout
        await writers[0].wait_closed()
        frame = await link.exchange(request())
        assert bms.connections == 2
    assert frame.raw == rep
    assert link.stats.reconnects == 1


async def test_connection_refused_raises_link_error() -> None:
    link = SerialLink(f"socket://127.0.0.1:{free_port()}", reconnect_backoff=(0.0, 0.0))
    with pytest.raises(LinkError):
        await link.open()
    with pytest.raises(LinkError):
        await link.exchange(request())
    assert not link.is_open
    assert link.stats.reconnects == 2
    assert link.stats.requests == 0
    await link.close()


async def test_unknown_scheme_raises_link_error() -> None:
    link = SerialLink("nosuchscheme://device")
    with pytest.raises(LinkError):
        await link.open()
    await link.close()


async def test_malformed_request_is_rejected_without_io() -> None:
    link = SerialLink("socket://127.0.0.1:1")
    with pytest.raises(FrameError):
        await link.exchange(b"~not a frame\r")
    assert link.stats.snapshot() == LinkStats().snapshot()


async def test_concurrent_exchanges_are_serialised() -> None:
    overlaps: list[bytes] = []

    async def script(req: bytes, writer: asyncio.StreamWriter) -> None:
        # Give an unserialised client the chance to send its next request before this one is answered.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.05):
                overlaps.append(await reader_of[writer].readuntil(b"\r"))
        adr = int(req[3:5], 16)
        writer.write(reply(adr=adr, info=bytes([adr])))

    reader_of: dict[asyncio.StreamWriter, asyncio.StreamReader] = {}
    bms = FakeBms(script)
    original = bms.handle

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reader_of[writer] = reader
        await original(reader, writer)

    bms.handle = handle  # type: ignore[method-assign]
    server = await asyncio.start_server(bms.handle, "127.0.0.1", 0)
    bms.url = f"socket://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        async with link_to(bms) as link:
            await link.open()
            first, second = await asyncio.gather(link.exchange(request(adr=1)), link.exchange(request(adr=2)))
    finally:
        server.close()
        await server.wait_closed()
    assert overlaps == []
    assert (first.adr, first.info, second.adr, second.info) == (1, b"\x01", 2, b"\x02")
    assert bms.requests == [request(adr=1), request(adr=2)]


async def test_gap_separates_reply_and_next_request() -> None:
    loop = asyncio.get_running_loop()
    replied_at: list[float] = []
    received_at: list[float] = []

    async def script(_request: bytes, writer: asyncio.StreamWriter) -> None:
        received_at.append(loop.time())
        writer.write(reply())
        replied_at.append(loop.time())

    async with serve(script) as bms, link_to(bms, gap=0.05) as link:
        await link.exchange(request())
        await link.exchange(request())
    # Same monotonic clock on both sides: the second request cannot leave before the gap has passed.
    assert received_at[1] - replied_at[0] >= 0.05


async def test_set_baudrate_on_a_bridge_keeps_working() -> None:
    rep = reply()
    async with serve(answer(rep)) as bms, link_to(bms) as link:
        await link.set_baudrate(19200)  # closed: remembered for the next open
        await link.exchange(request())
        await link.set_baudrate(115200)  # open: raw TCP bridges accept and ignore it
        frame = await link.exchange(request())
        assert link.baudrate == 115200
        assert bms.connections == 1
    assert frame.raw == rep


class PtyBms:
    """A fake BMS on the master side of a pty; the link opens the slave by its device path."""

    def __init__(self, rep: bytes) -> None:
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        self.reply = rep
        self.requests: list[bytes] = []
        self._buffer = b""
        asyncio.get_running_loop().add_reader(self.master, self._readable)

    def _readable(self) -> None:
        self._buffer += os.read(self.master, 1024)
        frames, self._buffer = split_frames(self._buffer)
        for frame in frames:
            self.requests.append(frame)
            os.write(self.master, self.reply)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)
        os.close(self.slave)


async def test_serial_device_path_over_a_pty() -> None:
    rep = reply(info=bytes(range(40)))
    bms = PtyBms(rep)
    link = SerialLink(bms.path, timeout=2.0)
    try:
        frame = await link.exchange(request())
        assert termios.tcgetattr(bms.slave)[4] == termios.B9600
        await link.set_baudrate(19200)
        assert termios.tcgetattr(bms.slave)[4] == termios.B19200
        again = await link.exchange(request(cid2=0x44))
    finally:
        await link.close()
        bms.close()
    assert frame.raw == again.raw == rep
    assert bms.requests == [request(), request(cid2=0x44)]
    assert not link.is_open


async def test_reply_still_arriving_after_the_timeout_is_accepted() -> None:
    """The deadline runs from the last byte received: a slow reply that keeps coming in is not cut off at
    `timeout`, even though all of it takes several times as long."""
    rep = reply(info=bytes(range(24)))
    size = -(-len(rep) // 10)
    pieces = [rep[i : i + size] for i in range(0, len(rep), size)]

    async def trickle(_request: bytes, writer: asyncio.StreamWriter) -> None:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.1)  # the pacing being tested, not synchronisation: each piece is 0.1 s apart

    # Ten pieces 0.1 s apart take 0.9 s, three times the timeout; each gap is a third of it.
    async with serve(trickle) as bms, link_to(bms, timeout=0.3) as link:
        frame = await link.exchange(request())
    assert len(pieces) == 10
    assert frame.raw == rep
    assert link.stats.timeouts == 0
    assert link.stats.good_frames == 1
    assert link.stats.bytes_in == len(rep)


async def test_endless_garbage_times_out_at_the_longest_frame_time() -> None:
    """A line that never stops sending (noise, a babbling device) keeps pushing the deadline back, but never past
    the wire time of the longest possible frame: the exchange ends with LinkTimeout and the link stays usable."""
    stop = asyncio.Event()
    garbled = corrupt(reply())
    good = reply(info=b"\x05")

    async def babble(req: bytes, writer: asyncio.StreamWriter) -> None:
        if len(bms.requests) > 1:
            writer.write(good)
            return
        while not stop.is_set():
            # Invalid frames and bytes without an EOI, each burst well inside the 0.05 s idle timeout.
            writer.write(garbled + b"~0123456789ABCDEF")
            await writer.drain()
            await asyncio.sleep(0.005)

    # At 115200 baud the longest frame (MAX_FRAME_LEN) takes about 0.36 s: the cap is timeout + that.
    async with serve(babble) as bms, link_to(bms, timeout=0.05, baudrate=115200) as link:
        with pytest.raises(LinkTimeout):
            await link.exchange(request())
        stop.set()
        timed_out = link.stats.snapshot()
        frame = await link.exchange(request())
    assert frame.raw == good
    assert timed_out["timeouts"] == 1
    assert timed_out["good_frames"] == 0
    assert timed_out["truncated"] == 1  # the buffer ended in the start of a frame
    assert timed_out["checksum_errors"] > 1  # more than one burst arrived: the deadline was pushed back
    assert link.stats.good_frames == 1

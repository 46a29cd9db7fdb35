"""The '~' ASCII-hex frame shared by PACE 0x25 and the 0x20 family (Pylontech, Seplos V2, EG4).

Layout (character offsets): SOI '~' | VER 2 | ADR 2 | CID1 2 | CID2/RTN 2 | LENGTH 4 | INFO LENID | CHKSUM 4 | EOI CR.
Every field but SOI and EOI travels as upper-case hex; receivers accept lower case too.
"""

from dataclasses import dataclass
from enum import IntEnum

SOI = 0x7E
EOI = 0x0D
_MAX_LENID = 0xFFF
#: Shortest possible frame: SOI + 12 header chars + 4 checksum chars + EOI.
MIN_FRAME_LEN = 18
#: Longest possible frame: the shortest plus the largest INFO a 12-bit LENID can announce.
MAX_FRAME_LEN = MIN_FRAME_LEN + _MAX_LENID


class BmsError(Exception):
    """Base of every error the protocol library raises."""


class FrameError(BmsError):
    """A frame (or reply payload) is malformed: bad hex, length, checksum or layout."""


class Rtn(IntEnum):
    """Return codes a BMS sends in the CID2 position of a reply (docs/protocol.md §1.5)."""

    OK = 0x00
    VER_ERROR = 0x01
    CHKSUM_ERROR = 0x02
    LCHKSUM_ERROR = 0x03
    CID2_INVALID = 0x04
    FORMAT_ERROR = 0x05
    INVALID_DATA = 0x06
    NO_DATA = 0x07
    OPERATION_REFUSED = 0x09
    ADR_ERROR = 0x90
    INTERNAL_COMM_ERROR = 0x91
    CID1_INVALID = 0xE1
    EXECUTION_FAILURE = 0xE2
    DEVICE_FAULT = 0xE3
    NO_PERMISSION = 0xE4


class RtnError(BmsError):
    """The BMS answered with a non-zero return code."""

    def __init__(self, rtn: int, frame: Frame | None = None) -> None:
        self.rtn = rtn
        self.frame = frame
        try:
            name = Rtn(rtn).name.lower()
        except ValueError:
            name = "unknown"
        self.reason = name
        super().__init__(f"BMS returned RTN 0x{rtn:02X} ({name})")


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame. `cid2` holds RTN in a reply. `raw` is the exact bytes from SOI to EOI."""

    ver: int
    adr: int
    cid1: int
    cid2: int
    info: bytes
    raw: bytes

    @property
    def rtn(self) -> int:
        """The return code of a reply (same field as CID2)."""
        return self.cid2

    def check_rtn(self) -> Frame:
        """Return self when RTN is OK, raise RtnError otherwise."""
        if self.cid2 != Rtn.OK:
            raise RtnError(self.cid2, self)
        return self


def _hex(data: bytes) -> bytes:
    return data.hex().upper().encode("ascii")


def length_field(lenid: int) -> int:
    """LENGTH = LCHKSUM (top nibble) | LENID (12 bits) (docs/protocol.md §1.3)."""
    if not 0 <= lenid <= _MAX_LENID:
        raise FrameError(f"INFO too long: {lenid} characters")
    nibbles = (lenid & 0xF) + ((lenid >> 4) & 0xF) + ((lenid >> 8) & 0xF)
    lchksum = (-nibbles) & 0xF
    return (lchksum << 12) | lenid


def checksum(body: bytes) -> int:
    """CHKSUM over the ASCII characters from VER to the end of INFO (docs/protocol.md §1.4)."""
    return (-sum(body)) & 0xFFFF


def encode_frame(ver: int, adr: int, cid1: int, cid2: int, info: bytes = b"") -> bytes:
    """Build a complete frame from logical fields; `info` is logical bytes (hex-encoded here)."""
    info_hex = _hex(info)
    header = bytes((ver, adr, cid1, cid2)) + length_field(len(info_hex)).to_bytes(2, "big")
    body = _hex(header) + info_hex
    return b"~" + body + _hex(checksum(body).to_bytes(2, "big")) + b"\r"


def _unhex(chars: bytes) -> bytes:
    try:
        return bytes.fromhex(chars.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as err:
        raise FrameError(f"not hex: {chars[:40]!r}") from err


def decode_frame(data: bytes) -> Frame:
    """Decode one frame. Garbage and CR/LF before SOI and a trailing LF are tolerated.

    Raises FrameError for anything malformed. The RTN is *not* checked here (see Frame.check_rtn),
    so that callers can tell "the BMS refused" from "the line is noisy".
    """
    start = data.find(b"~")
    if start < 0:
        raise FrameError("no SOI")
    end = data.find(b"\r", start)
    if end < 0:
        raise FrameError("no EOI")
    raw = data[start : end + 1]
    body = raw[1:-1]
    if len(body) < MIN_FRAME_LEN - 2 or len(body) % 2:
        raise FrameError(f"bad frame length {len(raw)}")
    header = _unhex(body[:12])
    length = int.from_bytes(header[4:6], "big")
    lenid = length & _MAX_LENID
    if length_field(lenid) != length:
        raise FrameError(f"LCHKSUM mismatch in LENGTH {length:04X}")
    if len(body) != 12 + lenid + 4:
        raise FrameError(f"LENID {lenid} does not match frame of {len(raw)} characters")
    sum_chars = body[-4:]
    got = int.from_bytes(_unhex(sum_chars), "big")
    # A sender using lower-case hex may have summed either spelling of its characters; accept both.
    if got not in (checksum(body[:-4]), checksum(body[:-4].upper())):
        raise FrameError(f"CHKSUM mismatch: got {sum_chars.decode(errors='replace')}")
    info = _unhex(body[12 : 12 + lenid])
    return Frame(ver=header[0], adr=header[1], cid1=header[2], cid2=header[3], info=info, raw=raw)


def split_frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Cut complete SOI..EOI candidates out of a receive buffer.

    Returns the candidates (undecoded) and the unconsumed rest, which starts at the last SOI
    (bytes before an SOI are noise and are dropped).
    """
    frames: list[bytes] = []
    while True:
        start = buffer.find(b"~")
        if start < 0:
            return frames, b""
        # A new SOI before the EOI means the earlier frame was cut off: resync on the new one.
        end = buffer.find(b"\r", start)
        if end < 0:
            return frames, buffer[start:]
        nxt = buffer.find(b"~", start + 1, end)
        if nxt >= 0:
            buffer = buffer[nxt:]
            continue
        frames.append(buffer[start : end + 1])
        buffer = buffer[end + 1 :]

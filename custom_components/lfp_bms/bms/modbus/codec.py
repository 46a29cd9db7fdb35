"""Modbus RTU framing: the subset the PACE Modbus map and the Seplos V3 (XZH) map use.

Frame = slave id | function code | data | CRC16 (polynomial 0xA001 reflected, initial 0xFFFF, low byte first).
Function codes: 0x01 read coils (Seplos PIC/EIC), 0x03 read holding registers (PACE), 0x04 read input registers
(Seplos), 0x10 write multiple registers (PACE parameters). An exception reply echoes the function code with bit 7
set and carries one exception code (docs/protocol.md §2; PACE Modbus V1.3 §3.3, XZH V0.1 §2.6).

Reply validation is strict: a reply only becomes data when its CRC is right, it comes from the slave asked, it
answers the function asked and its length is the one the request implies. Anything else is a FrameError (noise,
another slave, a late reply to something else); an exception reply is a ModbusExceptionError (the BMS refused).
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import IntEnum

from ..frame import BmsError, FrameError, RtnError

#: Registers per read the PACE document allows (0x007D) and per write (0x007B); the Modbus spec's own limits.
MAX_READ_REGISTERS = 0x7D
MAX_WRITE_REGISTERS = 0x7B
MAX_READ_COILS = 0x7D0
EXCEPTION_BIT = 0x80
#: slave + function + CRC; the shortest reply (an exception) adds one code byte.
_OVERHEAD = 4


class FunctionCode(IntEnum):
    """The function codes spoken here."""

    READ_COILS = 0x01
    READ_HOLDING_REGISTERS = 0x03
    READ_INPUT_REGISTERS = 0x04
    WRITE_MULTIPLE_REGISTERS = 0x10


class ExceptionCode(IntEnum):
    """Exception codes of the Modbus spec as the XZH document lists them (PACE documents 1-3)."""

    ILLEGAL_FUNCTION = 0x01
    ILLEGAL_DATA_ADDRESS = 0x02
    ILLEGAL_DATA_VALUE = 0x03
    SLAVE_DEVICE_FAILURE = 0x04
    ACKNOWLEDGE = 0x05
    SLAVE_DEVICE_BUSY = 0x06
    MEMORY_PARITY_ERROR = 0x08
    GATEWAY_PATH_UNAVAILABLE = 0x0A
    GATEWAY_TARGET_FAILED = 0x0B
    NO_HISTORY_RECORD = 0x81


class ModbusExceptionError(RtnError):
    """The slave answered with an exception reply: it heard the request and refused it (never retried)."""

    def __init__(self, code: int, function: int) -> None:
        # RtnError's own message names the ASCII protocols' RTN table; a Modbus code means something else.
        BmsError.__init__(self)
        self.rtn = code
        self.frame = None
        self.function = function
        try:
            self.reason = ExceptionCode(code).name.lower()
        except ValueError:
            self.reason = "unknown"
        self.args = (f"Modbus exception 0x{code:02X} ({self.reason}) to function 0x{function:02X}",)


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS of `data`."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(body: bytes) -> bytes:
    """`body` followed by its CRC, low byte first."""
    return body + crc16(body).to_bytes(2, "little")


def crc_ok(frame: bytes) -> bool:
    """True when the last two bytes are the CRC of the rest."""
    return len(frame) >= _OVERHEAD and crc16(frame[:-2]) == int.from_bytes(frame[-2:], "little")


@dataclass(frozen=True, slots=True)
class ModbusRequest:
    """One request: a read of `count` registers/coils from `address`, or a write of `values` (FC 0x10)."""

    slave: int
    function: FunctionCode
    address: int
    count: int
    values: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.slave <= 0xFF or not 0 <= self.address <= 0xFFFF:
            raise ValueError(f"slave {self.slave} / address {self.address} out of range")
        if self.function is FunctionCode.WRITE_MULTIPLE_REGISTERS:
            if not 1 <= len(self.values) <= MAX_WRITE_REGISTERS or self.count != len(self.values):
                raise ValueError(f"a write carries 1-{MAX_WRITE_REGISTERS} values, count = len(values)")
            if any(not 0 <= v <= 0xFFFF for v in self.values):
                raise ValueError("register values are 16-bit")
        else:
            limit = MAX_READ_COILS if self.function is FunctionCode.READ_COILS else MAX_READ_REGISTERS
            if not 1 <= self.count <= limit or self.values:
                raise ValueError(f"a read asks for 1-{limit} items and carries no values")

    @classmethod
    def read(cls, slave: int, function: FunctionCode, address: int, count: int) -> ModbusRequest:
        """A read request."""
        return cls(slave, function, address, count)

    @classmethod
    def write(cls, slave: int, address: int, values: tuple[int, ...]) -> ModbusRequest:
        """A write-multiple-registers request."""
        return cls(slave, FunctionCode.WRITE_MULTIPLE_REGISTERS, address, len(values), values)

    def encode(self) -> bytes:
        """The request frame with CRC."""
        head = bytes((self.slave, self.function)) + self.address.to_bytes(2, "big") + self.count.to_bytes(2, "big")
        if self.function is FunctionCode.WRITE_MULTIPLE_REGISTERS:
            data = b"".join(v.to_bytes(2, "big") for v in self.values)
            head += bytes((len(data),)) + data
        return with_crc(head)

    @property
    def reply_data_len(self) -> int:
        """Data bytes of a normal reply: registers × 2, coils packed 8 per byte, or 4 (address + count echo)."""
        if self.function is FunctionCode.WRITE_MULTIPLE_REGISTERS:
            return 4
        if self.function is FunctionCode.READ_COILS:
            return (self.count + 7) // 8
        return self.count * 2

    @property
    def reply_len(self) -> int:
        """Length of a normal reply frame."""
        if self.function is FunctionCode.WRITE_MULTIPLE_REGISTERS:
            return _OVERHEAD + 4
        return _OVERHEAD + 1 + self.reply_data_len


def reply_frame_length(buffer: bytes | bytearray, request: ModbusRequest) -> int | None:
    """Length of the reply frame `buffer` starts with, judged by its header as an answer to `request`; None while
    the header is incomplete. A header that cannot answer `request` still gets a length (what it claims) so that
    the caller can check its CRC and skip it."""
    if len(buffer) < 3:
        return None
    function = buffer[1]
    if function & EXCEPTION_BIT:
        return _OVERHEAD + 1
    if function in (FunctionCode.READ_COILS, FunctionCode.READ_HOLDING_REGISTERS, FunctionCode.READ_INPUT_REGISTERS):
        return _OVERHEAD + 1 + buffer[2]
    if function == FunctionCode.WRITE_MULTIPLE_REGISTERS:
        return _OVERHEAD + 4
    return request.reply_len


def decode_reply(request: ModbusRequest, frame: bytes) -> bytes:
    """The data of `frame` as the reply to `request`: register bytes, coil bytes, or the write echo.

    Raises FrameError (CRC, slave, function, length or echo wrong) or ModbusExceptionError (a refusal).
    """
    if not crc_ok(frame):
        raise FrameError(f"Modbus CRC mismatch in {frame.hex(' ')}")
    if frame[0] != request.slave:
        raise FrameError(f"Modbus reply from slave {frame[0]}, asked {request.slave}")
    function = frame[1]
    if function == request.function | EXCEPTION_BIT:
        if len(frame) != _OVERHEAD + 1:
            raise FrameError(f"Modbus exception reply of {len(frame)} bytes")
        raise ModbusExceptionError(frame[2], request.function)
    if function != request.function:
        raise FrameError(f"Modbus reply to function 0x{function:02X}, asked 0x{request.function:02X}")
    if len(frame) != request.reply_len:
        raise FrameError(f"Modbus reply of {len(frame)} bytes, expected {request.reply_len}")
    if request.function is FunctionCode.WRITE_MULTIPLE_REGISTERS:
        echo = frame[2:6]
        if echo != request.address.to_bytes(2, "big") + request.count.to_bytes(2, "big"):
            raise FrameError(f"Modbus write echo {echo.hex()} does not match the request")
        return echo
    if frame[2] != request.reply_data_len:
        raise FrameError(f"Modbus byte count {frame[2]}, expected {request.reply_data_len}")
    return frame[3:-2]


def registers(data: bytes) -> tuple[int, ...]:
    """Register values (big-endian 16-bit) of a read reply's data."""
    if len(data) % 2:
        raise FrameError(f"odd register data length {len(data)}")
    return tuple(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))


def coils(data: bytes, count: int) -> tuple[bool, ...]:
    """`count` coil states of a 0x01 reply's data (coil n = bit n % 8 of byte n // 8)."""
    if len(data) * 8 < count:
        raise FrameError(f"{len(data)} coil bytes cannot hold {count} coils")
    return tuple(bool(data[n // 8] >> (n % 8) & 1) for n in range(count))


# -- the slave side (simulator)


def request_frame_length(buffer: bytes | bytearray) -> int | None:
    """Length of the request `buffer` starts with (None while incomplete); unknown functions: 8 (a read's size)."""
    if len(buffer) < 2:
        return None
    if buffer[1] == FunctionCode.WRITE_MULTIPLE_REGISTERS:
        return None if len(buffer) < 7 else 9 + buffer[6]
    return 8


def decode_request(frame: bytes) -> ModbusRequest:
    """A request frame as the slave sees it. FrameError when the CRC or layout is wrong or the function unknown."""
    if not crc_ok(frame):
        raise FrameError("Modbus request CRC mismatch")
    try:
        function = FunctionCode(frame[1])
    except ValueError:
        raise FrameError(f"unsupported function 0x{frame[1]:02X}") from None
    address = int.from_bytes(frame[2:4], "big")
    count = int.from_bytes(frame[4:6], "big")
    try:
        if function is FunctionCode.WRITE_MULTIPLE_REGISTERS:
            data = frame[7:-2]
            if len(data) != frame[6] or len(data) != count * 2:
                raise FrameError("Modbus write request length mismatch")
            return ModbusRequest.write(frame[0], address, registers(data))
        if len(frame) != 8:
            raise FrameError("Modbus read request length mismatch")
        return ModbusRequest.read(frame[0], function, address, count)
    except ValueError as err:
        raise FrameError(str(err)) from err


def encode_read_reply(request: ModbusRequest, data: bytes) -> bytes:
    """A normal reply to a read."""
    return with_crc(bytes((request.slave, request.function, len(data))) + data)


def encode_write_reply(request: ModbusRequest) -> bytes:
    """A normal reply to a write (address and count echoed)."""
    return with_crc(request.encode()[:6])


def encode_exception(request: ModbusRequest, code: int) -> bytes:
    """An exception reply."""
    return with_crc(bytes((request.slave, request.function | EXCEPTION_BIT, code)))


def pack_registers(values: tuple[int, ...] | list[int]) -> bytes:
    """Register values as reply data (signed values are stored two's complement)."""
    return b"".join((v & 0xFFFF).to_bytes(2, "big") for v in values)


def pack_coils(states: tuple[bool, ...] | list[bool]) -> bytes:
    """Coil states as reply data."""
    data = bytearray((len(states) + 7) // 8)
    for n, on in enumerate(states):
        if on:
            data[n // 8] |= 1 << (n % 8)
    return bytes(data)


class ModbusExchange(ABC):
    """One Modbus request → its validated reply data on a link (implemented by the transport)."""

    @abstractmethod
    async def modbus_exchange(self, request: ModbusRequest, *, timeout: float | None = None) -> bytes:
        """Send `request`, return decode_reply's data; raise ModbusExceptionError, FrameError or TransportError."""

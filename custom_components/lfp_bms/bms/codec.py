"""Byte-level reading shared by every protocol family's decoders."""

from .frame import FrameError


class Reader:
    """Sequential big-endian reader over a payload; running out of bytes is a FrameError, never an IndexError."""

    __slots__ = ("_data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self._data = data
        self.pos = pos

    @property
    def remaining(self) -> int:
        """Bytes not read yet."""
        return len(self._data) - self.pos

    def take(self, count: int) -> bytes:
        """The next `count` bytes."""
        if count < 0 or count > self.remaining:
            raise FrameError(f"payload truncated at byte {self.pos}: need {count}, have {self.remaining}")
        chunk = self._data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def rest(self) -> bytes:
        """Everything not read yet."""
        return self.take(self.remaining)

    def uint(self, size: int) -> int:
        """An unsigned big-endian integer of `size` bytes."""
        return int.from_bytes(self.take(size), "big")

    def u8(self) -> int:
        """One unsigned byte."""
        return self.uint(1)

    def u16(self) -> int:
        """Unsigned 16 bits."""
        return self.uint(2)

    def s16(self) -> int:
        """Signed 16 bits."""
        return int.from_bytes(self.take(2), "big", signed=True)

    def u16s(self, count: int) -> tuple[int, ...]:
        """`count` unsigned 16-bit values."""
        return tuple(self.u16() for _ in range(count))

    def count(self, limit: int, what: str) -> int:
        """A count byte, refused above `limit` (a garbled count must not drive a huge read)."""
        value = self.u8()
        if value > limit:
            raise FrameError(f"{what} count {value} exceeds {limit}")
        return value

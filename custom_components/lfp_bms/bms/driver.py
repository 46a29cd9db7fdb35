"""What every protocol family provides to the cluster client, the detector and the simulator.

A driver turns requests into frames and reply frames into the shared models; it owns no link (multi-step
reads such as identity go through the `Exchange` it is handed). The VER and
CID1 it sends are whatever the BMS answered with during detection ("lying" firmwares, docs/protocol.md §1.6).
"""

from abc import ABC, abstractmethod
from enum import StrEnum
from typing import ClassVar

from .frame import Frame, encode_frame
from .models import PackAnalog, PackIdentity, PackStatus

#: INFO COMMAND that asks the master for every pack at once (PACE 0x25 RS232 / Pylon RS232).
ALL_PACKS = 0xFF


class ProtocolName(StrEnum):
    """Protocol families this library speaks."""

    PACE25 = "pace25"
    PYLON = "pylon"
    SEPLOS = "seplos"
    EG4 = "eg4"
    #: Modbus RTU register maps (bms/modbus/): PACE "PACE Modbus" (RS485 protocol code 0x00) and Seplos V3 (XZH).
    PACE_MODBUS = "pace_modbus"
    SEPLOS_V3 = "seplos_v3"

    @property
    def maker(self) -> str:
        """Who makes the BMS that speaks this protocol, as a homeowner knows it (the cluster device's model)."""
        return _MAKERS[self]

    @property
    def label(self) -> str:
        """The protocol by its vendor's name, as the config flow and messages show it (the same in every language)."""
        return _LABELS[self]


_MAKERS = {
    ProtocolName.PACE25: "PACE",
    ProtocolName.PYLON: "Pylontech",
    ProtocolName.SEPLOS: "Seplos",
    ProtocolName.EG4: "EG4",
    ProtocolName.PACE_MODBUS: "PACE",
    ProtocolName.SEPLOS_V3: "Seplos",
}
_LABELS = {
    ProtocolName.PACE25: "PACE",
    ProtocolName.PYLON: "Pylontech",
    ProtocolName.SEPLOS: "Seplos V2",
    ProtocolName.EG4: "EG4",
    ProtocolName.PACE_MODBUS: "PACE Modbus",
    ProtocolName.SEPLOS_V3: "Seplos V3",
}


class Strategy(StrEnum):
    """How a full refresh reaches every pack.

    BROADCAST: one 0x42 and one 0x44 to the master with INFO = FF (fewest exchanges; master link only).
    RELAY: ADR = master, INFO = pack address, one exchange per pack and command.
    BUS: ADR = INFO = pack address, one exchange per pack and command (RS485 bus, every pack answers itself).
    """

    BROADCAST = "broadcast"
    RELAY = "relay"
    BUS = "bus"


class ProtocolDriver(ABC):
    """Encoder/decoder set of one protocol family."""

    name: ClassVar[ProtocolName]
    default_ver: ClassVar[int]
    default_cid1: ClassVar[int]
    #: Strategies this family supports, best first.
    strategies: ClassVar[tuple[Strategy, ...]]

    def __init__(self, ver: int | None = None, cid1: int | None = None) -> None:
        self.ver = self.default_ver if ver is None else ver
        self.cid1 = self.default_cid1 if cid1 is None else cid1

    def request(self, adr: int, cid2: int, info: bytes = b"") -> bytes:
        """A request frame with this driver's VER and CID1."""
        return encode_frame(self.ver, adr, self.cid1, cid2, info)

    @abstractmethod
    def analog_request(self, adr: int, pack: int) -> bytes:
        """0x42 request; `pack` is the INFO COMMAND (a pack address, or ALL_PACKS)."""

    @abstractmethod
    def status_request(self, adr: int, pack: int) -> bytes:
        """0x44 request; `pack` as for analog_request."""

    @abstractmethod
    def decode_analog(self, frame: Frame, command: int | None = None) -> list[PackAnalog]:
        """Every pack record of a 0x42 reply (one, or all packs of a broadcast). Raises FrameError.

        `command` is the request's pack selector when the caller knows it: a reply that does not fit it is a
        FrameError (a late 0x44 broadcast reply taken for the 0x42 answer must not decode as a pack record).
        """

    @abstractmethod
    def decode_status(self, frame: Frame, command: int | None = None) -> list[PackStatus]:
        """Every pack record of a 0x44 reply; `command` as for decode_analog. Raises FrameError."""

    @abstractmethod
    async def read_identity(self, exchange: Exchange, adr: int) -> PackIdentity:
        """Identity of the pack at `adr` using whatever commands the family has."""


class Exchange(ABC):
    """One request → one reply on a link (implemented by the transport)."""

    @abstractmethod
    async def exchange(self, request: bytes, *, timeout: float | None = None) -> Frame:
        """Send `request`, return the decoded reply with RTN checked (RtnError) or raise TransportError."""

"""What detection reports while it runs: the stage and what is known so far, as data (a UI words it)."""

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from .driver import ProtocolName


class Stage(StrEnum):
    """Detection stages, in the order they run."""

    BAUD = "baud"
    PROTOCOL = "protocol"
    PACK_ADDRESSES = "pack addresses"
    IDENTITY = "identity"
    FIRST_READ = "first read"


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectProgress:
    """The stage detection has reached and what it knows so far."""

    stage: Stage
    baudrate: int
    #: Modbus RTU is being tried (PACE Modbus, Seplos V3) rather than the ASCII protocols.
    modbus: bool = False
    protocol: ProtocolName | None = None
    #: Number of packs found, from the identity stage on.
    packs: int | None = None

    def __str__(self) -> str:
        """As the CLI prints it: "baud 9600", "baud 9600 (Modbus)", "protocol pace25", "identity"…"""
        if self.stage is Stage.BAUD:
            return f"baud {self.baudrate}" + (" (Modbus)" if self.modbus else "")
        if self.stage is Stage.PROTOCOL:
            return f"protocol {self.protocol}"
        return str(self.stage)


type Progress = Callable[[DetectProgress], None]

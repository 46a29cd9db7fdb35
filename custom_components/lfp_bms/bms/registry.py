"""One place that maps a protocol name to its driver class."""

from .driver import ProtocolDriver, ProtocolName
from .family20 import Eg4Driver, PylonDriver, SeplosDriver
from .pace import PaceDriver

DRIVERS: dict[ProtocolName, type[ProtocolDriver]] = {
    ProtocolName.PACE25: PaceDriver,
    ProtocolName.PYLON: PylonDriver,
    ProtocolName.SEPLOS: SeplosDriver,
    ProtocolName.EG4: Eg4Driver,
}


def make_driver(protocol: ProtocolName, *, ver: int | None = None, cid1: int | None = None) -> ProtocolDriver:
    """A driver for `protocol` speaking the VER/CID1 the BMS answered with."""
    return DRIVERS[protocol](ver=ver, cid1=cid1)

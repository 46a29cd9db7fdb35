"""One place that maps a protocol name to its driver class."""

from .driver import ProtocolDriver, ProtocolName
from .family20 import Eg4Driver, PylonDriver, SeplosDriver
from .modbus.base import ModbusDriver
from .modbus.pace_modbus import PaceModbusDriver
from .modbus.seplos_v3 import SeplosV3Driver
from .pace import PaceDriver

DRIVERS: dict[ProtocolName, type[ProtocolDriver]] = {
    ProtocolName.PACE25: PaceDriver,
    ProtocolName.PYLON: PylonDriver,
    ProtocolName.SEPLOS: SeplosDriver,
    ProtocolName.EG4: Eg4Driver,
}
#: Register protocols (Modbus RTU): read pack by pack with read_pack instead of 0x42/0x44 frames.
MODBUS_DRIVERS: dict[ProtocolName, type[ModbusDriver]] = {
    ProtocolName.PACE_MODBUS: PaceModbusDriver,
    ProtocolName.SEPLOS_V3: SeplosV3Driver,
}


def make_driver(
    protocol: ProtocolName, *, ver: int | None = None, cid1: int | None = None
) -> ProtocolDriver | ModbusDriver:
    """A driver for `protocol` speaking the VER/CID1 the BMS answered with (Modbus drivers ignore both)."""
    if protocol in MODBUS_DRIVERS:
        return MODBUS_DRIVERS[protocol]()
    return DRIVERS[protocol](ver=ver, cid1=cid1)


def make_frame_driver(protocol: ProtocolName, *, ver: int | None = None, cid1: int | None = None) -> ProtocolDriver:
    """A driver of a '~' frame protocol (KeyError for a Modbus one)."""
    return DRIVERS[protocol](ver=ver, cid1=cid1)

"""Finding PACE Modbus and Seplos V3 packs on an RS485 link. Reads only: nothing is ever written while detecting.

Per baud rate (PACE's documented 9600, Seplos V3's 19200): ask the likely first addresses (PACE master 1 or a
stand-alone 0; Seplos DIP 0 or 1) the two identifying reads, in the order the baud rate makes likely:
* FC 0x04, 10 registers at 0x1700: a Seplos V3 answers its factory name "XZH-ElecTech Co.,Ltd" (how
  dbus-serialbattery identifies it); a PACE pack has no input registers and refuses or stays silent.
* FC 0x03, registers 0-36: a PACE Modbus pack answers its status block (which must decode).
Then every other address 0-15 is asked the identifying read of the map found (each pack answers only itself).
"""

import logging
from collections.abc import Sequence

from ..driver import ProtocolName
from ..frame import BmsError
from ..progress import DetectProgress, Progress, Stage
from ..transport import LinkError, SerialLink
from .codec import registers
from .pace_modbus import PaceModbusDriver, decode_status_block
from .seplos_v3 import SeplosV3Driver, is_factory_name

_LOGGER = logging.getLogger(__name__)

MODBUS_BAUDS = (9600, 19200)
MAX_ADDRESS = 15
PROBE_TIMEOUT = 0.5
SCAN_TIMEOUT = 0.35


async def _is_seplos_v3(link: SerialLink, address: int, timeout: float) -> bool:
    try:
        return is_factory_name(await link.modbus_exchange(SeplosV3Driver.factory_request(address), timeout=timeout))
    except LinkError:
        raise
    except BmsError as err:
        _LOGGER.debug("Seplos V3 probe of %s: %s", address, err)
        return False


async def _is_pace_modbus(link: SerialLink, address: int, timeout: float) -> bool:
    try:
        data = await link.modbus_exchange(PaceModbusDriver.status_request(address), timeout=timeout)
        decode_status_block(registers(data), address)
    except LinkError:
        raise
    except BmsError as err:
        _LOGGER.debug("PACE Modbus probe of %s: %s", address, err)
        return False
    return True


async def detect_modbus(
    link: SerialLink, *, bauds: Sequence[int] = MODBUS_BAUDS, progress: Progress | None = None
) -> tuple[ProtocolName, int, list[int]] | None:
    """(protocol, baud rate, slave ids answering) of the first Modbus map found, or None. Raises LinkError."""
    report = progress or (lambda step: None)
    for baud in bauds:
        report(DetectProgress(stage=Stage.BAUD, baudrate=baud, modbus=True))
        await link.set_baudrate(baud)
        order = (
            (ProtocolName.SEPLOS_V3, ProtocolName.PACE_MODBUS)
            if baud == SeplosV3Driver.default_baudrate
            else (ProtocolName.PACE_MODBUS, ProtocolName.SEPLOS_V3)
        )
        for address in (1, 0):
            for protocol in order:
                if await _identify(link, protocol, address, PROBE_TIMEOUT):
                    report(DetectProgress(stage=Stage.PROTOCOL, baudrate=baud, modbus=True, protocol=protocol))
                    report(DetectProgress(stage=Stage.PACK_ADDRESSES, baudrate=baud, modbus=True, protocol=protocol))
                    return protocol, baud, await _scan(link, protocol, address)
    return None


async def _identify(link: SerialLink, protocol: ProtocolName, address: int, timeout: float) -> bool:
    if protocol is ProtocolName.SEPLOS_V3:
        return await _is_seplos_v3(link, address, timeout)
    return await _is_pace_modbus(link, address, timeout)


async def _scan(link: SerialLink, protocol: ProtocolName, first: int) -> list[int]:
    """Every slave id 0-15 answering the map's identifying read, the one found included."""
    found = [first]
    for address in range(MAX_ADDRESS + 1):
        if address != first and await _identify(link, protocol, address, SCAN_TIMEOUT):
            found.append(address)
    return sorted(found)

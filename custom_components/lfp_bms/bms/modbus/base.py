"""What a Modbus register map provides to the cluster client, the detector and the control layer.

A Modbus driver reads each pack by its own slave id (no master relays another pack's registers: nkinnan for PACE,
XZH V0.1 §1.2 "BMS response which is self address only"), so the only strategy is BUS.
"""

from abc import ABC, abstractmethod
from typing import ClassVar

from ..driver import ProtocolName, Strategy
from ..models import PackAnalog, PackIdentity, PackStatus, SystemInfo
from .codec import ModbusExchange


class ModbusDriver(ABC):
    """Reads one register map. `ver`/`cid1` exist for LinkConfig only (Modbus has neither): always 0."""

    name: ClassVar[ProtocolName]
    #: Line rate the map's document names (the detector tries it first).
    default_baudrate: ClassVar[int]
    default_ver: ClassVar[int] = 0
    default_cid1: ClassVar[int] = 0
    strategies: ClassVar[tuple[Strategy, ...]] = (Strategy.BUS,)

    def __init__(self, ver: int | None = None, cid1: int | None = None) -> None:
        self.ver = self.default_ver
        self.cid1 = self.default_cid1

    @abstractmethod
    async def read_pack(self, link: ModbusExchange, address: int) -> tuple[PackAnalog, PackStatus]:
        """Analog values and status of the pack with slave id `address`."""

    @abstractmethod
    async def read_identity(self, link: ModbusExchange, address: int) -> PackIdentity:
        """Identity strings of the pack with slave id `address`."""

    async def read_system(self, link: ModbusExchange, address: int) -> SystemInfo | None:
        """The system block a master keeps for the whole group, None where the map has none."""
        return None

"""Seplos V3 / XZH "BMS48100/48200" Modbus RTU ("XZH BMS Modbus RTU Protocol" V0.1, 2023-02-09; docs/protocol.md §2.2).

19200 8N1; each BMS answers only its own slave id (DIP 0x00-0x0F). Per pack and poll: PIA (FC 0x04, 0x1000, 17
registers), PIB (FC 0x04, 0x1100, 26 registers) and PIC (FC 0x01, coils 0x1200-0x128F). The master also keeps the
group's totals: EIA (0x2000, 26 registers; 32-bit values low word first, as the captured replies show) and EIB
(0x2100, 22 registers). VIA (0x1700) holds the identity strings; its factory name identifies the map.

Read-only here: the map documents control writes (0x1500-0x1518) but no public capture confirms their semantics.
"""

from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import ClassVar

from ..driver import ProtocolName
from ..frame import FrameError
from ..models import Condition, Fault, PackAnalog, PackIdentity, PackStatus, SystemInfo
from .base import ModbusDriver
from .codec import FunctionCode, ModbusExceptionError, ModbusExchange, ModbusRequest, registers

BAUDRATE = 19200
#: 0.1 K temperatures: the unused sensor slots read 0x0AAB = 2731, i.e. 0.0 °C (captured PIB, see tests).
KELVIN_OFFSET = 2731
PIA_START, PIA_COUNT = 0x1000, 0x11
PIB_START, PIB_COUNT = 0x1100, 0x1A
PIC_START, PIC_COUNT = 0x1200, 0x90
VIA_START, VIA_COUNT = 0x1700, 0x33
EIA_START, EIA_COUNT = 0x2000, 0x1A
EIB_START, EIB_COUNT = 0x2100, 0x16
#: VIA 0x1700, 20 ASCII: how dbus-serialbattery tells a Seplos V3 from other Modbus slaves.
FACTORY_NAME = "XZH-ElecTech Co.,Ltd"
FACTORY_REGISTERS = 10

#: PIC byte offsets (coil offset / 8): each event word of the document is one byte of the FC 0x01 reply.
PIC_CELL_LOW = (0, 1)
PIC_CELL_HIGH = (2, 3)
PIC_TEMP_LOW = 4
PIC_TEMP_HIGH = 5
PIC_BALANCING = (6, 7)
PIC_SYSTEM = 8
PIC_VOLTAGE = 9
PIC_CELL_TEMPERATURE = 10
PIC_ENVIRONMENT = 11
PIC_CURRENT = 12
PIC_CURRENT_2 = 13
PIC_CAPACITY = 14
PIC_FET = 15
PIC_FAULT = 17

type Events = Mapping[int, tuple[Condition, bool]]
#: (byte, bit) → (condition, is protection) for TB02, TB03, TB04, TB05, TB16, TB06.
EVENT_BITS: Mapping[int, Events] = {
    PIC_VOLTAGE: {
        0: (Condition.CELL_OVERVOLTAGE, False),
        1: (Condition.CELL_OVERVOLTAGE, True),
        2: (Condition.CELL_UNDERVOLTAGE, False),
        3: (Condition.CELL_UNDERVOLTAGE, True),
        4: (Condition.PACK_OVERVOLTAGE, False),
        5: (Condition.PACK_OVERVOLTAGE, True),
        6: (Condition.PACK_UNDERVOLTAGE, False),
        7: (Condition.PACK_UNDERVOLTAGE, True),
    },
    PIC_CELL_TEMPERATURE: {
        0: (Condition.CHARGE_OVERTEMPERATURE, False),
        1: (Condition.CHARGE_OVERTEMPERATURE, True),
        2: (Condition.CHARGE_UNDERTEMPERATURE, False),
        3: (Condition.CHARGE_UNDERTEMPERATURE, True),
        4: (Condition.DISCHARGE_OVERTEMPERATURE, False),
        5: (Condition.DISCHARGE_OVERTEMPERATURE, True),
        6: (Condition.DISCHARGE_UNDERTEMPERATURE, False),
        7: (Condition.DISCHARGE_UNDERTEMPERATURE, True),
    },
    PIC_ENVIRONMENT: {
        0: (Condition.ENVIRONMENT_OVERTEMPERATURE, False),
        1: (Condition.ENVIRONMENT_OVERTEMPERATURE, True),
        2: (Condition.ENVIRONMENT_UNDERTEMPERATURE, False),
        3: (Condition.ENVIRONMENT_UNDERTEMPERATURE, True),
        4: (Condition.MOSFET_OVERTEMPERATURE, False),
        5: (Condition.MOSFET_OVERTEMPERATURE, True),
    },
    PIC_CURRENT: {
        0: (Condition.CHARGE_OVERCURRENT, False),
        1: (Condition.CHARGE_OVERCURRENT, True),
        2: (Condition.CHARGE_OVERCURRENT, True),
        3: (Condition.DISCHARGE_OVERCURRENT, False),
        4: (Condition.DISCHARGE_OVERCURRENT, True),
        5: (Condition.DISCHARGE_OVERCURRENT_2, True),
        6: (Condition.SHORT_CIRCUIT, True),
    },
    # TB16: the latched (locked-out) forms of the same protections.
    PIC_CURRENT_2: {
        0: (Condition.SHORT_CIRCUIT, True),
        2: (Condition.CHARGE_OVERCURRENT, True),
        3: (Condition.DISCHARGE_OVERCURRENT_2, True),
    },
    PIC_CAPACITY: {
        2: (Condition.LOW_SOC, False),
        3: (Condition.LOW_SOC, True),
        4: (Condition.CELL_IMBALANCE, False),
    },
}
#: TB15 hard faults; bit 7 (aerosol alarm) is the fire condition, a protection.
FAULT_BITS: Mapping[int, Fault] = {
    0: Fault.TEMPERATURE_SENSOR,
    1: Fault.SAMPLING,
    2: Fault.CHARGE_MOSFET,
    3: Fault.DISCHARGE_MOSFET,
    4: Fault.CELL,
    5: Fault.VOLTAGE_SENSOR,
    6: Fault.POWER_SWITCH,
}
FAULT_AEROSOL = 7
#: TB09 system state and TB07 FET state bits.
SYSTEM_DISCHARGE, SYSTEM_CHARGE, SYSTEM_FULL = 0, 1, 3
FET_DISCHARGE, FET_CHARGE, FET_HEATER = 0, 1, 3


def _signed(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


def _celsius(raw: int) -> float:
    return round((raw - KELVIN_OFFSET) / 10, 1)


def _bit(byte: int, bit: int) -> bool:
    return bool(byte >> bit & 1)


def decode_pia_pib(pia: Sequence[int], pib: Sequence[int], address: int) -> PackAnalog:
    """PIA (17 registers) and PIB (26 registers) of one pack → its analog values."""
    if len(pia) != PIA_COUNT or len(pib) != PIB_COUNT:
        raise FrameError(f"Seplos V3 PIA/PIB of {len(pia)}/{len(pib)} registers, expected {PIA_COUNT}/{PIB_COUNT}")
    cells = list(pib[:16])
    while cells and cells[-1] == 0:
        cells.pop()
    cell_temps = tuple(_celsius(raw) for raw in pib[0x10:0x14])
    environment = _celsius(pib[0x18])
    power = _celsius(pib[0x19])
    return PackAnalog(
        address=address,
        cell_voltages_mv=tuple(cells),
        temperatures_c=(*cell_temps, environment, power),
        cell_temperatures_c=cell_temps,
        mosfet_temperature_c=power,
        environment_temperature_c=environment,
        current_a=_signed(pia[1]) / 100,
        voltage_v=pia[0] / 100,
        remaining_ah=pia[2] / 100,
        full_ah=pia[3] / 100,
        design_ah=None,
        cycles=pia[7],
        soc_pct=pia[5] / 10,
        soh_pct=pia[6] / 10,
        soc_reported=True,
        extra={
            "discharged_ah": pia[4] * 10.0,
            "max_discharge_current_a": float(pia[0x0F]),
            "max_charge_current_a": float(pia[0x10]),
        },
    )


def decode_pic(data: bytes, address: int, cell_count: int = 16, sensor_count: int = 4) -> PackStatus:
    """PIC coils (18 bytes of an FC 0x01 reply for 0x90 coils) → status."""
    if len(data) != PIC_COUNT // 8:
        raise FrameError(f"Seplos V3 PIC of {len(data)} bytes, expected {PIC_COUNT // 8}")
    protections: set[Condition] = set()
    warnings: set[Condition] = set()
    for index, table in EVENT_BITS.items():
        for bit, (condition, protection) in table.items():
            if _bit(data[index], bit):
                (protections if protection else warnings).add(condition)
    faults = {fault for bit, fault in FAULT_BITS.items() if _bit(data[PIC_FAULT], bit)}
    if _bit(data[PIC_FAULT], FAULT_AEROSOL):
        protections.add(Condition.FIRE)
    low = int.from_bytes(bytes(data[i] for i in reversed(PIC_CELL_LOW)), "big")
    high = int.from_bytes(bytes(data[i] for i in reversed(PIC_CELL_HIGH)), "big")
    balance = int.from_bytes(bytes(data[i] for i in reversed(PIC_BALANCING)), "big")
    cells = min(max(cell_count, 0), 16)
    sensors = min(max(sensor_count, 0), 8)
    system, fet = data[PIC_SYSTEM], data[PIC_FET]
    return PackStatus(
        address=address,
        protections=frozenset(protections),
        warnings=frozenset(warnings),
        faults=frozenset(faults),
        charge_mos_on=_bit(fet, FET_CHARGE),
        discharge_mos_on=_bit(fet, FET_DISCHARGE),
        charging=_bit(system, SYSTEM_CHARGE),
        discharging=_bit(system, SYSTEM_DISCHARGE),
        heater_on=_bit(fet, FET_HEATER),
        fully_charged=_bit(system, SYSTEM_FULL),
        balancing_cells=tuple(n + 1 for n in range(16) if balance >> n & 1),
        # Alarm value codes as the 0x44 family codes them: 01 below the limit, 02 above.
        cell_alarm_codes=tuple(2 if high >> n & 1 else 1 if low >> n & 1 else 0 for n in range(cells)),
        temperature_alarm_codes=tuple(
            2 if _bit(data[PIC_TEMP_HIGH], n) else 1 if _bit(data[PIC_TEMP_LOW], n) else 0 for n in range(sensors)
        ),
        raw=bytes(data),
    )


def _u32(values: Sequence[int], index: int) -> int:
    """A 32-bit value stored low word first (captured EIA replies)."""
    return values[index] | values[index + 1] << 16


def _s32(values: Sequence[int], index: int) -> int:
    value = _u32(values, index)
    return value - (1 << 32) if value & 0x80000000 else value


def _ids(bitmap: int) -> tuple[int, ...]:
    return tuple(n for n in range(32) if bitmap >> n & 1)


def decode_system(eia: Sequence[int], eib: Sequence[int] | None) -> SystemInfo:
    """EIA (26 registers) and, when the master answered it, EIB (22 registers)."""
    if len(eia) != EIA_COUNT or (eib is not None and len(eib) != EIB_COUNT):
        raise FrameError("Seplos V3 EIA/EIB of unexpected size")
    return SystemInfo(
        voltage_v=_u32(eia, 0) / 100,
        current_a=_s32(eia, 2) / 10,
        remaining_ah=_u32(eia, 4) / 100,
        full_ah=_u32(eia, 6) / 100,
        discharged_ah=_u32(eia, 8) * 10.0,
        rated_ah=_u32(eia, 10) / 100,
        online_packs=_ids(_u32(eia, 12)),
        protected_packs=_ids(_u32(eia, 14)),
        max_discharge_current_a=_u32(eia, 16) / 10,
        max_charge_current_a=_u32(eia, 18) / 10,
        suggested_max_voltage_v=eia[20] / 10,
        suggested_min_voltage_v=eia[21] / 10,
        pack_count=eia[22],
        cycles=eia[23],
        soc_pct=eia[24] / 10,
        soh_pct=eia[25] / 10,
        # EIB: only the voltage extremes; the captured temperature words disagree with the document's units.
        max_cell_mv=None if eib is None else eib[0],
        min_cell_mv=None if eib is None else eib[1],
        max_pack_voltage_v=None if eib is None else eib[4] / 100,
        min_pack_voltage_v=None if eib is None else eib[5] / 100,
    )


def decode_text(data: bytes) -> str | None:
    """NUL-padded ASCII; None when empty."""
    text = data.split(b"\x00", 1)[0].decode("ascii", errors="replace").strip()
    return text or None


def decode_identity(data: bytes) -> PackIdentity:
    """VIA 0x1700-0x1732: factory name 20, device name 20, firmware 2, BMS SN 30, pack SN 30 ASCII."""
    if len(data) != VIA_COUNT * 2:
        raise FrameError(f"Seplos V3 VIA of {len(data)} bytes, expected {VIA_COUNT * 2}")
    firmware = decode_text(data[40:42])
    return PackIdentity(
        manufacturer=decode_text(data[:20]),
        model=decode_text(data[20:40]),
        # Two characters, one digit each: "15" is version 1.5 (dbus-serialbattery shows it so).
        firmware=".".join(firmware) if firmware else None,
        bms_serial=decode_text(data[42:72]),
        pack_serial=decode_text(data[72:102]),
    )


def is_factory_name(data: bytes) -> bool:
    """The 0x1700 read (10 registers) of a Seplos V3 names XZH."""
    return decode_text(data) == FACTORY_NAME


class SeplosV3Driver(ModbusDriver):
    """Seplos V3: PIA, PIB and PIC per pack and poll; EIA/EIB from the master when it answers them."""

    name: ClassVar[ProtocolName] = ProtocolName.SEPLOS_V3
    default_baudrate: ClassVar[int] = BAUDRATE

    @staticmethod
    def factory_request(address: int) -> ModbusRequest:
        """The detector's probe: 10 input registers at 0x1700."""
        return ModbusRequest.read(address, FunctionCode.READ_INPUT_REGISTERS, VIA_START, FACTORY_REGISTERS)

    @staticmethod
    def _input(address: int, start: int, count: int) -> ModbusRequest:
        return ModbusRequest.read(address, FunctionCode.READ_INPUT_REGISTERS, start, count)

    async def read_pack(self, link: ModbusExchange, address: int) -> tuple[PackAnalog, PackStatus]:
        pia = registers(await link.modbus_exchange(self._input(address, PIA_START, PIA_COUNT)))
        pib = registers(await link.modbus_exchange(self._input(address, PIB_START, PIB_COUNT)))
        analog = decode_pia_pib(pia, pib, address)
        request = ModbusRequest.read(address, FunctionCode.READ_COILS, PIC_START, PIC_COUNT)
        status = decode_pic(await link.modbus_exchange(request), address, len(analog.cell_voltages_mv))
        return analog, status

    async def read_identity(self, link: ModbusExchange, address: int) -> PackIdentity:
        return decode_identity(await link.modbus_exchange(self._input(address, VIA_START, VIA_COUNT)))

    async def read_system(self, link: ModbusExchange, address: int) -> SystemInfo | None:
        """EIA/EIB of the master at `address`; None when it refuses EIA (not a master, or an older firmware)."""
        try:
            eia = registers(await link.modbus_exchange(self._input(address, EIA_START, EIA_COUNT)))
        except ModbusExceptionError:
            return None
        eib = None
        with suppress(ModbusExceptionError):
            eib = registers(await link.modbus_exchange(self._input(address, EIB_START, EIB_COUNT)))
        return decode_system(eia, eib)

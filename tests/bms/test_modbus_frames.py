"""Modbus RTU codec and the PACE Modbus / Seplos V3 decoders against real frames from public sources.

Frames and their sources: tests/data/captures.md §E (docs/design.md "Modbus").
* SEPLOS_SG16S: syssi/esphome-seplos-bms `docs/pdus/v3/SG16S200A-SP57B-A-all-frames.txt` — a Seplos V3 master
  (slave 0x00) and pack 0x01 on RS485, every frame CRC-valid as captured.
* SEPLOS_SP05B: syssi/esphome-seplos-bms `docs/pdus/v3/SP05B2312190075-coil-frames.txt` (PIC reply, CRC-valid as
  captured) and `...-all-frames.txt` (EIB reply). The logger of that capture wrote every 0x0A byte as 0x5C; the
  EIB frame below has those bytes restored, which its CRC confirms (the test checks the CRC, so a wrong
  restoration fails).
* PACE_REQUESTS: the requests ESPHome's modbus_controller sent to PACE Modbus packs in syssi/esphome-pace-bms
  issues #1, #8 and #27 (uart_debug ">>>" lines). No public PACE Modbus *reply* capture was found.
Expected values follow the units of the documents (XZH BMS Modbus RTU Protocol V0.1; PACE BMS Modbus Protocol for
RS485 V1.3) and are cross-checked between independent blocks of the same capture (pack vs system block).
"""

import re
from pathlib import Path

import pytest

from custom_components.lfp_bms.bms import pace_params as pp
from custom_components.lfp_bms.bms.frame import FrameError
from custom_components.lfp_bms.bms.modbus import pace_modbus as pm
from custom_components.lfp_bms.bms.modbus import seplos_v3 as s3
from custom_components.lfp_bms.bms.modbus.codec import (
    FunctionCode,
    ModbusExceptionError,
    ModbusRequest,
    crc16,
    decode_reply,
    decode_request,
    registers,
)
from custom_components.lfp_bms.bms.models import Condition

#: Frames of tests/data/captures.md §E, by key ("E.2" → bytes).
CAPTURES = Path(__file__).resolve().parents[1] / "data" / "captures.md"
_RTU_ROW = re.compile(r"^\| (E\.\d+) \|.*`rtu:([0-9A-Fa-f ]+)`", re.MULTILINE)
FRAMES = {key: bytes.fromhex(hexes) for key, hexes in _RTU_ROW.findall(CAPTURES.read_text(encoding="utf-8"))}

# SEPLOS SG16S200A-SP57B-A
EIA_REQUEST, EIA_REPLY = FRAMES["E.1"], FRAMES["E.2"]
EIB_26_REQUEST, EIB_26_REFUSED = FRAMES["E.3"], FRAMES["E.4"]
VIA_REQUEST, VIA_REPLY = FRAMES["E.5"], FRAMES["E.6"]
SFA_REQUEST, SFA_REFUSED = FRAMES["E.7"], FRAMES["E.8"]
PIA_REQUEST, PIA_REPLY = FRAMES["E.9"], FRAMES["E.10"]
PIB_REQUEST, PIB_REPLY = FRAMES["E.11"], FRAMES["E.12"]
# SEPLOS SP05B2312190075
PIC_REPLY, EIB_REPLY = FRAMES["E.13"], FRAMES["E.14"]
# PACE Modbus requests: (frame, start, count) as ESPHome sent them.
PACE_REQUESTS = (
    (FRAMES["E.15"], 0, 8),
    (FRAMES["E.16"], 9, 4),
    (FRAMES["E.17"], 15, 22),
    (FRAMES["E.18"], 60, 55),  # the parameter block 60-114
    (FRAMES["E.19"], 0, 120),
)


def read(slave: int, function: FunctionCode, start: int, count: int) -> ModbusRequest:
    return ModbusRequest.read(slave, function, start, count)


@pytest.mark.parametrize(("frame", "start", "count"), PACE_REQUESTS)
def test_pace_requests_encode_as_captured(frame: bytes, start: int, count: int) -> None:
    """Our FC 0x03 requests are byte for byte what other PACE Modbus clients sent (CRC included)."""
    assert read(1, FunctionCode.READ_HOLDING_REGISTERS, start, count).encode() == frame
    assert decode_request(frame) == read(1, FunctionCode.READ_HOLDING_REGISTERS, start, count)


def test_pace_poll_request_is_the_documented_block() -> None:
    """The poll reads registers 0-36 of the slave at the DIP address, FC 0x03 (PACE V1.3 §3.1, §4.1)."""
    request = pm.PaceModbusDriver.status_request(5)
    assert request.encode()[:6] == bytes((5, 0x03, 0, 0, 0, 37))


@pytest.mark.parametrize(
    ("request_frame", "slave", "function", "start", "count"),
    [
        (EIA_REQUEST, 0, FunctionCode.READ_INPUT_REGISTERS, 0x2000, 0x1A),
        (VIA_REQUEST, 0, FunctionCode.READ_INPUT_REGISTERS, 0x1700, 0x33),
        (PIA_REQUEST, 1, FunctionCode.READ_INPUT_REGISTERS, 0x1000, 0x11),
        (PIB_REQUEST, 1, FunctionCode.READ_INPUT_REGISTERS, 0x1100, 0x1A),
        # As captured: 0x0500 coils from 0x1400 (SFA), which the master refuses (exception 02).
        (SFA_REQUEST, 0, FunctionCode.READ_COILS, 0x1400, 0x500),
    ],
)
def test_seplos_requests_encode_as_captured(
    request_frame: bytes, slave: int, function: FunctionCode, start: int, count: int
) -> None:
    assert read(slave, function, start, count).encode() == request_frame


def test_crc_of_captured_frames() -> None:
    """CRC-16/MODBUS: every captured frame ends in the CRC of the rest, low byte first."""
    for frame in (EIA_REPLY, VIA_REPLY, PIA_REPLY, PIB_REPLY, PIC_REPLY, EIB_REPLY, EIB_26_REFUSED, SFA_REFUSED):
        assert crc16(frame[:-2]).to_bytes(2, "little") == frame[-2:]


def test_seplos_pack_block_decodes_to_the_capture() -> None:
    """PIA/PIB of pack 0x01: 53.25 V, -1.37 A, 274.56/330.00 Ah, SOC 83.2 %, SOH 99.9 %, 10 cycles, 16 cells of
    3327/3328 mV, four cell sensors 21.1-21.5 °C; unused sensor slots read 0x0AAB (= 0.0 °C at 2731)."""
    pia = registers(decode_reply(read(1, FunctionCode.READ_INPUT_REGISTERS, 0x1000, 0x11), PIA_REPLY))
    pib = registers(decode_reply(read(1, FunctionCode.READ_INPUT_REGISTERS, 0x1100, 0x1A), PIB_REPLY))
    analog = s3.decode_pia_pib(pia, pib, 1)
    assert analog.voltage_v == 53.25
    assert analog.current_a == -1.37
    assert (analog.remaining_ah, analog.full_ah) == (274.56, 330.0)
    assert (analog.soc_pct, analog.soh_pct, analog.cycles) == (83.2, 99.9, 10)
    assert len(analog.cell_voltages_mv) == 16
    assert set(analog.cell_voltages_mv) == {3327, 3328}
    # PIA's own max/min/average cell registers agree with the cells PIB lists.
    assert analog.cells is not None
    assert (analog.cells.max_mv, analog.cells.min_mv) == (pia[0x0A], pia[0x0B]) == (3328, 3327)
    assert analog.cell_temperatures_c == (21.5, 21.2, 21.4, 21.1)
    assert (analog.environment_temperature_c, analog.mosfet_temperature_c) == (22.5, 21.2)
    # PIA's max/min sensor registers (read a moment apart from PIB) agree within one step.
    assert max(analog.cell_temperatures_c) == pytest.approx(s3._celsius(pia[0x0C]), abs=0.101)
    assert min(analog.cell_temperatures_c) == pytest.approx(s3._celsius(pia[0x0D]), abs=0.101)
    assert s3._celsius(0x0AAB) == 0.0
    assert analog.extra["max_charge_current_a"] == analog.extra["max_discharge_current_a"] == 180.0
    # Cells add up to the pack voltage (within the cell resolution).
    assert sum(analog.cell_voltages_mv) / 1000 == pytest.approx(analog.voltage_v, abs=0.05)


def test_seplos_system_block_agrees_with_the_pack() -> None:
    """EIA of master 0x00 (low word first): the same 53.25 V and SOC/SOH/capacities as pack 0x01's PIA, one
    pack online, 57.6/46.4 V suggested limits, -1.3 A at 100 mA resolution."""
    eia = registers(decode_reply(read(0, FunctionCode.READ_INPUT_REGISTERS, 0x2000, 0x1A), EIA_REPLY))
    system = s3.decode_system(eia, None)
    assert system.voltage_v == 53.25
    assert system.current_a == -1.3
    assert (system.remaining_ah, system.full_ah, system.rated_ah) == (274.56, 330.0, 330.0)
    assert system.discharged_ah == 2900.0
    assert system.online_packs == (0,)
    assert system.protected_packs == ()
    assert (system.max_charge_current_a, system.max_discharge_current_a) == (180.0, 180.0)
    assert (system.suggested_max_voltage_v, system.suggested_min_voltage_v) == (57.6, 46.4)
    assert (system.pack_count, system.cycles, system.soc_pct, system.soh_pct) == (1, 10, 83.2, 99.9)


def test_seplos_eib_is_22_registers() -> None:
    """The SG16S master refuses EIB read as 26 registers (exception 02); the SP05B master answers 22 (0x2100-
    0x2115, the document's last EIB register): cell extremes 3304 mV, pack extremes 52.86 V."""
    with pytest.raises(ModbusExceptionError) as refused:
        decode_reply(read(0, FunctionCode.READ_INPUT_REGISTERS, 0x2100, 0x1A), EIB_26_REFUSED)
    assert refused.value.rtn == 0x02
    assert refused.value.reason == "illegal_data_address"
    eib = registers(decode_reply(read(0, FunctionCode.READ_INPUT_REGISTERS, 0x2100, s3.EIB_COUNT), EIB_REPLY))
    eia = registers(decode_reply(read(0, FunctionCode.READ_INPUT_REGISTERS, 0x2000, 0x1A), EIA_REPLY))
    system = s3.decode_system(eia, eib)
    assert (system.max_cell_mv, system.min_cell_mv) == (3304, 3304)
    assert (system.max_pack_voltage_v, system.min_pack_voltage_v) == (52.86, 52.86)


def test_seplos_identity() -> None:
    """VIA: factory name XZH-ElecTech Co.,Ltd (what identifies the map), device SG16S200A-SP57B-A, firmware
    "15", BMS serial SP57B-A2506120022, no pack serial."""
    data = decode_reply(read(0, FunctionCode.READ_INPUT_REGISTERS, 0x1700, 0x33), VIA_REPLY)
    identity = s3.decode_identity(data)
    assert identity.manufacturer == s3.FACTORY_NAME == "XZH-ElecTech Co.,Ltd"
    assert identity.model == "SG16S200A-SP57B-A"
    assert identity.firmware == "1.5"
    assert identity.bms_serial == "SP57B-A2506120022"
    assert identity.pack_serial is None
    assert s3.is_factory_name(data[:20])


def test_seplos_status_coils() -> None:
    """PIC of pack 0x01 (144 coils, 18 bytes): system state 0x10 = standby (TB09 bit 4), FET state 0x03 =
    discharge and charge FET on (TB07), no alarm, fault or balancing."""
    data = decode_reply(read(1, FunctionCode.READ_COILS, 0x1200, 0x90), PIC_REPLY)
    status = s3.decode_pic(data, 1)
    assert status.charge_mos_on is True
    assert status.discharge_mos_on is True
    assert status.charging is False
    assert status.discharging is False
    assert status.fully_charged is False
    assert status.heater_on is False
    assert not status.alarms
    assert status.balancing_cells == ()


def test_seplos_status_bits() -> None:
    """Bit positions of the TB tables: cell 9 low alarm, balancing cells 1 and 16, cell OV protection (TB02 bit1),
    SOC alarm (TB06 bit2), aerosol alarm (TB15 bit7) = fire, NTC fault (TB15 bit0)."""
    data = bytearray(18)
    data[1] = 0x01  # 0x1208 bit 0: cell 9 low
    data[6], data[7] = 0x01, 0x80  # balancing cells 1 and 16
    data[9] = 0x02
    data[14] = 0x04
    data[17] = 0x81
    status = s3.decode_pic(bytes(data), 3)
    assert status.cell_alarm_codes[8] == 1
    assert status.balancing_cells == (1, 16)
    assert status.protections == {Condition.CELL_OVERVOLTAGE, Condition.FIRE}
    assert status.warnings == {Condition.LOW_SOC}
    assert {str(f) for f in status.faults} == {"temperature_sensor"}


def test_refusals_and_mismatches_never_become_values() -> None:
    """An exception reply raises ModbusExceptionError; a CRC error, another slave, another function, a wrong
    length or byte count raise FrameError."""
    pia = read(1, FunctionCode.READ_INPUT_REGISTERS, 0x1000, 0x11)
    with pytest.raises(ModbusExceptionError):
        decode_reply(read(0, FunctionCode.READ_COILS, 0x1400, 0x500), SFA_REFUSED)
    corrupted = bytearray(PIA_REPLY)
    corrupted[5] ^= 0x01
    for bad in (
        bytes(corrupted),  # CRC
        PIB_REPLY,  # right slave and function, wrong length for PIA
        EIA_REPLY,  # another slave
        PIC_REPLY,  # another function
        PIA_REPLY[:-1],
        b"",
    ):
        with pytest.raises(FrameError):
            decode_reply(pia, bad)
    with pytest.raises(FrameError):
        decode_reply(read(1, FunctionCode.READ_INPUT_REGISTERS, 0x1000, 0x12), PIA_REPLY)  # 17 of 18 registers


def test_pace_block_layout() -> None:
    """Registers 0-36 per the PACE V1.3 table: signed 10 mA current, 10 mV voltage, % SOC/SOH, 10 mAh capacities,
    warning/protection/status words, balance bits, mV cells, signed 0.1 °C temperatures."""
    values = [0] * 37
    values[0] = -1234 & 0xFFFF
    values[1] = 5321
    values[2], values[3] = 87, 99
    values[4], values[5], values[6], values[7] = 8700, 10000, 10000, 42
    values[9] = 1 << 15 | 1 << 14  # low SOC, MOSFET high temperature warnings
    values[10] = 1 << 6 | 1 << 12  # short circuit, MOSFET over-temperature protections
    values[11] = 1 << 2 | 1 << 9 | 1 << 11 | 1 << 15  # NTC fault; discharging; DMOS on; heater on
    values[12] = 0b101  # cells 1 and 3 balancing
    values[15:30] = [3325] * 15  # a 15-cell pack leaves cell 16 at 0
    values[31:35] = [251, 249, -52 & 0xFFFF, 250]
    values[35], values[36] = 305, 221
    analog, status = pm.decode_status_block(values, 4)
    assert (analog.current_a, analog.voltage_v, analog.soc_pct, analog.soh_pct) == (-12.34, 53.21, 87.0, 99.0)
    assert (analog.remaining_ah, analog.full_ah, analog.design_ah, analog.cycles) == (87.0, 100.0, 100.0, 42)
    assert analog.cell_voltages_mv == (3325,) * 15
    assert analog.cell_temperatures_c == (25.1, 24.9, -5.2, 25.0)
    assert (analog.mosfet_temperature_c, analog.environment_temperature_c) == (30.5, 22.1)
    assert status.warnings == {Condition.LOW_SOC, Condition.MOSFET_OVERTEMPERATURE}
    assert status.protections == {Condition.SHORT_CIRCUIT, Condition.MOSFET_OVERTEMPERATURE}
    assert {str(f) for f in status.faults} == {"temperature_sensor"}
    assert (status.charging, status.discharging, status.charge_mos_on, status.discharge_mos_on) == (
        False,
        True,
        False,
        True,
    )
    assert status.heater_on is True
    assert status.balancing_cells == (1, 3)
    with pytest.raises(FrameError):
        pm.decode_status_block(values[:36], 4)


def test_pace_text_registers() -> None:
    """Two ASCII characters per register, high byte first, NUL padded (PACE V1.3 remark under §4.1)."""
    assert pm.decode_text(pm.encode_text("P16S100A-1812-1.00")) == "P16S100A-1812-1.00"
    assert pm.decode_text([0x4142, 0x4300, 0x4444]) == "ABC"
    assert pm.decode_text([0] * 10) is None


def test_pace_parameter_registers_round_trip() -> None:
    """Each parameter group maps to the document's registers and units (e.g. cell OV 64-67 in mV and 0.1 s)."""
    group = pp.CellOverVoltage(alarm_v=3.55, protect_v=3.65, release_v=3.4, delay_s=1.0)
    assert pm.group_to_registers(group) == [(64, (3550, 3650, 3400, 10))]
    assert pm.group_from_registers(pp.CellOverVoltage, [(3550, 3650, 3400, 10)]) == group
    short = pp.ShortCircuit(delay_us=300)
    assert pm.group_to_registers(short) == [(111, (12,))]  # 25 µs units
    full = pp.FullChargeLowSoc(full_charge_v=55.2, full_charge_current_a=1.5, low_soc_pct=10)
    assert pm.group_to_registers(full) == [(107, (55200, 1500)), (112, (10,))]
    cold = pp.ChargeDischargeUnderTemperature(
        charge_alarm_c=2.0,
        charge_protect_c=0.0,
        charge_release_c=5.0,
        discharge_alarm_c=-15.0,
        discharge_protect_c=-20.0,
        discharge_release_c=-10.0,
    )
    words = pm.group_to_registers(cold)[0][1]
    assert words[4] == -200 & 0xFFFF
    assert pm.group_from_registers(type(cold), [words]) == cold
    with pytest.raises(pp.ParameterError):
        pm.group_to_registers(pp.ShortCircuit(delay_us=600))  # above the documented 500 µs (20 × 25)

"""PACE Modbus and Seplos V3 round trips: simulator ↔ SerialLink ↔ ClusterClient, faults, control with read-back."""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from custom_components.lfp_bms.bms.client import ClusterClient, LinkConfig
from custom_components.lfp_bms.bms.control import ControlRefusedError, ReadBackError
from custom_components.lfp_bms.bms.driver import ProtocolName, Strategy
from custom_components.lfp_bms.bms.frame import FrameError
from custom_components.lfp_bms.bms.modbus import pace_modbus as pm
from custom_components.lfp_bms.bms.modbus.codec import (
    FunctionCode,
    ModbusExceptionError,
    ModbusExchange,
    ModbusRequest,
    registers,
)
from custom_components.lfp_bms.bms.modbus.control import PaceModbusControl
from custom_components.lfp_bms.bms.modbus.seplos_v3 import SeplosV3Driver
from custom_components.lfp_bms.bms.pace_params import CellOverVoltage, ParameterError, ShortCircuit
from custom_components.lfp_bms.bms.registry import make_driver
from custom_components.lfp_bms.bms.simulator import ConstantProfile, Simulator, SimulatorConfig
from custom_components.lfp_bms.bms.transport import LinkTimeout, SerialLink


@asynccontextmanager
async def bus(protocol: ProtocolName, packs: int, **options: Any) -> AsyncGenerator[tuple[Simulator, ClusterClient]]:
    config = SimulatorConfig(protocol=protocol, packs=packs, speed=0, paced=False, seed=3, **options)
    async with Simulator(config) as sim:
        link = SerialLink(sim.url, timeout=0.3)
        addresses = tuple(sim.addresses)
        link_config = LinkConfig(
            protocol=protocol,
            ver=0,
            cid1=0,
            baudrate=9600,
            master_address=addresses[0],
            addresses=addresses,
            strategy=Strategy.BUS,
            local_address=addresses[0],
        )
        try:
            yield sim, ClusterClient(link, make_driver(protocol), link_config)
        finally:
            await link.close()


async def test_pace_modbus_bus_of_eight_round_trip() -> None:
    """Every pack of an 8-pack PACE Modbus bus reads back as the physics has it (at the wire's resolution)."""
    async with bus(ProtocolName.PACE_MODBUS, 8, profile=ConstantProfile(-40.0)) as (sim, client):
        sim.advance(900)
        state = await client.read_all()
        assert sorted(state.packs) == list(range(1, 9))
        for address, reading in state.packs.items():
            truth = sim.cluster.pack(address).analog()
            assert reading.online, reading.error
            assert reading.analog is not None
            assert reading.status is not None
            assert reading.analog.cell_voltages_mv == truth.cell_voltages_mv
            assert reading.analog.voltage_v == pytest.approx(truth.voltage_v, abs=0.01)
            assert reading.analog.current_a == pytest.approx(truth.current_a, abs=0.01)
            assert reading.analog.remaining_ah == pytest.approx(truth.remaining_ah, abs=0.01)
            assert reading.analog.temperatures_c == pytest.approx(truth.temperatures_c, abs=0.05)
            assert reading.status.discharging is True
            assert reading.status.discharge_mos_on is True
        assert state.summary.packs_online == 8
        assert state.system is None  # PACE Modbus has no system block
        identity = await client.read_identity(3)
        pack = sim.cluster.pack(3)
        assert identity.firmware == pack.model
        assert identity.bms_serial == pack.bms_serial.strip()
        assert identity.pack_serial == pack.pack_serial.strip()


async def test_seplos_v3_bus_of_four_with_system_block() -> None:
    """A 4-pack Seplos V3 bus (ids 0-3): each pack's PIA/PIB/PIC, and the master's EIA/EIB totals."""
    async with bus(ProtocolName.SEPLOS_V3, 4, profile=ConstantProfile(30.0)) as (sim, client):
        sim.advance(600)
        state = await client.read_all()
        assert sorted(state.packs) == [0, 1, 2, 3]
        for address, reading in state.packs.items():
            truth = sim.cluster.pack(address)
            assert reading.online, reading.error
            assert reading.analog is not None
            assert reading.analog.cell_voltages_mv == truth.analog().cell_voltages_mv
            assert reading.analog.soc_pct == pytest.approx(truth.soc_pct, abs=0.1)
            assert reading.status is not None
            assert reading.status.charging is True
            assert reading.status.charge_mos_on is True
        system = state.system
        assert system is not None
        assert system.online_packs == (0, 1, 2, 3)
        assert system.pack_count == 4
        assert system.current_a == pytest.approx(state.summary.current_a, abs=0.1)
        assert system.full_ah == pytest.approx(state.summary.full_ah, abs=0.05)
        highest = state.summary.highest_cell
        assert highest is not None
        assert system.max_cell_mv == highest.mv
        identity = await client.read_identity(2)
        assert identity.manufacturer == "XZH-ElecTech Co.,Ltd"
        assert identity.bms_serial == sim.cluster.pack(2).bms_serial.strip()


async def test_offline_pack_and_slave_only_answers_itself() -> None:
    """A pack off the bus is an error reading, the others are read; a slave id nobody has times out."""
    async with bus(ProtocolName.PACE_MODBUS, 3, faults="offline=2@0") as (sim, client):
        sim.advance(1)
        state = await client.read_all()
        assert state.packs[2].error == "LinkTimeout"
        assert state.packs[1].online
        assert state.packs[3].online
        with pytest.raises(LinkTimeout):
            await client.modbus.modbus_exchange(pm.PaceModbusDriver.status_request(9), timeout=0.2)


async def test_exception_replies() -> None:
    """Outside the map → exception 02, a function the map lacks → 01, a write the BMS rejects → 03."""
    async with bus(ProtocolName.PACE_MODBUS, 1) as (_, client):
        link = client.modbus
        with pytest.raises(ModbusExceptionError) as err:
            await link.modbus_exchange(ModbusRequest.read(1, FunctionCode.READ_HOLDING_REGISTERS, 40, 2))
        assert err.value.rtn == 0x02
        with pytest.raises(ModbusExceptionError) as err:
            await link.modbus_exchange(ModbusRequest.read(1, FunctionCode.READ_INPUT_REGISTERS, 0, 2))
        assert err.value.rtn == 0x01
        # Cell OV protect below its alarm: an inconsistent group, refused and not applied.
        before = await link.modbus_exchange(ModbusRequest.read(1, FunctionCode.READ_HOLDING_REGISTERS, 64, 4))
        with pytest.raises(ModbusExceptionError) as err:
            await link.modbus_exchange(ModbusRequest.write(1, 65, (3000,)))
        assert err.value.rtn == 0x03
        after = await link.modbus_exchange(ModbusRequest.read(1, FunctionCode.READ_HOLDING_REGISTERS, 64, 4))
        assert after == before
    async with bus(ProtocolName.SEPLOS_V3, 2) as (_, client):
        with pytest.raises(ModbusExceptionError) as err:  # EIA only on the master (id 0)
            await client.modbus.modbus_exchange(ModbusRequest.read(1, FunctionCode.READ_INPUT_REGISTERS, 0x2000, 26))
        assert err.value.rtn == 0x02
        assert await SeplosV3Driver().read_system(client.modbus, 1) is None


async def test_faults_are_retried_or_reported() -> None:
    """Corrupted, garbage-prefixed and wrong-slave replies never become values: with every reply faulty for one
    kind, the poll fails (or is retried to a good reply) rather than decoding a bad frame."""
    for fault in ("corrupt=1", "wrong_addr=1", "truncate=1"):
        async with bus(ProtocolName.PACE_MODBUS, 2, faults=fault) as (_, client):
            with pytest.raises(LinkTimeout):
                await client.read_all()
    async with bus(ProtocolName.SEPLOS_V3, 2, faults="garbage=1") as (sim, client):
        state = await client.read_all()  # noise before each reply is skipped
        assert all(r.online for r in state.packs.values())
        assert sim.injector.counts["garbage"] >= 6


async def test_pace_modbus_control_writes_are_read_back() -> None:
    """A parameter change is validated, written with FC 0x10, and read back; the simulated BMS applies it."""
    async with bus(ProtocolName.PACE_MODBUS, 3) as (sim, client):
        control = PaceModbusControl(client)
        group = await control.write_values(2, CellOverVoltage, {"alarm_v": 3.5})
        assert group.alarm_v == 3.5
        assert sim.cluster.pack(2).settings.cell_ov_alarm_mv == 3500
        assert sim.cluster.pack(1).settings.cell_ov_alarm_mv != 3500
        raw = await client.modbus.modbus_exchange(ModbusRequest.read(2, FunctionCode.READ_HOLDING_REGISTERS, 64, 1))
        assert registers(raw) == (3500,)
        short = await control.write_values(3, ShortCircuit, {"delay_us": 400})
        assert short.delay_us == 400
        assert sim.cluster.pack(3).settings.short_circuit_delay_us == 400
        with pytest.raises(ParameterError) as bad:  # validated before anything is sent
            await control.write_values(2, CellOverVoltage, {"alarm_v": 3.8})
        assert bad.value.field in {"alarm_v", "protect_v"}
        assert sim.cluster.pack(2).settings.cell_ov_alarm_mv == 3500


class _Refusing(ModbusExchange):
    """Reads from the real link; every write is refused (as a BMS refusing a parameter would)."""

    def __init__(self, link: ModbusExchange) -> None:
        self.link = link

    async def modbus_exchange(self, request: ModbusRequest, *, timeout: float | None = None) -> bytes:
        if request.function is FunctionCode.WRITE_MULTIPLE_REGISTERS:
            raise ModbusExceptionError(0x03, request.function)
        return await self.link.modbus_exchange(request, timeout=timeout)


class _Ignoring(_Refusing):
    """Acknowledges writes without applying them: the read-back must catch it."""

    async def modbus_exchange(self, request: ModbusRequest, *, timeout: float | None = None) -> bytes:
        if request.function is FunctionCode.WRITE_MULTIPLE_REGISTERS:
            return request.encode()[2:6]
        return await self.link.modbus_exchange(request, timeout=timeout)


async def test_control_refusal_and_read_back_mismatch() -> None:
    async with bus(ProtocolName.PACE_MODBUS, 1) as (_, client):
        real = client.link
        assert isinstance(real, SerialLink)
        client.link = _Refusing(real)  # type: ignore[assignment]
        with pytest.raises(ControlRefusedError) as refused:
            await PaceModbusControl(client).write_values(1, CellOverVoltage, {"alarm_v": 3.5})
        assert refused.value.rtn == 0x03
        client.link = _Ignoring(real)  # type: ignore[assignment]
        with pytest.raises(ReadBackError):
            await PaceModbusControl(client).write_values(1, CellOverVoltage, {"alarm_v": 3.5})


def test_control_needs_pace_modbus() -> None:
    link = SerialLink("socket://127.0.0.1:9")
    config = LinkConfig(
        protocol=ProtocolName.SEPLOS_V3,
        ver=0,
        cid1=0,
        baudrate=19200,
        master_address=0,
        addresses=(0,),
        strategy=Strategy.BUS,
        local_address=0,
    )
    with pytest.raises(TypeError):
        PaceModbusControl(ClusterClient(link, SeplosV3Driver(), config))


def test_frame_errors_from_registers() -> None:
    with pytest.raises(FrameError):
        registers(b"\x01")

"""Detection of PACE Modbus and Seplos V3 buses on the simulator: protocol, slave ids, first read; reads only."""

import pytest

from custom_components.lfp_bms.bms import detect as detect_module
from custom_components.lfp_bms.bms.detect import NoBatteryFoundError, detect
from custom_components.lfp_bms.bms.driver import ProtocolName, Strategy
from custom_components.lfp_bms.bms.modbus import detect as modbus_detect
from custom_components.lfp_bms.bms.modbus.codec import FunctionCode
from custom_components.lfp_bms.bms.progress import DetectProgress, Stage
from custom_components.lfp_bms.bms.simulator import Simulator, SimulatorConfig
from custom_components.lfp_bms.bms.transport import SerialLink


@pytest.fixture(autouse=True)
def _short_probe_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The unpaced simulator answers at once; silence only needs a short wait."""
    for module in (detect_module, modbus_detect):
        monkeypatch.setattr(module, "PROBE_TIMEOUT", 0.15)
        monkeypatch.setattr(module, "SCAN_TIMEOUT", 0.15)


async def _detect(config: SimulatorConfig, **options: object) -> tuple[Simulator, detect_module.DetectionResult]:
    async with Simulator(config) as sim:
        link = SerialLink(sim.url, timeout=0.3)
        try:
            result = await detect(link, **options)  # type: ignore[arg-type]
        finally:
            await link.close()
    return sim, result


async def test_pace_modbus_bus_of_eight_after_the_ascii_probes() -> None:
    """No ASCII probe is answered; the Modbus probes find PACE Modbus at 9600 and slave ids 1-8; nothing was
    written (every request the simulator answered was a read)."""
    steps: list[DetectProgress] = []
    config = SimulatorConfig(protocol=ProtocolName.PACE_MODBUS, packs=8, speed=0, paced=False)
    sim, result = await _detect(config, bauds=(9600,), progress=steps.append)
    stages = [str(step) for step in steps]
    assert result.config.protocol is ProtocolName.PACE_MODBUS
    assert result.config.baudrate == 9600
    assert result.config.addresses == tuple(range(1, 9))
    assert result.config.strategy is Strategy.BUS
    assert result.state.summary.packs_online == 8
    assert result.identity.bms_serial == sim.cluster.pack(1).bms_serial.strip()
    assert "baud 9600 (Modbus)" in stages
    assert "protocol pace_modbus" in stages
    # What the config flow words: Modbus, the protocol and the number of packs found.
    assert steps[-1] == DetectProgress(
        stage=Stage.FIRST_READ, baudrate=9600, modbus=True, protocol=ProtocolName.PACE_MODBUS, packs=8
    )
    assert all(sent.request[1] != FunctionCode.WRITE_MULTIPLE_REGISTERS for sent in sim.sent)


async def test_seplos_v3_bus_of_four_identified_by_its_factory_name() -> None:
    config = SimulatorConfig(protocol=ProtocolName.SEPLOS_V3, packs=4, speed=0, paced=False)
    sim, result = await _detect(config, modbus_first=True)
    assert result.config.protocol is ProtocolName.SEPLOS_V3
    assert result.config.addresses == (0, 1, 2, 3)
    assert result.config.master_address == 0
    assert result.identity.manufacturer == "XZH-ElecTech Co.,Ltd"
    assert result.state.system is not None
    assert result.state.system.pack_count == 4
    # Reads only (the PACE probe's FC 0x03 included, which the Seplos map refuses with exception 01).
    assert {sent.request[1] for sent in sim.sent} <= {
        FunctionCode.READ_HOLDING_REGISTERS,
        FunctionCode.READ_INPUT_REGISTERS,
        FunctionCode.READ_COILS,
    }


async def test_modbus_first_still_finds_ascii() -> None:
    """modbus_first only changes the order: a PACE 0x25 link is still found after the Modbus probes."""
    config = SimulatorConfig(packs=2, speed=0, paced=False)
    _, result = await _detect(config, bauds=(9600,), modbus_first=True)
    assert result.config.protocol is ProtocolName.PACE25


async def test_nothing_answers() -> None:
    config = SimulatorConfig(protocol=ProtocolName.PACE_MODBUS, packs=1, speed=0, paced=False, faults="drop=1")
    with pytest.raises(NoBatteryFoundError):
        await _detect(config, bauds=(9600,))

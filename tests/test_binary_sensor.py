"""Binary sensors end to end against the simulated cluster: snapshot, alarms raised by the physics, MOSFETs,
charging state and availability of an offline pack."""

from dataclasses import replace
from datetime import timedelta
from unittest.mock import patch

import pytest
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed, snapshot_platform
from syrupy.assertion import SnapshotAssertion

from custom_components.lfp_bms.binary_sensor import PACK_BINARY_SENSORS
from custom_components.lfp_bms.bms.client import LinkConfig
from custom_components.lfp_bms.bms.driver import ProtocolName, Strategy
from custom_components.lfp_bms.bms.models import Condition, Fault
from custom_components.lfp_bms.bms.simulator import ConstantProfile, Simulator
from custom_components.lfp_bms.const import CONF_DEVICE, DOMAIN
from custom_components.lfp_bms.migrate import MINOR_VERSION, VERSION

from .common import setup_entry

#: Entity ids follow the names in strings.json ("Pack 1" device + entity name).
PROTECTION = "binary_sensor.pack_1_protection_active"
WARNING = "binary_sensor.pack_1_warning_active"
CELL_OVP = "binary_sensor.pack_1_cell_over_voltage_protection_ovp"
CELL_OV_WARNING = "binary_sensor.pack_1_cell_over_voltage_warning_ov"
CLUSTER_PROTECTION = "binary_sensor.battery_cluster_protection_active"


async def poll(hass: HomeAssistant) -> None:
    """Let the coordinator poll once (the default interval is 10 s; the refresh runs as a background task)."""
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=11))
    await hass.async_block_till_done(wait_background_tasks=True)


def state_of(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_snapshot(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, snapshot: SnapshotAssertion, simulator: Simulator
) -> None:
    """Every binary sensor of a 2-pack cluster, all enabled."""
    with patch("custom_components.lfp_bms.PLATFORMS", [Platform.BINARY_SENSOR]):
        entry = await setup_entry(hass, simulator)
    await snapshot_platform(hass, entity_registry, snapshot, entry.entry_id)


async def test_flag_entities_disabled_by_default(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, simulator: Simulator
) -> None:
    """One entity per Condition at each level and per Fault, disabled and diagnostic; the rest enabled."""
    entry = await setup_entry(hass, simulator)
    entries = [
        e for e in er.async_entries_for_config_entry(entity_registry, entry.entry_id) if e.domain == "binary_sensor"
    ]
    pack_1 = [e for e in entries if e.unique_id.endswith(tuple(f"_1_{d.key}" for d in PACK_BINARY_SENSORS))]
    disabled = {e.unique_id.rsplit("_1_", 1)[1] for e in pack_1 if e.disabled_by is not None}
    expected = {f"protection_{c}" for c in Condition} | {f"warning_{c}" for c in Condition}
    expected |= {f"fault_{f}" for f in Fault}
    assert disabled == expected
    assert len(expected) == 2 * len(Condition) + len(Fault)
    enabled = {e.unique_id.rsplit("_1_", 1)[1] for e in pack_1 if e.disabled_by is None}
    assert enabled == {
        "charging",
        "discharging",
        "charge_mos",
        "discharge_mos",
        "heater",
        "balancing",
        "fully_charged",
        "protection",
        "warning",
        "fault",
    }
    # The cluster device: three summaries plus charging/discharging.
    assert len([e for e in entries if e.disabled_by is None]) == 2 * len(enabled) + 5
    ovp = entity_registry.async_get(CELL_OVP)
    assert ovp is not None
    assert ovp.entity_category is not None
    assert ovp.entity_category.value == "diagnostic"


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_protection_raised_and_cleared(hass: HomeAssistant, simulator: Simulator) -> None:
    """Pack 1's cell over-voltage protection set below its cells' voltage trips the real protection logic."""
    await setup_entry(hass, simulator)
    assert state_of(hass, PROTECTION) == STATE_OFF
    assert state_of(hass, CELL_OVP) == STATE_OFF
    assert state_of(hass, "binary_sensor.pack_1_charge_mosfet") == STATE_ON
    pack = simulator.cluster.pack(1)
    defaults = pack.settings
    highest = max(pack.cell_mv)
    pack.apply_settings(
        replace(
            defaults,
            cell_ov_alarm_mv=highest - 40,
            cell_ov_protect_mv=highest - 20,
            cell_ov_release_mv=highest - 60,
        )
    )
    simulator.advance(10)
    assert Condition.CELL_OVERVOLTAGE in pack.protections  # the physics, not the test, raised it
    await poll(hass)

    state = hass.states.get(PROTECTION)
    assert state is not None
    assert state.state == STATE_ON
    assert state.attributes["flags"] == ["cell_overvoltage"]
    assert state.attributes["abbreviations"] == ["OVP"]
    warning = hass.states.get(WARNING)
    assert warning is not None
    assert warning.state == STATE_ON
    assert warning.attributes["abbreviations"] == ["OV"]
    assert state_of(hass, CELL_OVP) == STATE_ON
    assert state_of(hass, CELL_OV_WARNING) == STATE_ON
    # Cell OV blocks charging: the BMS opens the charge MOSFET and keeps the discharge one closed.
    assert state_of(hass, "binary_sensor.pack_1_charge_mosfet") == STATE_OFF
    assert state_of(hass, "binary_sensor.pack_1_discharge_mosfet") == STATE_ON
    cluster = hass.states.get(CLUSTER_PROTECTION)
    assert cluster is not None
    assert cluster.state == STATE_ON
    assert cluster.attributes["packs"] == [1]
    assert cluster.attributes["flags"] == ["cell_overvoltage"]
    # Pack 2 is untouched.
    assert state_of(hass, "binary_sensor.pack_2_protection_active") == STATE_OFF

    pack.apply_settings(defaults)  # cells are now below the default release voltage
    simulator.advance(10)
    assert not pack.protections
    await poll(hass)
    state = hass.states.get(PROTECTION)
    assert state is not None
    assert state.state == STATE_OFF
    assert state.attributes["flags"] == []
    assert state_of(hass, CELL_OVP) == STATE_OFF
    assert state_of(hass, "binary_sensor.pack_1_charge_mosfet") == STATE_ON
    assert state_of(hass, CLUSTER_PROTECTION) == STATE_OFF


async def test_charging_follows_the_simulator(hass: HomeAssistant, simulator: Simulator) -> None:
    """Charging/discharging of packs and cluster follow the load profile; a MOSFET switched off shows."""
    await setup_entry(hass, simulator)
    ids = ("pack_1_charging", "pack_1_discharging", "battery_cluster_charging", "battery_cluster_discharging")
    assert [state_of(hass, f"binary_sensor.{i}") for i in ids] == [STATE_OFF] * 4

    simulator.cluster.profile = ConstantProfile(40.0)
    simulator.advance(10)
    await poll(hass)
    assert [state_of(hass, f"binary_sensor.{i}") for i in ids] == [STATE_ON, STATE_OFF, STATE_ON, STATE_OFF]

    simulator.cluster.profile = ConstantProfile(-40.0)
    simulator.advance(10)
    await poll(hass)
    assert [state_of(hass, f"binary_sensor.{i}") for i in ids] == [STATE_OFF, STATE_ON, STATE_OFF, STATE_ON]

    # A discharge MOSFET switched off by command while discharging: pack 2 stops, pack 1 carries the load.
    assert simulator.cluster.pack(2).command_mos(charge=False, on=False)
    simulator.advance(2)
    await poll(hass)
    assert state_of(hass, "binary_sensor.pack_2_discharge_mosfet") == STATE_OFF
    assert state_of(hass, "binary_sensor.pack_2_charge_mosfet") == STATE_ON
    assert state_of(hass, "binary_sensor.pack_2_discharging") == STATE_OFF
    assert state_of(hass, "binary_sensor.pack_1_discharge_mosfet") == STATE_ON
    assert state_of(hass, "binary_sensor.pack_1_discharging") == STATE_ON


async def test_offline_pack_unavailable(hass: HomeAssistant, simulator: Simulator) -> None:
    """Pack 2 leaving the bus makes its entities unavailable, not pack 1's nor the cluster's; back = available."""
    await setup_entry(hass, simulator)
    simulator.cluster.set_online(2, False)
    await poll(hass)
    assert state_of(hass, "binary_sensor.pack_2_charging") == STATE_UNAVAILABLE
    assert state_of(hass, "binary_sensor.pack_2_protection_active") == STATE_UNAVAILABLE
    assert state_of(hass, "binary_sensor.pack_1_charging") == STATE_OFF
    assert state_of(hass, CLUSTER_PROTECTION) == STATE_OFF

    simulator.cluster.set_online(2, True)
    await poll(hass)
    assert state_of(hass, "binary_sensor.pack_2_charging") == STATE_OFF
    assert state_of(hass, "binary_sensor.pack_2_protection_active") == STATE_OFF


@pytest.mark.parametrize("simulator", [{"packs": 1, "protocol": "eg4", "link": "rs485", "seed": 1}], indirect=True)
async def test_unreported_values_not_created(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, simulator: Simulator
) -> None:
    """EG4's 0x44 has no fully-charged flag (PackStatus.fully_charged None): no such entity; the rest exist."""
    address = simulator.addresses[0]
    link = LinkConfig(
        protocol=ProtocolName.EG4,
        ver=0x20,
        cid1=0x4A,
        baudrate=9600,
        master_address=address,
        addresses=(address,),
        strategy=Strategy.BUS,
        local_address=address,
    )
    # Built by hand: detection would first spend its timeouts on the other protocols.
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="EG4",
        version=VERSION,
        minor_version=MINOR_VERSION,
        data={CONF_DEVICE: simulator.url, **link.as_dict()},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    reading = entry.runtime_data.data.cluster.packs[address]
    assert reading.online
    assert reading.status is not None
    assert reading.status.fully_charged is None
    owner = f"{entry.entry_id}_{address}_"  # EG4 has no serial: the ids hang on the entry id
    keys = {
        e.unique_id.removeprefix(owner)
        for e in er.async_entries_for_config_entry(entity_registry, entry.entry_id)
        if e.domain == "binary_sensor" and e.unique_id.startswith(owner)
    }
    assert "fully_charged" not in keys
    assert {"charging", "discharging", "charge_mos", "discharge_mos", "heater", "balancing"} <= keys
    assert {"protection", "warning", "fault", "protection_cell_overvoltage", "fault_clock"} <= keys
    assert len(keys) == len(PACK_BINARY_SENSORS) - 1

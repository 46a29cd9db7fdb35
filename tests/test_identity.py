"""Identity: device and entity ids that survive a move to another port, and the migration of entries that an
older version keyed on their link."""

from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.lfp_bms.bms.simulator import Simulator, SimulatorConfig
from custom_components.lfp_bms.const import CONF_DEVICE, DOMAIN
from custom_components.lfp_bms.migrate import MINOR_VERSION, async_migrate

from .common import entry_for

SEPLOS: dict[str, Any] = {"protocol": "seplos", "link": "rs485", "packs": 2}


def registry_ids(hass: HomeAssistant, entry_id: str) -> dict[str, tuple[str, str | None]]:
    """entity_id → (unique id, device id) of every registry entry of the config entry."""
    registry = er.async_get(hass)
    return {e.entity_id: (e.unique_id, e.device_id) for e in er.async_entries_for_config_entry(registry, entry_id)}


def device_ids(hass: HomeAssistant, entry_id: str) -> dict[str, set[tuple[str, str]]]:
    """device id → identifiers of every device of the config entry."""
    registry = dr.async_get(hass)
    return {d.id: set(d.identifiers) for d in dr.async_entries_for_config_entry(registry, entry_id)}


async def reconfigure(hass: HomeAssistant, entry: MockConfigEntry, device: str) -> None:
    """Run the reconfigure flow onto `device` to its end (the entry reloads)."""
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": "reconfigure_serial"})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_DEVICE: device})
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    await hass.async_block_till_done()
    result = await hass.config_entries.flow.async_configure(result["flow_id"])
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done(wait_background_tasks=True)


@pytest.mark.parametrize("simulator", [SEPLOS], indirect=True)
async def test_serial_less_cluster_moved_to_another_port_keeps_every_id(
    hass: HomeAssistant, simulator: Simulator
) -> None:
    """A Seplos V2 cluster (no serial) moved to another port keeps every device and every entity registry entry
    (so every entity id, and the statistics recorded under it); nothing new is registered."""
    entry = await entry_for(simulator)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert entry.unique_id is None
    entities, devices = registry_ids(hass, entry.entry_id), device_ids(hass, entry.entry_id)
    assert len(devices) == 3  # the cluster and two packs
    assert all(unique_id.startswith(f"{entry.entry_id}_") for unique_id, _ in entities.values())
    moved = SimulatorConfig(**{**SEPLOS, "speed": 0, "paced": False, "seed": 1})
    async with Simulator(moved) as other_port:
        assert other_port.url != simulator.url
        await simulator.stop()  # the cluster is unplugged from the old port
        await reconfigure(hass, entry, other_port.url)
        assert entry.state is ConfigEntryState.LOADED
        assert entry.data[CONF_DEVICE] == other_port.url
        assert entry.unique_id is None
        assert registry_ids(hass, entry.entry_id) == entities
        assert device_ids(hass, entry.entry_id) == devices
        state = hass.states.get("sensor.pack_0_voltage")
        assert state is not None
        assert state.state != STATE_UNAVAILABLE  # read on the new port
        assert await hass.config_entries.async_unload(entry.entry_id)


def old_entry(data: dict[str, Any], unique_id: str, title: str = "Battery cluster") -> MockConfigEntry:
    """An entry as version 1.1 stored it: the serial, or else the link, as unique id."""
    return MockConfigEntry(domain=DOMAIN, title=title, unique_id=unique_id, data=data, version=1, minor_version=1)


def register_the_old_way(hass: HomeAssistant, entry: MockConfigEntry, base: str, addresses: list[int]) -> None:
    """Devices and a few entities of each kind as version 1.1 registered them: every id starting with `base`."""
    devices, entities = dr.async_get(hass), er.async_get(hass)
    hub = devices.async_get_or_create(config_entry_id=entry.entry_id, identifiers={(DOMAIN, base)}, name=entry.title)
    entities.async_get_or_create(
        "sensor",
        DOMAIN,
        f"{base}_soc",
        config_entry=entry,
        device_id=hub.id,
        suggested_object_id="battery_cluster_battery",
    )
    for address in addresses:
        pack = devices.async_get_or_create(
            config_entry_id=entry.entry_id,
            identifiers={(DOMAIN, f"{base}_{address}")},
            name=f"Pack {address}",
            via_device_id=hub.id,
        )
        for platform, key, name in (
            ("sensor", "voltage", "voltage"),
            ("sensor", "energy_charged", "energy_charged"),
            ("binary_sensor", "warning", "warning_active"),
        ):
            entities.async_get_or_create(
                platform,
                DOMAIN,
                f"{base}_{address}_{key}",
                config_entry=entry,
                device_id=pack.id,
                suggested_object_id=f"pack_{address}_{name}",
            )


@pytest.mark.parametrize("simulator", [SEPLOS], indirect=True)
async def test_entry_keyed_on_its_link_migrates_in_place(hass: HomeAssistant, simulator: Simulator) -> None:
    """A 1.1 entry of a serial-less cluster (unique id = link URL, every id built on it) loads as 1.2: no unique
    id, the same devices and registry entries (entity ids unchanged) with ids moved to the entry id, and the
    entities set up on them rather than on new `_2` ones."""
    new = await entry_for(simulator)
    entry = old_entry(dict(new.data), unique_id=simulator.url)
    entry.add_to_hass(hass)
    register_the_old_way(hass, entry, simulator.url, simulator.addresses)
    before, devices_before = registry_ids(hass, entry.entry_id), device_ids(hass, entry.entry_id)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert entry.state is ConfigEntryState.LOADED
    assert (entry.version, entry.minor_version) == (1, MINOR_VERSION)
    assert entry.unique_id is None
    after = registry_ids(hass, entry.entry_id)
    for entity_id, (unique_id, device_id) in before.items():
        assert after[entity_id] == (unique_id.replace(simulator.url, entry.entry_id, 1), device_id)
        state = hass.states.get(entity_id)
        assert state is not None
        assert state.state != STATE_UNAVAILABLE, entity_id  # the entity set up on the migrated entry
    assert not [entity_id for entity_id in before if f"{entity_id}_2" in after]
    devices = device_ids(hass, entry.entry_id)
    assert devices.keys() == devices_before.keys()
    hub = next(d for d, ids in devices_before.items() if (DOMAIN, simulator.url) in ids)
    assert devices[hub] == {(DOMAIN, entry.entry_id)}
    assert all(
        devices[device] == {(DOMAIN, f"{entry.entry_id}_{address}")}
        for device, ids in devices_before.items()
        for address in simulator.addresses
        if (DOMAIN, f"{simulator.url}_{address}") in ids
    )
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_entry_with_a_serial_keeps_its_ids(hass: HomeAssistant, simulator: Simulator) -> None:
    """A 1.1 entry keyed on the master's serial keeps it, and every id built on it."""
    new = await entry_for(simulator)
    serial = new.unique_id
    assert serial is not None
    entry = old_entry(dict(new.data), unique_id=serial)
    entry.add_to_hass(hass)
    register_the_old_way(hass, entry, serial, simulator.addresses)
    before, devices_before = registry_ids(hass, entry.entry_id), device_ids(hass, entry.entry_id)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert (entry.minor_version, entry.unique_id) == (MINOR_VERSION, serial)
    after = registry_ids(hass, entry.entry_id)
    assert {entity_id: after[entity_id] for entity_id in before} == before
    devices = device_ids(hass, entry.entry_id)
    assert {device: devices[device] for device in devices_before} == devices_before
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_can_entry_moves_off_its_channel(hass: HomeAssistant) -> None:
    """A 1.1 CAN entry (unique id `can_<interface>_<channel>`, a device path for slcan) moves to the entry id."""
    base = "can_slcan_/dev/ttyACM0"
    entry = old_entry({"link": "can", "interface": "slcan", "channel": "/dev/ttyACM0", "bitrate": 500000}, base)
    entry.add_to_hass(hass)
    devices, entities = dr.async_get(hass), er.async_get(hass)
    device = devices.async_get_or_create(config_entry_id=entry.entry_id, identifiers={(DOMAIN, base)})
    voltage = entities.async_get_or_create("sensor", DOMAIN, f"{base}_voltage", config_entry=entry, device_id=device.id)
    assert await async_migrate(hass, entry)
    assert entry.unique_id is None
    assert entry.minor_version == MINOR_VERSION
    migrated = entities.async_get(voltage.entity_id)
    assert migrated is not None
    assert migrated.unique_id == f"{entry.entry_id}_voltage"
    moved = devices.async_get(device.id)
    assert moved is not None
    assert moved.identifiers == {(DOMAIN, entry.entry_id)}


async def test_entry_from_a_newer_version_is_refused(hass: HomeAssistant, simulator: Simulator) -> None:
    """A downgrade: an entry written by a newer major version does not load (nothing is guessed)."""
    entry = await entry_for(simulator)
    newer = MockConfigEntry(domain=DOMAIN, title=entry.title, data=dict(entry.data), version=2)
    newer.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(newer.entry_id)
    assert newer.state is ConfigEntryState.MIGRATION_ERROR

"""Config flow end to end against the simulated cluster over socket:// (and a pty where a real port matters):
every step, error and abort, USB discovery, reconfigure and options."""

import asyncio
import json
import socket
from collections.abc import AsyncGenerator, Generator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from unittest.mock import AsyncMock, patch

import pytest
from homeassistant.components.usb.models import USBDevice
from homeassistant.components.usb.utils import usb_device_matches_matcher
from homeassistant.config_entries import SOURCE_USB, SOURCE_USER, ConfigEntryState, ConfigFlowResult
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.data_entry_flow import EVENT_DATA_ENTRY_FLOW_PROGRESSED, FlowResultType
from homeassistant.helpers.service_info.usb import UsbServiceInfo
from homeassistant.loader import async_get_usb
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.lfp_bms import config_flow
from custom_components.lfp_bms.bms.detect import detect
from custom_components.lfp_bms.bms.driver import ProtocolName
from custom_components.lfp_bms.bms.progress import DetectProgress, Stage
from custom_components.lfp_bms.bms.simulator import Simulator, SimulatorConfig
from custom_components.lfp_bms.bms.transport import SerialLink
from custom_components.lfp_bms.config_flow import link_fields, network_url
from custom_components.lfp_bms.const import (
    CONF_ALLOW_CONTROL,
    CONF_CELL_ENTITIES,
    CONF_DEVICE,
    CONF_INVERT_CURRENT,
    CONF_REFRESH_S,
    CONF_SCAN_INTERVAL,
    CONF_SERIAL,
    DOMAIN,
)
from scripts.translations import INTEGRATION, arguments

from .common import entry_for

#: The English texts, to check that every placeholder a text uses is given.
STRINGS: dict[str, Any] = json.loads((INTEGRATION / "strings.json").read_text())
#: The protocols by their vendors' names, as the user guide names them (what a homeowner reads instead of the id).
VENDORS = {"pace25": "PACE", "pylon": "Pylontech", "seplos": "Seplos V2", "eg4": "EG4"}

#: What a CH343 USB-RS485 adapter (Waveshare "USB TO RS485") reports.
RS485_ADAPTER = {"vid": "1A86", "pid": "55D3", "manufacturer": "wch.cn", "description": "USB Single Serial RS485"}


@pytest.fixture
def mock_setup_entry() -> Generator[AsyncMock]:
    """Flow tests check the flow, not the setup that follows it."""
    with patch("custom_components.lfp_bms.async_setup_entry", return_value=True) as mock:
        yield mock


def pack_serial(sim: Simulator, address: int) -> str:
    """The serial the simulated pack spells in its identity reply (padded to 20 characters on the wire)."""
    return sim.cluster.pack(address).pack_serial.strip()


def free_port() -> int:
    """A TCP port on which nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def mute_server() -> AsyncGenerator[int]:
    """A TCP server that accepts and reads every byte but never answers (a bridge with no battery behind it)."""
    connections: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while await reader.read(1024):
            pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in connections:
            writer.close()
        await server.wait_closed()


def suggested(result: ConfigFlowResult) -> dict[str, Any]:
    """The suggested values a form was shown with."""
    schema = result["data_schema"]
    assert schema is not None
    return {
        str(key): key.description["suggested_value"]
        for key in schema.schema
        if key.description and "suggested_value" in key.description
    }


async def start_user_flow(hass: HomeAssistant, link: str) -> ConfigFlowResult:
    """Open the add-integration dialog and pick `link` in the menu."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.MENU
    assert result["step_id"] == "user"
    assert "serial" in result["menu_options"]
    assert "network" in result["menu_options"]
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": link})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == link
    assert result["errors"] == {}
    return result


async def submit_link(hass: HomeAssistant, flow_id: str, user_input: dict[str, Any] | None) -> ConfigFlowResult:
    """Submit a link form (or confirm a discovery) and let detection run to its end."""
    result = await hass.config_entries.flow.async_configure(flow_id, user_input)
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    assert result["step_id"] == "detect"
    # The text names the link being opened or probed (detection may already be some stages in).
    assert result["progress_action"] in STRINGS["config"]["progress"]
    assert result["description_placeholders"] is not None
    assert result["description_placeholders"]["device"]
    await hass.async_block_till_done()
    return await hass.config_entries.flow.async_configure(flow_id)


def network_input(url: str) -> dict[str, Any]:
    host, port = url.removeprefix("socket://").rsplit(":", 1)
    return {"host": host, "port": int(port)}


async def detect_then_confirm(hass: HomeAssistant, sim: Simulator, link: str = "serial") -> ConfigFlowResult:
    """User flow through detection; returns the confirm form."""
    result = await start_user_flow(hass, link)
    user_input = {CONF_DEVICE: sim.url} if link == "serial" else network_input(sim.url)
    result = await submit_link(hass, result["flow_id"], user_input)
    assert result["type"] is FlowResultType.FORM, result
    assert result["step_id"] == "confirm"
    return result


async def create(hass: HomeAssistant, confirm: ConfigFlowResult) -> ConfigFlowResult:
    result = await hass.config_entries.flow.async_configure(confirm["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    return result


# -- user flow ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("link", ["serial", "network"])
async def test_user_flow_creates_entry(
    hass: HomeAssistant, simulator: Simulator, mock_setup_entry: AsyncMock, link: str
) -> None:
    """Menu → link → detection with progress → confirm showing model, packs and serial → entry."""
    confirm = await detect_then_confirm(hass, simulator, link)
    master = simulator.cluster.pack(1)
    placeholders = confirm["description_placeholders"]
    assert placeholders is not None
    assert placeholders["packs"] == "2"
    assert placeholders["addresses"] == "1, 2"
    assert placeholders["model"] == master.model
    assert placeholders["serial"] == pack_serial(simulator, 1)
    assert placeholders["device"] == simulator.url
    assert placeholders["protocol"] == "PACE"  # the protocol by its vendor's name, not the internal "pace25"
    assert placeholders["baudrate"] == "9600"
    assert placeholders["reading"] == "broadcast"  # the text explains it: the master answers for all packs
    assert placeholders["master"] == "1"
    # Every placeholder the English text uses is given (no "{reading}" left raw in the dialog).
    assert arguments(STRINGS["config"]["step"]["confirm"]["description"]) == set(placeholders)

    result = await create(hass, confirm)
    assert result["title"] == "Battery cluster"
    data = result["data"]
    assert data[CONF_DEVICE] == simulator.url
    assert data[CONF_SERIAL] == pack_serial(simulator, 1)
    assert data["addresses"] == [1, 2]
    assert data["master_address"] == 1
    assert data[CONF_REFRESH_S] >= 0
    entry = result["result"]
    assert entry.unique_id == pack_serial(simulator, 1)
    await hass.async_block_till_done()
    assert len(mock_setup_entry.mock_calls) == 1


@pytest.mark.parametrize(
    ("simulator", "packs", "link_mode", "reading"),
    [
        ({"packs": 2}, 2, "rs232-master", "broadcast"),  # the console cable on the master, read by broadcast
        ({"packs": 16}, 16, "rs232-master", "broadcast"),
        ({"packs": 3, "link": "rs485"}, 3, "rs485", None),
        ({"packs": 1, "link": "rs485"}, 1, "rs485", "single"),  # one pack: nothing to explain about the others
    ],
    indirect=["simulator"],
)
async def test_pace_clusters(
    hass: HomeAssistant,
    simulator: Simulator,
    mock_setup_entry: AsyncMock,
    packs: int,
    link_mode: str,
    reading: str | None,
) -> None:
    """Every pack of the cluster is found and stored, whatever its size and wiring; the confirm text says how
    the packs are read."""
    assert simulator.config.link == link_mode
    confirm = await detect_then_confirm(hass, simulator)
    assert confirm["description_placeholders"] is not None
    assert confirm["description_placeholders"]["packs"] == str(packs)
    result = await create(hass, confirm)
    # The text explains the way the packs are read that is stored (or that there is only one pack).
    assert confirm["description_placeholders"]["reading"] == (reading or result["data"]["strategy"])
    assert result["data"]["addresses"] == simulator.addresses
    assert len(simulator.addresses) == packs
    assert result["result"].unique_id == pack_serial(simulator, 1)


@pytest.mark.parametrize(
    "simulator",
    [
        {"protocol": "pylon", "packs": 2},
        {"protocol": "pylon", "packs": 2, "link": "rs485"},
        {"protocol": "seplos", "packs": 2},
        {"protocol": "seplos", "packs": 2, "link": "rs485"},
        {"protocol": "eg4", "packs": 2},
        {"protocol": "eg4", "packs": 2, "link": "rs485"},
    ],
    indirect=True,
    ids=lambda p: f"{p['protocol']}-{p.get('link', 'rs232-master')}",
)
async def test_other_protocols(hass: HomeAssistant, simulator: Simulator) -> None:
    """Pylon, Seplos V2 and EG4 clusters: the stored link reads every reachable pack once set up; the unique id
    is the master's serial where the protocol has one (Pylon 0x93), otherwise there is none (never the link)."""
    confirm = await detect_then_confirm(hass, simulator)
    placeholders = confirm["description_placeholders"]
    assert placeholders is not None
    assert placeholders["protocol"] == VENDORS[simulator.config.protocol]
    result = await create(hass, confirm)
    await hass.async_block_till_done()
    data = result["data"]
    assert data["protocol"] == simulator.config.protocol
    if simulator.config.protocol == "eg4" and simulator.config.link == "rs232-master":
        # An EG4 request has no INFO to name a slave: through the console port only the master is readable
        # (the simulated master refuses the slaves' ADRs with RTN 90).
        assert data["addresses"] == simulator.addresses[:1]
    else:
        assert data["addresses"] == simulator.addresses
    if data[CONF_SERIAL] is not None:
        assert pack_serial(simulator, simulator.addresses[0]).startswith(data[CONF_SERIAL])
        assert result["result"].unique_id == data[CONF_SERIAL]
    else:
        assert simulator.config.protocol in ("seplos", "eg4")
        assert result["result"].unique_id is None
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    packs = entry.runtime_data.data.cluster.packs
    assert list(packs) == data["addresses"]
    assert all(reading.online for reading in packs.values()), packs
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize("link", ["serial", "network"])
async def test_nothing_listening_then_recover(
    hass: HomeAssistant, simulator: Simulator, mock_setup_entry: AsyncMock, link: str
) -> None:
    """Connection refused: back to the link form with cannot_connect and the input kept; the same flow then
    reaches the entry."""
    dead = f"socket://127.0.0.1:{free_port()}"
    result = await start_user_flow(hass, link)
    user_input = {CONF_DEVICE: dead} if link == "serial" else network_input(dead)
    result = await submit_link(hass, result["flow_id"], user_input)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == link
    assert result["errors"] == {"base": "cannot_connect"}
    assert suggested(result) == user_input

    user_input = {CONF_DEVICE: simulator.url} if link == "serial" else network_input(simulator.url)
    result = await submit_link(hass, result["flow_id"], user_input)
    assert result["step_id"] == "confirm"
    result = await create(hass, result)
    assert result["data"][CONF_DEVICE] == simulator.url


async def test_silent_bridge_then_recover(
    hass: HomeAssistant, simulator: Simulator, mock_setup_entry: AsyncMock
) -> None:
    """A bridge that accepts the connection but nothing answers: no_battery_found, then the real link works."""
    async with mute_server() as port:
        result = await start_user_flow(hass, "network")
        result = await submit_link(hass, result["flow_id"], {"host": "127.0.0.1", "port": port})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "network"
    assert result["errors"] == {"base": "no_battery_found"}

    result = await submit_link(hass, result["flow_id"], network_input(simulator.url))
    result = await create(hass, result)
    assert result["data"][CONF_DEVICE] == simulator.url


@pytest.mark.parametrize("simulator", [{"pty": True}], indirect=True)
async def test_port_held_by_another_program(
    hass: HomeAssistant, simulator: Simulator, mock_setup_entry: AsyncMock
) -> None:
    """A serial port another program holds (serialx opens exclusively): port_in_use, then fine once released."""
    assert simulator.pty_path is not None
    holder = SerialLink(simulator.pty_path)
    await holder.open()
    try:
        result = await start_user_flow(hass, "serial")
        result = await submit_link(hass, result["flow_id"], {CONF_DEVICE: simulator.pty_path})
    finally:
        await holder.close()
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "port_in_use"}

    result = await submit_link(hass, result["flow_id"], {CONF_DEVICE: simulator.pty_path})
    result = await create(hass, result)
    assert result["data"][CONF_DEVICE] == simulator.pty_path


async def test_port_of_an_entry_aborts_before_probing(hass: HomeAssistant, simulator: Simulator) -> None:
    """A port an entry already uses is never probed (the entry holds it exclusively)."""
    entry = await entry_for(simulator)
    entry.add_to_hass(hass)
    requests = simulator.stats.requests
    result = await start_user_flow(hass, "network")
    result = await hass.config_entries.flow.async_configure(result["flow_id"], network_input(simulator.url))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert simulator.stats.requests == requests


async def test_same_cluster_on_another_link_updates_entry(
    hass: HomeAssistant, simulator: Simulator, mock_setup_entry: AsyncMock
) -> None:
    """The cluster (same master serial) answers on a new link: abort already_configured and store the new link."""
    entry = await entry_for(simulator)
    stale = MockConfigEntry(
        domain=DOMAIN, unique_id=entry.unique_id, data={**entry.data, CONF_DEVICE: "/dev/ttyUSB7"}, title=entry.title
    )
    stale.add_to_hass(hass)
    result = await start_user_flow(hass, "serial")
    result = await submit_link(hass, result["flow_id"], {CONF_DEVICE: simulator.url})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert stale.data[CONF_DEVICE] == simulator.url


# -- USB discovery -----------------------------------------------------------------------------------------------


def usb_info(device: str, serial_number: str = "5A7B012345") -> UsbServiceInfo:
    return UsbServiceInfo(device=device, serial_number=serial_number, **RS485_ADAPTER)


async def test_usb_discovery_confirm_detect_create(
    hass: HomeAssistant, simulator: Simulator, mock_setup_entry: AsyncMock
) -> None:
    """Plug-in → confirm (nothing sent before) → detection → confirm what was found → entry."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USB}, data=usb_info(simulator.url)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "usb_confirm"
    assert result["description_placeholders"] == {"name": RS485_ADAPTER["description"]}
    assert simulator.stats.connections == 0
    assert simulator.stats.requests == 0

    # The same adapter reported again while the first flow waits is not offered twice.
    again = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USB}, data=usb_info(simulator.url)
    )
    assert again["type"] is FlowResultType.ABORT
    assert again["reason"] == "already_in_progress"

    result = await submit_link(hass, result["flow_id"], {})
    assert result["step_id"] == "confirm"
    result = await create(hass, result)
    assert result["data"][CONF_DEVICE] == simulator.url
    assert result["result"].unique_id == pack_serial(simulator, 1)


async def test_usb_discovery_detection_fails_then_serial_form(
    hass: HomeAssistant, simulator: Simulator, mock_setup_entry: AsyncMock
) -> None:
    """Detection on the discovered port fails: the serial form shows the error with that port filled in."""
    dead = f"socket://127.0.0.1:{free_port()}"
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USB}, data=usb_info(dead))
    result = await submit_link(hass, result["flow_id"], {})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "serial"
    assert result["errors"] == {"base": "cannot_connect"}
    assert suggested(result) == {CONF_DEVICE: dead}

    result = await submit_link(hass, result["flow_id"], {CONF_DEVICE: simulator.url})
    result = await create(hass, result)
    assert result["data"][CONF_DEVICE] == simulator.url


async def test_usb_discovery_of_a_configured_port_aborts(hass: HomeAssistant, simulator: Simulator) -> None:
    entry = await entry_for(simulator)
    entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USB}, data=usb_info(simulator.url)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_usb_discovery_of_an_ignored_adapter_aborts(hass: HomeAssistant, simulator: Simulator) -> None:
    """Ignoring the discovery stores the adapter's id; it is not offered again."""
    ignored = MockConfigEntry(domain=DOMAIN, source="ignore", unique_id="usb_1A86_55D3_5A7B012345", data={})
    ignored.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USB}, data=usb_info(simulator.url)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_usb_discovery_of_a_moved_cluster_updates_entry(hass: HomeAssistant, simulator: Simulator) -> None:
    """The configured cluster shows up behind a new adapter: its entry follows (discovery-update-info)."""
    entry = await entry_for(simulator)
    moved = MockConfigEntry(
        domain=DOMAIN, unique_id=entry.unique_id, data={**entry.data, CONF_DEVICE: "/dev/ttyUSB7"}, title=entry.title
    )
    moved.add_to_hass(hass)
    requests = simulator.stats.requests
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USB}, data=usb_info(simulator.url)
    )
    assert simulator.stats.requests == requests
    with patch("custom_components.lfp_bms.async_setup_entry", return_value=True):
        result = await submit_link(hass, result["flow_id"], {})
        await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert moved.data[CONF_DEVICE] == simulator.url


async def test_usb_matchers_claim_rs485_adapters_only(hass: HomeAssistant) -> None:
    """Generic chips are matched only with an RS485/RS232 description: a Zigbee stick on the same CP2102 or
    CH340 is not claimed (HA core's own matchers on generic chips do the same)."""
    matchers = [m for m in await async_get_usb(hass) if m["domain"] == DOMAIN]
    assert matchers
    assert all("description" in m for m in matchers)

    def claimed(vid: str, pid: str, description: str) -> bool:
        device = USBDevice(
            device="/dev/ttyUSB0", vid=vid, pid=pid, serial_number="1", manufacturer=None, description=description
        )
        return any(usb_device_matches_matcher(device, m) for m in matchers)

    assert claimed("1A86", "55D3", "USB Single Serial RS485")
    assert claimed("0403", "6001", "USB-RS485 Cable")
    assert claimed("067B", "2303", "USB-Serial Controller RS232")
    assert claimed("1A86", "7523", "USB TO 485")
    assert not claimed("10C4", "EA60", "Sonoff Zigbee 3.0 USB Dongle Plus")
    assert not claimed("1A86", "7523", "USB Serial")
    assert not claimed("1A86", "55D4", "SONOFF Zigbee 3.0 USB Dongle Plus V2")


# -- reconfigure -------------------------------------------------------------------------------------------------


async def stale_entry(hass: HomeAssistant, sim: Simulator, device: str = "/dev/ttyUSB7") -> MockConfigEntry:
    """An entry for `sim`'s cluster that still points at its old link."""
    entry = await entry_for(sim)
    stale = MockConfigEntry(domain=DOMAIN, unique_id=entry.unique_id, data={**entry.data, CONF_DEVICE: device})
    stale.add_to_hass(hass)
    return stale


async def start_reconfigure(hass: HomeAssistant, entry: MockConfigEntry, link: str) -> ConfigFlowResult:
    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == ["reconfigure_serial", "reconfigure_network"]
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": link})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == link
    return result


async def test_reconfigure_serial(hass: HomeAssistant, simulator: Simulator, mock_setup_entry: AsyncMock) -> None:
    """The same cluster on a new port: the entry (and its id, so every entity) is kept, the link changes."""
    entry = await stale_entry(hass, simulator)
    result = await start_reconfigure(hass, entry, "reconfigure_serial")
    assert suggested(result) == {CONF_DEVICE: "/dev/ttyUSB7"}
    result = await submit_link(hass, result["flow_id"], {CONF_DEVICE: simulator.url})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    # The result says what answered on the new link, in our own text (not HA's bare "successful").
    assert result.get("translation_domain") is None
    assert result["description_placeholders"] == {
        "protocol": "PACE",
        "packs": "2",
        "baudrate": "9600",
        "device": simulator.url,
    }
    assert arguments(STRINGS["config"]["abort"]["reconfigure_successful"]) == set(result["description_placeholders"])
    assert entry.data[CONF_DEVICE] == simulator.url
    assert entry.unique_id == pack_serial(simulator, 1)
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1


async def test_reconfigure_network(hass: HomeAssistant, simulator: Simulator, mock_setup_entry: AsyncMock) -> None:
    """The bridge form is pre-filled with the host and port of the current bridge."""
    entry = await stale_entry(hass, simulator, device="socket://192.168.1.50:8899")
    result = await start_reconfigure(hass, entry, "reconfigure_network")
    assert suggested(result) == {"host": "192.168.1.50", "port": 8899}
    result = await submit_link(hass, result["flow_id"], network_input(simulator.url))
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_DEVICE] == simulator.url


async def test_reconfigure_error_then_success(
    hass: HomeAssistant, simulator: Simulator, mock_setup_entry: AsyncMock
) -> None:
    entry = await stale_entry(hass, simulator)
    result = await start_reconfigure(hass, entry, "reconfigure_network")
    dead = network_input(f"socket://127.0.0.1:{free_port()}")
    result = await submit_link(hass, result["flow_id"], dead)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure_network"
    assert result["errors"] == {"base": "cannot_connect"}
    assert suggested(result) == dead
    result = await submit_link(hass, result["flow_id"], network_input(simulator.url))
    assert result["reason"] == "reconfigure_successful"


async def test_reconfigure_to_another_cluster_is_refused(hass: HomeAssistant, simulator: Simulator) -> None:
    """A different bank (another master serial) behind the new link: wrong_device, the entry is untouched."""
    entry = await stale_entry(hass, simulator)
    async with Simulator(SimulatorConfig(packs=2, speed=0, paced=False, seed=2)) as other:
        assert pack_serial(other, 1) != pack_serial(simulator, 1)
        result = await start_reconfigure(hass, entry, "reconfigure_serial")
        result = await submit_link(hass, result["flow_id"], {CONF_DEVICE: other.url})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_device"
    assert entry.data[CONF_DEVICE] == "/dev/ttyUSB7"


async def test_reconfigure_to_a_port_of_another_entry_aborts(hass: HomeAssistant, simulator: Simulator) -> None:
    entry = await stale_entry(hass, simulator)
    MockConfigEntry(domain=DOMAIN, unique_id="other", data={CONF_DEVICE: "/dev/ttyUSB3"}).add_to_hass(hass)
    result = await start_reconfigure(hass, entry, "reconfigure_serial")
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_DEVICE: "/dev/ttyUSB3"})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_reconfigure_on_its_own_port(
    hass: HomeAssistant, simulator: Simulator, mock_setup_entry: AsyncMock
) -> None:
    """Re-detecting on the entry's own (not loaded) port is allowed and refreshes what detection stored."""
    entry = await stale_entry(hass, simulator, device=simulator.url)
    result = await start_reconfigure(hass, entry, "reconfigure_serial")
    assert suggested(result) == {CONF_DEVICE: simulator.url}
    result = await submit_link(hass, result["flow_id"], {CONF_DEVICE: simulator.url})
    assert result["reason"] == "reconfigure_successful"


@pytest.mark.parametrize("simulator", [{"protocol": "seplos", "link": "rs485"}], indirect=True)
async def test_reconfigure_without_serial_keeps_no_unique_id(
    hass: HomeAssistant, simulator: Simulator, mock_setup_entry: AsyncMock
) -> None:
    """A cluster without a serial (Seplos V2) has no unique id, and moving it to another link gives it none: its
    ids hang on the entry id (test_identity.py follows the devices and entities through such a move)."""
    entry = await stale_entry(hass, simulator, device="socket://127.0.0.1:1")
    assert entry.data[CONF_SERIAL] is None
    assert entry.unique_id is None
    result = await start_reconfigure(hass, entry, "reconfigure_serial")
    result = await submit_link(hass, result["flow_id"], {CONF_DEVICE: simulator.url})
    assert result["reason"] == "reconfigure_successful"
    assert entry.unique_id is None
    assert entry.data[CONF_DEVICE] == simulator.url


@pytest.mark.parametrize("simulator", [{"protocol": "seplos", "link": "rs485"}], indirect=True)
async def test_serial_less_cluster_added_twice_aborts(hass: HomeAssistant, simulator: Simulator) -> None:
    """Without a unique id, a second entry for the same link is refused by the link itself."""
    entry = await entry_for(simulator)
    entry.add_to_hass(hass)
    assert entry.unique_id is None
    result = await start_user_flow(hass, "network")
    result = await hass.config_entries.flow.async_configure(result["flow_id"], network_input(simulator.url))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_reconfigure_without_serial_onto_a_configured_cluster(hass: HomeAssistant, simulator: Simulator) -> None:
    """A serial-less entry pointed at a cluster that another entry knows by its serial: already_configured."""
    await stale_entry(hass, simulator)  # the PACE cluster, configured, its port moved
    serial_less = MockConfigEntry(domain=DOMAIN, data={CONF_DEVICE: "socket://127.0.0.1:1", CONF_SERIAL: None})
    serial_less.add_to_hass(hass)
    result = await start_reconfigure(hass, serial_less, "reconfigure_serial")
    result = await submit_link(hass, result["flow_id"], {CONF_DEVICE: simulator.url})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert serial_less.unique_id is None
    assert serial_less.data[CONF_DEVICE] == "socket://127.0.0.1:1"


# -- options -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("simulator", [{"packs": 16, "paced": True}], indirect=True)
async def test_options_minimum_from_detection(hass: HomeAssistant, simulator: Simulator) -> None:
    """A paced 16-pack cluster at 9600 baud: the refresh measured in detection bounds the poll interval. Too
    short is refused with the minimum in the message; the accepted options reload the entry."""
    confirm = await detect_then_confirm(hass, simulator)
    result = await create(hass, confirm)
    await hass.async_block_till_done()
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    refresh_s = entry.data[CONF_REFRESH_S]
    # Two broadcast replies of 16 records each take well over a second on a 9600 baud wire.
    assert refresh_s > 1.0

    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"
    placeholders = result["description_placeholders"]
    assert placeholders is not None
    minimum = int(placeholders["minimum"])
    assert minimum > refresh_s
    assert suggested(result) == {}  # no options stored yet: the schema defaults apply

    too_short = {
        CONF_SCAN_INTERVAL: minimum - 1,
        CONF_INVERT_CURRENT: True,
        CONF_CELL_ENTITIES: True,
        CONF_ALLOW_CONTROL: False,
    }
    result = await hass.config_entries.options.async_configure(result["flow_id"], too_short)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_SCAN_INTERVAL: "interval_too_short"}
    assert result["description_placeholders"] == {"minimum": str(minimum), "maximum": "3600"}
    assert arguments(STRINGS["options"]["error"]["interval_too_short"]) == {"minimum"}
    assert suggested(result) == too_short  # what the user typed stays

    coordinator_before = entry.runtime_data
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**too_short, CONF_SCAN_INTERVAL: float(minimum)}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options == {**too_short, CONF_SCAN_INTERVAL: minimum}
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data is not coordinator_before  # reloaded
    assert entry.runtime_data.update_interval == timedelta(seconds=minimum)
    assert entry.runtime_data.client.invert_current
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_options_defaults(hass: HomeAssistant, simulator: Simulator, mock_setup_entry: AsyncMock) -> None:
    """An entry from an unpaced link: the schema default is the standard interval; control stays off."""
    entry = await entry_for(simulator)
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    data_schema = result["data_schema"]
    assert data_schema is not None
    defaults = {str(key): key.default() for key in data_schema.schema}
    assert defaults[CONF_ALLOW_CONTROL] is False
    assert defaults[CONF_SCAN_INTERVAL] >= int(result["description_placeholders"]["minimum"])  # type: ignore[index]
    result = await hass.config_entries.options.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_ALLOW_CONTROL] is False
    assert entry.options[CONF_SCAN_INTERVAL] == defaults[CONF_SCAN_INTERVAL]


@pytest.mark.parametrize(
    ("interval", "error"), [(1, "interval_too_short"), (0, "interval_too_short"), (3601, "interval_too_long")]
)
async def test_options_interval_out_of_range_says_the_limit(
    hass: HomeAssistant, simulator: Simulator, mock_setup_entry: AsyncMock, interval: int, error: str
) -> None:
    """A poll interval of 1 s gets our error naming the minimum in seconds, not HA's generic "Value 1.0 is too
    small" (the selector has no min/max of its own); above an hour likewise names the maximum."""
    entry = await entry_for(simulator)
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(result["flow_id"], {CONF_SCAN_INTERVAL: interval})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_SCAN_INTERVAL: error}
    placeholders = result["description_placeholders"]
    assert placeholders is not None
    assert int(placeholders["minimum"]) >= 2  # the documented floor of the poll interval
    assert placeholders["maximum"] == "3600"
    assert arguments(STRINGS["options"]["error"][error]) <= set(placeholders)
    assert entry.options == {}


async def test_progress_names_each_stage_and_the_link(
    hass: HomeAssistant, simulator: Simulator, mock_setup_entry: AsyncMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While detection runs, the dialog says what is being tried on which link ("Trying 9600 baud on
    socket://…"), and the frontend is told to re-read the step at every stage. Detection is held at each stage
    so that every text is seen."""
    pace = ProtocolName.PACE25
    stages = [
        DetectProgress(stage=Stage.BAUD, baudrate=9600),
        DetectProgress(stage=Stage.BAUD, baudrate=115200),
        DetectProgress(stage=Stage.BAUD, baudrate=19200, modbus=True),
        DetectProgress(stage=Stage.PROTOCOL, baudrate=115200, protocol=pace),
        DetectProgress(stage=Stage.PACK_ADDRESSES, baudrate=115200, protocol=pace),
        DetectProgress(stage=Stage.IDENTITY, baudrate=115200, protocol=pace, packs=2),
        DetectProgress(stage=Stage.FIRST_READ, baudrate=115200, protocol=pace, packs=2),
    ]
    url = simulator.url
    expected = [
        ("probe_baud", {"device": url, "baudrate": "9600"}),
        ("probe_baud", {"device": url, "baudrate": "115200"}),
        ("probe_modbus", {"device": url, "baudrate": "19200"}),
        ("find_packs", {"device": url, "baudrate": "115200", "protocol": "PACE"}),
        ("find_packs", {"device": url, "baudrate": "115200", "protocol": "PACE"}),
        ("read_identity", {"device": url, "baudrate": "115200", "protocol": "PACE", "packs": "2"}),
        ("first_read", {"device": url, "baudrate": "115200", "protocol": "PACE", "packs": "2"}),
    ]
    reported = asyncio.Event()
    proceed = asyncio.Event()

    async def held_detect(link: SerialLink, *, progress: Any) -> Any:
        for step in stages:
            await proceed.wait()
            proceed.clear()
            progress(step)
            reported.set()
        await proceed.wait()
        return await detect(link)

    monkeypatch.setattr(config_flow, "detect", held_detect)
    told: list[str] = []

    @callback
    def flow_changed(event: Event[dict[str, Any]]) -> None:
        told.append(event.data["flow_id"])

    hass.bus.async_listen(EVENT_DATA_ENTRY_FLOW_PROGRESSED, flow_changed)

    result = await start_user_flow(hass, "serial")
    flow_id = result["flow_id"]
    result = await hass.config_entries.flow.async_configure(flow_id, {CONF_DEVICE: url})
    assert (result["progress_action"], result["description_placeholders"]) == ("connect", {"device": url})
    for action, placeholders in expected:
        told.clear()  # only what the stage itself fires counts, not what HA fired for our own re-read
        proceed.set()
        await reported.wait()  # (not async_block_till_done: that would wait for the held detection)
        reported.clear()
        assert told.count(flow_id) >= 1  # the frontend is told to re-read the step
        shown = await hass.config_entries.flow.async_configure(flow_id)  # what the frontend's re-read gets
        assert shown["type"] is FlowResultType.SHOW_PROGRESS
        assert (shown["progress_action"], shown["description_placeholders"]) == (action, placeholders)
        assert arguments(STRINGS["config"]["progress"][action]) <= set(placeholders)
    proceed.set()
    await hass.async_block_till_done()
    result = await hass.config_entries.flow.async_configure(flow_id)
    assert result["step_id"] == "confirm"


# -- helpers of the flow -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "fields"),
    [
        ("socket://10.0.0.7:4196", {"host": "10.0.0.7", "port": 4196}),
        ("socket://[fe80::1]:8899", {"host": "fe80::1", "port": 8899}),
        ("socket://bridge.local:99999", {CONF_DEVICE: "socket://bridge.local:99999"}),
        ("/dev/serial/by-id/usb-FTDI-if00", {CONF_DEVICE: "/dev/serial/by-id/usb-FTDI-if00"}),
    ],
)
def test_link_fields_round_trip(device: str, fields: dict[str, Any]) -> None:
    """The reconfigure form is pre-filled with values that give the same link back."""
    assert link_fields(device) == fields
    if "host" in fields:
        assert network_url(fields["host"], fields["port"]) == device

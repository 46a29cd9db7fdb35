"""Constants of the lfp_bms integration."""

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

DOMAIN: Final = "lfp_bms"

# Config entry data. The link URL lives under "device" so that HA's hardware page shows the port in use.
CONF_DEVICE: Final = "device"
CONF_BAUDRATE: Final = "baudrate"
CONF_PROTOCOL: Final = "protocol"
CONF_VER: Final = "ver"
CONF_CID1: Final = "cid1"
CONF_ADDRESSES: Final = "addresses"
CONF_MASTER_ADDRESS: Final = "master_address"
CONF_STRATEGY: Final = "strategy"
CONF_HOST: Final = "host"
CONF_PORT: Final = "port"

#: Master pack serial (None when the protocol gives none) and the refresh time measured during detection.
CONF_SERIAL: Final = "serial"
CONF_REFRESH_S: Final = "refresh_s"

# Options.
CONF_SCAN_INTERVAL: Final = "scan_interval"
CONF_INVERT_CURRENT: Final = "invert_current"
CONF_CELL_ENTITIES: Final = "cell_entities"
CONF_ALLOW_CONTROL: Final = "allow_control"

DEFAULT_SCAN_INTERVAL: Final = 10
MIN_SCAN_INTERVAL: Final = 2
MAX_SCAN_INTERVAL: Final = 3600
#: Identity, parameters and clock change rarely; read them this often after setup.
SLOW_READ_INTERVAL: Final = timedelta(hours=1)
#: Energy integration is skipped across a gap longer than this many poll intervals.
ENERGY_MAX_GAP_INTERVALS: Final = 3
#: A link down this long raises a repair issue.
LINK_DOWN_REPAIR_AFTER: Final = timedelta(minutes=5)
#: A configured pack that missed this many polls in a row (with the link up) raises a repair issue.
PACK_MISSING_REPAIR_POLLS: Final = 30
#: A pack (or CAN battery) whose readings were implausible this many times in a row raises a repair issue.
IMPLAUSIBLE_REPAIR_READINGS: Final = 5

# CAN link (Pylon LV CAN through python-can). entry.data = {"link": "can", interface, channel, bitrate, ...}.
CONF_LINK: Final = "link"
LINK_CAN: Final = "can"
CONF_INTERFACE: Final = "interface"
CONF_CHANNEL: Final = "channel"
CONF_BITRATE: Final = "bitrate"
CONF_LISTEN_ONLY: Final = "listen_only"
CONF_KEEP_ALIVE: Final = "keep_alive"
DEFAULT_CAN_BITRATE: Final = 500_000
CAN_BITRATES: Final = (500_000, 250_000, 125_000)
#: The battery broadcasts about once a second; entities are updated at most this often.
CAN_PUBLISH_INTERVAL: Final = timedelta(seconds=1)
#: No complete frame set for this long: the CAN entities become unavailable.
CAN_SILENCE_TIMEOUT: Final = timedelta(seconds=5)
#: How long setup and the config flow listen for the battery's frames.
CAN_LISTEN_TIMEOUT: Final = timedelta(seconds=5)
#: Inverter keep-alive period (0x305).
CAN_KEEP_ALIVE_INTERVAL: Final = timedelta(seconds=1)


def is_can_entry(data: Mapping[str, Any]) -> bool:
    """Whether a config entry's data describes a CAN link (serial entries have no "link" key)."""
    return data.get(CONF_LINK) == LINK_CAN

"""Constants of the lfp_bms integration."""

from datetime import timedelta
from typing import Final

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

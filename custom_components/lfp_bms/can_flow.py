"""The CAN branch of the config flow: the form, its checks, and detection (listen for one broadcast cycle)."""

import logging
from typing import Any

import can
import probatio
from homeassistant.core import HomeAssistant
from homeassistant.helpers.selector import (
    BooleanSelector,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
)

from .bms.can import CanState
from .can_coordinator import LINK_ERRORS, LISTEN_ONLY_KWARGS, CanLinkConfig, async_listen
from .const import (
    CAN_BITRATES,
    CAN_LISTEN_TIMEOUT,
    CONF_BITRATE,
    CONF_CHANNEL,
    CONF_INTERFACE,
    CONF_KEEP_ALIVE,
    CONF_LISTEN_ONLY,
    DEFAULT_CAN_BITRATE,
)

_LOGGER = logging.getLogger(__name__)

#: Every interface python-can knows (plugins included).
CAN_INTERFACES = sorted(can.interfaces.VALID_INTERFACES)

CAN_SCHEMA = probatio.Schema(
    {
        probatio.Required(CONF_INTERFACE, default="socketcan"): SelectSelector(
            SelectSelectorConfig(options=CAN_INTERFACES, mode=SelectSelectorMode.DROPDOWN)
        ),
        probatio.Required(CONF_CHANNEL): TextSelector(),
        probatio.Required(CONF_BITRATE, default=str(DEFAULT_CAN_BITRATE)): SelectSelector(
            SelectSelectorConfig(options=[str(b) for b in CAN_BITRATES], mode=SelectSelectorMode.DROPDOWN)
        ),
        probatio.Required(CONF_LISTEN_ONLY, default=False): BooleanSelector(),
        probatio.Required(CONF_KEEP_ALIVE, default=False): BooleanSelector(),
    }
)


def can_link_config(user_input: dict[str, Any]) -> CanLinkConfig:
    """The link the form describes."""
    return CanLinkConfig(
        interface=user_input[CONF_INTERFACE],
        channel=str(user_input[CONF_CHANNEL]).strip(),
        bitrate=int(user_input[CONF_BITRATE]),
        listen_only=bool(user_input[CONF_LISTEN_ONLY]),
        keep_alive=bool(user_input[CONF_KEEP_ALIVE]),
    )


def check_can_input(config: CanLinkConfig) -> dict[str, str]:
    """Form errors before anything is opened."""
    if config.listen_only and config.interface not in LISTEN_ONLY_KWARGS:
        return {CONF_LISTEN_ONLY: "listen_only_unsupported"}
    if config.listen_only and config.keep_alive:
        return {CONF_KEEP_ALIVE: "keep_alive_listen_only"}
    return {}


async def listen(hass: HomeAssistant, config: CanLinkConfig) -> tuple[CanState, str | None]:
    """Listen for one broadcast cycle; the state heard and None, or an error key for the form."""
    try:
        state = await async_listen(hass, config, CAN_LISTEN_TIMEOUT.total_seconds())
    except LINK_ERRORS:
        _LOGGER.debug("cannot open CAN %s %s", config.interface, config.channel, exc_info=True)
        return CanState(), "cannot_connect"
    return state, None if state.complete else "no_can_frames"


def can_title(state: CanState) -> str:
    name = state.manufacturer.name if state.manufacturer is not None and state.manufacturer.name else "Battery"
    return f"{name} CAN"


def confirm_placeholders(data: dict[str, Any], state: CanState) -> dict[str, str]:
    """What the confirm step shows."""

    def shown(value: object) -> str:
        return "-" if value is None else str(value)

    return {
        "manufacturer": shown(state.manufacturer.name if state.manufacturer else None),
        "modules": shown(state.module_count),
        "soc": shown(state.soc_pct),
        "voltage": shown(state.voltage_v),
        "interface": str(data[CONF_INTERFACE]),
        "channel": str(data[CONF_CHANNEL]),
        "bitrate": str(data[CONF_BITRATE]),
    }

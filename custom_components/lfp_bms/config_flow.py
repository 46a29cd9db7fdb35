"""Config flow for lfp_bms."""

from homeassistant.config_entries import ConfigFlow

from .const import DOMAIN


class LfpBmsConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a battery link."""

    VERSION = 1

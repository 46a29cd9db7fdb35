"""Config flow: choose the link, detect what is on it (with progress), confirm; USB discovery; reconfigure; options."""

import asyncio
import errno
import logging
from typing import Any
from urllib.parse import urlsplit

import probatio
from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlowWithReload,
)
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import callback
from homeassistant.data_entry_flow import AbortFlow
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SerialPortSelector,
    TextSelector,
)
from homeassistant.helpers.service_info.usb import UsbServiceInfo

from .bms.can import CanState
from .bms.client import LinkConfig
from .bms.detect import DetectionResult, NoBatteryFoundError, detect
from .bms.frame import BmsError
from .bms.progress import DetectProgress, Stage
from .bms.transport import LinkError, SerialLink
from .can_flow import CAN_SCHEMA, can_link_config, can_title, check_can_input, confirm_placeholders, listen
from .const import (
    CONF_ALLOW_CONTROL,
    CONF_CELL_ENTITIES,
    CONF_CHANNEL,
    CONF_DEVICE,
    CONF_INTERFACE,
    CONF_INVERT_CURRENT,
    CONF_REFRESH_S,
    CONF_SCAN_INTERVAL,
    CONF_SERIAL,
    DEFAULT_SCAN_INTERVAL,
    DOMAIN,
    MAX_SCAN_INTERVAL,
    is_can_entry,
)
from .coordinator import minimum_interval
from .migrate import MINOR_VERSION, VERSION

_LOGGER = logging.getLogger(__name__)

DEFAULT_BRIDGE_PORT = 8899
CLUSTER_TITLE = "Battery cluster"

SERIAL_SCHEMA = probatio.Schema({probatio.Required(CONF_DEVICE): SerialPortSelector()})
NETWORK_SCHEMA = probatio.Schema(
    {
        probatio.Required(CONF_HOST): TextSelector(),
        probatio.Required(CONF_PORT, default=DEFAULT_BRIDGE_PORT): NumberSelector(
            NumberSelectorConfig(min=1, max=65535, mode=NumberSelectorMode.BOX)
        ),
    }
)
#: Detection stages in order, for the progress bar.
STAGES = tuple(Stage)
#: The progress text (config.progress.<key> in strings.json) of each detection stage; "connect" before the first.
PROGRESS_ACTIONS = {
    Stage.BAUD: "probe_baud",
    Stage.PROTOCOL: "find_packs",
    Stage.PACK_ADDRESSES: "find_packs",
    Stage.IDENTITY: "read_identity",
    Stage.FIRST_READ: "first_read",
}


def network_url(host: str, port: float) -> str:
    """URL of a transparent TCP serial bridge."""
    host = host.strip()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    return f"socket://{host}:{int(port)}"


def link_fields(device: str) -> dict[str, Any]:
    """Form values that produce `device` again: host and port of a bridge URL, else the port itself."""
    url = urlsplit(device)
    if url.scheme == "socket" and url.hostname:
        try:
            return {CONF_HOST: url.hostname, CONF_PORT: url.port or DEFAULT_BRIDGE_PORT}
        except ValueError:  # a port out of range: let the user see the whole URL
            pass
    return {CONF_DEVICE: device}


def port_in_use(err: BaseException) -> bool:
    """The port exists but another program or entry holds it (serialx opens ports exclusively)."""
    return isinstance(err, LinkError) and isinstance(err.__cause__, OSError) and err.__cause__.errno == errno.EBUSY


def found_placeholders(device: str, config: LinkConfig) -> dict[str, str]:
    """What detection found, for the confirm step and the reconfigure result: the BMS maker (not the protocol's
    internal name), the number of packs (the text picks the plural), the baud rate and the link."""
    return {
        "protocol": config.protocol.label,
        "packs": str(len(config.addresses)),
        "baudrate": str(config.baudrate),
        "device": device,
    }


class LfpBmsConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a battery link."""

    VERSION = VERSION
    MINOR_VERSION = MINOR_VERSION

    def __init__(self) -> None:
        self._device: str | None = None
        self._link_step = "serial"
        self._detect_task: asyncio.Task[DetectionResult] | None = None
        self._result: DetectionResult | None = None
        self._error: str | None = None
        self._progress: DetectProgress | None = None
        self._usb_name = ""
        #: What the link form shows again after a failed detection (the user's input, or the discovered port).
        self._link_input: dict[str, Any] = {}
        self._can: tuple[dict[str, Any], CanState] | None = None

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: Any) -> LfpBmsOptionsFlow:
        """Options: poll interval, current sign, per-cell entities, control."""
        return LfpBmsOptionsFlow()

    @classmethod
    @callback
    def async_supports_options_flow(cls, config_entry: ConfigEntry) -> bool:
        """The options concern polling a serial link; a CAN entry listens and has none."""
        return not is_can_entry(config_entry.data)

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Pick the kind of link."""
        return self.async_show_menu(step_id="user", menu_options=["serial", "network", "can"])

    async def async_step_serial(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """A local serial port or an ESPHome serial proxy."""
        return await self._link_form("serial", SERIAL_SCHEMA, user_input)

    async def async_step_network(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """A TCP serial bridge."""
        return await self._link_form("network", NETWORK_SCHEMA, user_input)

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Move the same cluster to another port or bridge."""
        if is_can_entry(self._get_reconfigure_entry().data):
            return self.async_abort(reason="reconfigure_can")
        return self.async_show_menu(step_id="reconfigure", menu_options=["reconfigure_serial", "reconfigure_network"])

    async def async_step_reconfigure_serial(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """New serial port for the configured cluster."""
        return await self._link_form("reconfigure_serial", SERIAL_SCHEMA, user_input)

    async def async_step_reconfigure_network(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """New bridge for the configured cluster."""
        return await self._link_form("reconfigure_network", NETWORK_SCHEMA, user_input)

    async def _link_form(
        self, step_id: str, schema: probatio.Schema, user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if self._error is not None:
            # Coming back from a failed detection: show why, keep what the user typed.
            errors["base"], self._error = self._error, None
        elif user_input is not None:
            if CONF_DEVICE in user_input:
                self._device = user_input[CONF_DEVICE].strip()
            else:
                self._device = network_url(user_input[CONF_HOST], user_input[CONF_PORT])
            # A loaded entry holds the port exclusively; probing it would only fail with EBUSY. When
            # reconfiguring, only the other entries count: the entry itself may stay on its port.
            self._abort_if_device_used()
            self._link_input = user_input
            self._link_step = step_id
            return await self.async_step_detect()
        suggested = self._link_input
        if not suggested and self.source == SOURCE_RECONFIGURE:
            # The schema picks what fits: the URL for the serial form, host and port for the bridge form.
            device = self._get_reconfigure_entry().data[CONF_DEVICE]
            suggested = {CONF_DEVICE: device, **link_fields(device)}
        return self.async_show_form(
            step_id=step_id, data_schema=self.add_suggested_values_to_schema(schema, suggested), errors=errors
        )

    def _abort_if_device_used(self) -> None:
        # Also what keeps a serial-less cluster (no unique id) from being added twice.
        self._async_abort_entries_match({CONF_DEVICE: self._device})

    async def async_step_usb(self, discovery_info: UsbServiceInfo) -> ConfigFlowResult:
        """A USB serial adapter was plugged in. Nothing is sent to it before the user confirms."""
        self._device = discovery_info.device
        self._abort_if_device_used()
        await self.async_set_unique_id(f"usb_{discovery_info.vid}_{discovery_info.pid}_{discovery_info.serial_number}")
        self._abort_if_unique_id_configured()
        name = discovery_info.description or discovery_info.manufacturer or discovery_info.device
        self.context["title_placeholders"] = {"name": name}
        self._usb_name = name
        self._link_input = {CONF_DEVICE: self._device}
        return await self.async_step_usb_confirm()

    async def async_step_usb_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask before probing the discovered port."""
        if user_input is not None:
            self._link_step = "serial"
            return await self.async_step_detect()
        self._set_confirm_only()
        return self.async_show_form(step_id="usb_confirm", description_placeholders={"name": self._usb_name})

    async def async_step_detect(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Run detection in the background and show its progress."""
        if self._detect_task is None:
            self._detect_task = self.hass.async_create_task(self._async_detect(), eager_start=False)
        if not self._detect_task.done():
            action, placeholders = self._progress_text()
            return self.async_show_progress(
                step_id="detect",
                progress_action=action,
                description_placeholders=placeholders,
                progress_task=self._detect_task,
            )
        task, self._detect_task = self._detect_task, None
        try:
            self._result = task.result()
        except NoBatteryFoundError:
            self._error = "no_battery_found"
        except (OSError, BmsError) as err:
            _LOGGER.debug("detection on %s failed", self._device, exc_info=True)
            self._error = "port_in_use" if port_in_use(err) else "cannot_connect"
        if self._error is not None:
            return self.async_show_progress_done(next_step_id=self._link_step)
        return self.async_show_progress_done(next_step_id="confirm")

    async def _async_detect(self) -> DetectionResult:
        assert self._device is not None
        link = SerialLink(self._device, connect_timeout=10.0)

        def progress(step: DetectProgress) -> None:
            self._progress = step
            self.async_update_progress(STAGES.index(step.stage) / len(STAGES))
            # The frontend re-reads the step (and so the text naming this stage) only when told.
            self.async_notify_flow_changed()

        try:
            return await detect(link, progress=progress)
        finally:
            await link.close()

    def _progress_text(self) -> tuple[str, dict[str, str]]:
        """The progress action (its text in strings.json) and placeholders for the stage detection is in."""
        device = str(self._device)
        step = self._progress
        if step is None:
            return "connect", {"device": device}
        placeholders = {"device": device, "baudrate": str(step.baudrate)}
        if step.protocol is not None:
            placeholders["protocol"] = step.protocol.label
        if step.packs is not None:
            placeholders["packs"] = str(step.packs)
        if step.stage is Stage.BAUD and step.modbus:
            return "probe_modbus", placeholders
        return PROGRESS_ACTIONS[step.stage], placeholders

    async def async_step_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show what was found; create (or, when reconfiguring, update) the entry."""
        result = self._result
        assert result is not None
        assert self._device is not None
        serial = result.identity.serial
        if self.source == SOURCE_RECONFIGURE:
            entry = self._get_reconfigure_entry()
            if entry.unique_id is not None:
                # A cluster identified by its master's serial must answer with the same serial on the new link.
                await self.async_set_unique_id(serial, raise_on_progress=False)
                self._abort_if_unique_id_mismatch(reason="wrong_device")
            elif serial is not None and self.hass.config_entries.async_entry_for_domain_unique_id(DOMAIN, serial):
                raise AbortFlow("already_configured")  # another entry knows this cluster by its serial
            # A serial-less entry keeps no unique id: its devices and entities hang on the entry id, which no link
            # change moves (and a serial read later does not either).
            done = self.async_update_reload_and_abort(
                entry, data_updates=self._entry_data(result), reason="reconfigure_successful"
            )
            # Say what answered on the new link, not only that it worked.
            done["description_placeholders"] = found_placeholders(self._device, result.config)
            return done
        # Only a serial identifies a cluster; one without is kept from being added twice by its link (above).
        await self.async_set_unique_id(serial, raise_on_progress=False)
        if serial is not None:
            self._abort_if_unique_id_configured(updates={CONF_DEVICE: self._device})
        if user_input is not None:
            # The title names the cluster device (and so its entity ids); the model goes on the pack devices.
            return self.async_create_entry(title=CLUSTER_TITLE, data=self._entry_data(result))
        config = result.config
        return self.async_show_form(
            step_id="confirm",
            description_placeholders={
                **found_placeholders(self._device, config),
                "model": result.identity.model or "-",
                "serial": serial or "-",
                "addresses": ", ".join(str(a) for a in config.addresses),
                "reading": "single" if len(config.addresses) == 1 else str(config.strategy),
                "master": str(config.master_address),
            },
        )

    def _entry_data(self, result: DetectionResult) -> dict[str, Any]:
        return {
            CONF_DEVICE: self._device,
            CONF_SERIAL: result.identity.serial,
            CONF_REFRESH_S: round(result.refresh_s, 3),
            **result.config.as_dict(),
        }

    async def async_step_can(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """A CAN adapter on the inverter bus: open it and listen (bounded) for the battery's broadcast."""
        errors: dict[str, str] = {}
        if user_input is not None:
            config = can_link_config(user_input)
            errors = check_can_input(config)
            if not errors:
                # The battery sends no serial on CAN: one entry per adapter channel, and no unique id.
                self._async_abort_entries_match({CONF_INTERFACE: config.interface, CONF_CHANNEL: config.channel})
                state, error = await listen(self.hass, config)
                if error is None:
                    self._can = (config.as_dict(), state)
                    return await self.async_step_can_confirm()
                errors["base"] = error
        return self.async_show_form(
            step_id="can", data_schema=self.add_suggested_values_to_schema(CAN_SCHEMA, user_input or {}), errors=errors
        )

    async def async_step_can_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show what was heard; create the entry."""
        assert self._can is not None
        data, state = self._can
        if user_input is not None:
            return self.async_create_entry(title=can_title(state), data=data)
        return self.async_show_form(step_id="can_confirm", description_placeholders=confirm_placeholders(data, state))


class LfpBmsOptionsFlow(OptionsFlowWithReload):
    """Options of one link; the entry reloads when they change."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """One form with every option."""
        minimum = minimum_interval(float(self.config_entry.data.get(CONF_REFRESH_S, 0.0)))
        errors: dict[str, str] = {}
        if user_input is not None:
            # Checked here rather than by the selector's min/max: the selector's own error is a generic "Value 1.0
            # is too small", ours says the limit in seconds.
            if user_input[CONF_SCAN_INTERVAL] < minimum:
                errors[CONF_SCAN_INTERVAL] = "interval_too_short"
            elif user_input[CONF_SCAN_INTERVAL] > MAX_SCAN_INTERVAL:
                errors[CONF_SCAN_INTERVAL] = "interval_too_long"
            else:
                user_input[CONF_SCAN_INTERVAL] = int(user_input[CONF_SCAN_INTERVAL])
                return self.async_create_entry(data=user_input)
        schema = probatio.Schema(
            {
                probatio.Required(CONF_SCAN_INTERVAL, default=max(DEFAULT_SCAN_INTERVAL, minimum)): NumberSelector(
                    NumberSelectorConfig(step=1, unit_of_measurement="s", mode=NumberSelectorMode.BOX)
                ),
                probatio.Required(CONF_INVERT_CURRENT, default=False): BooleanSelector(),
                probatio.Required(CONF_CELL_ENTITIES, default=False): BooleanSelector(),
                probatio.Required(CONF_ALLOW_CONTROL, default=False): BooleanSelector(),
            }
        )
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or self.config_entry.options),
            errors=errors,
            description_placeholders={"minimum": str(minimum), "maximum": str(MAX_SCAN_INTERVAL)},
        )

"""The CAN link: a python-can bus listened to (push, no polling), folded into a CanState, published at most 1/s.

Frames reach the event loop through `can.Notifier(bus, [can.AsyncBufferedReader()], loop=hass.loop)` (a reader
thread for buses without a file descriptor, such as `virtual`; `loop.add_reader` otherwise) and are consumed by
a background task of the config entry. Opening the bus and stopping the notifier block, so they run in the
executor. Without a complete frame set for CAN_SILENCE_TIMEOUT the entities go unavailable; they come back with
the frames. The inverter keep-alive (0x305) is sent only when the entry asks for it: with an inverter on the bus
it would be a second, conflicting inverter.

An adapter that fails while open (slcan TCP connection dropped, USB adapter unplugged) is reported once through
`Listener.on_error`: the link is closed, the entities go unavailable with one warning, and it is reopened with
exponential backoff until the adapter is back.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Self

import can
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_call_later, async_track_time_interval
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from .bms.can import KEEP_ALIVE_DATA, KEEP_ALIVE_ID, CanState, fold
from .bms.energy import EnergyIntegrator, EnergyTotals
from .bms.frame import FrameError
from .bms.models import Implausible
from .bms.plausibility import can_max_power_w, check_can
from .const import (
    CAN_KEEP_ALIVE_INTERVAL,
    CAN_LISTEN_TIMEOUT,
    CAN_PUBLISH_INTERVAL,
    CAN_SILENCE_TIMEOUT,
    CONF_BITRATE,
    CONF_CHANNEL,
    CONF_INTERFACE,
    CONF_KEEP_ALIVE,
    CONF_LINK,
    CONF_LISTEN_ONLY,
    DEFAULT_CAN_BITRATE,
    DOMAIN,
    IMPLAUSIBLE_REPAIR_READINGS,
    LINK_CAN,
)
from .coordinator import implausible_issue, implausible_issue_id

_LOGGER = logging.getLogger(__name__)

CAN_PLATFORMS: list[Platform] = [Platform.BINARY_SENSOR, Platform.SENSOR]
#: How the interfaces that have one spell their listen-only (silent, monitor) mode in python-can 4.6.
LISTEN_ONLY_KWARGS: Mapping[str, Mapping[str, Any]] = {
    "slcan": {"listen_only": True},
    "vector": {"listen_only": True},
    "nixnet": {"listen_only": True},
    "cantact": {"monitor": True},
    "kvaser": {"driver_mode": False},
    "pcan": {"state": can.BusState.PASSIVE},
    "seeedstudio": {"operation_mode": "silent"},
}
#: What opening or using a bus raises: python-can's own errors, OS errors, a bad channel or bit rate.
LINK_ERRORS = (can.CanError, OSError, ValueError)
#: Reader-thread receive timeout: bounds how long Notifier.stop() waits for the thread.
_NOTIFIER_TIMEOUT_S = 0.2
#: Delay before the first attempt to reopen a failed adapter, doubled after each failed attempt up to the maximum.
RECONNECT_MIN_DELAY_S = 1.0
RECONNECT_MAX_DELAY_S = 60.0

type LfpCanConfigEntry = ConfigEntry[LfpCanCoordinator]


@dataclass(frozen=True, slots=True, kw_only=True)
class CanLinkConfig:
    """Everything needed to open the bus; the config entry's data."""

    interface: str
    channel: str
    bitrate: int = DEFAULT_CAN_BITRATE
    listen_only: bool = False
    keep_alive: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            interface=str(data[CONF_INTERFACE]),
            channel=str(data[CONF_CHANNEL]),
            bitrate=int(data.get(CONF_BITRATE, DEFAULT_CAN_BITRATE)),
            listen_only=bool(data.get(CONF_LISTEN_ONLY, False)),
            keep_alive=bool(data.get(CONF_KEEP_ALIVE, False)),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            CONF_LINK: LINK_CAN,
            CONF_INTERFACE: self.interface,
            CONF_CHANNEL: self.channel,
            CONF_BITRATE: self.bitrate,
            CONF_LISTEN_ONLY: self.listen_only,
            CONF_KEEP_ALIVE: self.keep_alive,
        }

    def bus_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `can.Bus` for this link."""
        kwargs: dict[str, Any] = {"interface": self.interface, "channel": self.channel, "bitrate": self.bitrate}
        if self.listen_only:
            kwargs.update(LISTEN_ONLY_KWARGS.get(self.interface, {}))
        if self.interface == "slcan" and "://" in self.channel:
            # slcan sleeps 2 s after opening for adapters that reset on open; a network adapter does not.
            kwargs["sleep_after_open"] = 0
        return kwargs


class _GuardedNotifier(can.Notifier):
    """A Notifier whose reader reports a failing bus once, through `Listener.on_error`, and then stops reading.

    python-can 4.6 does half of that. Its `loop.add_reader` callback lets the exception escape and stays
    registered, so the event loop logs it on every pass while the descriptor stays readable (a closed socket always
    is), and `on_error` is never called. Its reader thread does call `on_error` (in the loop), then raises again,
    which would log an uncaught thread exception.
    """

    def _on_message_available(self, bus: can.BusABC) -> None:
        try:
            super()._on_message_available(bus)
        except Exception as err:  # like the reader thread: any failure of the bus is reported
            assert self._loop is not None  # add_reader is only used with a loop
            for reader in self._readers:
                if isinstance(reader, int):
                    self._loop.remove_reader(reader)
            self._on_error(err)

    def _rx_thread(self, bus: can.BusABC) -> None:
        # The error has already been handed to on_error in the loop; the thread just ends.
        with contextlib.suppress(Exception):
            super()._rx_thread(bus)


class _FrameReader(can.AsyncBufferedReader):
    """Frames for the event loop; a reader error goes to the link's error callback (called in the loop)."""

    def __init__(self, on_error: Callable[[Exception], None]) -> None:
        super().__init__()
        self._report_error = on_error

    def on_error(self, exc: Exception) -> None:
        self._report_error(exc)


def _log_link_error(err: Exception) -> None:
    _LOGGER.debug("CAN adapter failed: %s", err)


class CanLink:
    """One open python-can bus with its notifier, and the optional keep-alive.

    `on_error` is called in the event loop, once per open, when the adapter fails while open.
    """

    def __init__(
        self, hass: HomeAssistant, config: CanLinkConfig, on_error: Callable[[Exception], None] = _log_link_error
    ) -> None:
        self.hass = hass
        self.config = config
        self._on_error = on_error
        self._bus: can.BusABC | None = None
        self._notifier: can.Notifier | None = None
        self._reader: _FrameReader | None = None
        self._keep_alive_unsub: CALLBACK_TYPE | None = None
        self._threaded = True

    @property
    def is_open(self) -> bool:
        return self._bus is not None

    async def open(self) -> None:
        """Open the bus (in the executor: constructors block) and start notifying the event loop."""
        bus = await self.hass.async_add_executor_job(partial(can.Bus, **self.config.bus_kwargs()))
        self._bus = bus
        reader = _FrameReader(partial(self._reader_failed, bus))
        self._reader = reader
        self._threaded = not _has_fileno(bus)
        self._notifier = _GuardedNotifier(bus, [reader], timeout=_NOTIFIER_TIMEOUT_S, loop=self.hass.loop)
        if self.config.keep_alive:
            self._keep_alive_unsub = async_track_time_interval(
                self.hass, self._keep_alive, CAN_KEEP_ALIVE_INTERVAL, name="lfp_bms CAN keep-alive"
            )
            self.hass.async_create_task(self.send_keep_alive(), eager_start=False)

    @callback
    def _reader_failed(self, bus: can.BusABC, err: Exception) -> None:
        if bus is self._bus:  # not a late report of a bus already closed
            self._on_error(err)

    async def receive(self) -> can.Message:
        """The next frame from the bus."""
        assert self._reader is not None
        return await self._reader.get_message()

    async def _keep_alive(self, now: datetime) -> None:
        await self.send_keep_alive()

    async def send_keep_alive(self) -> None:
        """0x305, 8 × 00, as an inverter sends it once a second."""
        bus = self._bus
        if bus is None:
            return
        message = can.Message(arbitration_id=KEEP_ALIVE_ID, data=KEEP_ALIVE_DATA, is_extended_id=False)
        try:
            await self.hass.async_add_executor_job(bus.send, message, 0.5)
        except LINK_ERRORS as err:
            _LOGGER.debug("keep-alive not sent: %s", err)

    async def close(self) -> None:
        """Stop the keep-alive and the notifier (its thread is joined), shut the bus down."""
        if self._keep_alive_unsub is not None:
            self._keep_alive_unsub()
            self._keep_alive_unsub = None
        notifier, bus = self._notifier, self._bus
        self._notifier = self._bus = self._reader = None
        if notifier is not None:
            if self._threaded:
                await self.hass.async_add_executor_job(notifier.stop)  # joins the reader thread
            else:
                notifier.stop()  # loop.remove_reader: must run in the loop, does not block
        if bus is not None:
            try:
                await self.hass.async_add_executor_job(bus.shutdown)
            except LINK_ERRORS as err:  # a failed adapter cannot be told to close its channel
                _LOGGER.debug("CAN adapter not shut down cleanly: %s", err)


def _has_fileno(bus: can.BusABC) -> bool:
    """The notifier watches the bus with loop.add_reader (no thread) exactly when it has a file descriptor."""
    try:
        return bus.fileno() >= 0
    except NotImplementedError, can.CanError, OSError, ValueError:
        return False


class FrameCycle:
    """Tells when every periodically sent frame has been heard: the first ID heard has come round again."""

    def __init__(self) -> None:
        self._first: int | None = None
        self.done = False

    def add(self, arbitration_id: int) -> bool:
        if self._first is None:
            self._first = arbitration_id
        elif arbitration_id == self._first:
            self.done = True
        return self.done


def _usable(message: can.Message) -> bool:
    """Pylon LV CAN uses 11-bit data frames only (a 29-bit 0x305 of some inverters is not ours to decode)."""
    return not (message.is_extended_id or message.is_remote_frame or message.is_error_frame)


async def async_listen(hass: HomeAssistant, config: CanLinkConfig, timeout: float) -> CanState:
    """Open the bus, hear one full broadcast cycle (bounded by `timeout`), close it. For the config flow.

    Returns the state heard so far when the time is up; raises a LINK_ERRORS exception when the bus cannot be
    opened. The caller checks `complete`.
    """
    link = CanLink(hass, config)
    state = CanState()
    cycle = FrameCycle()
    try:
        await link.open()
        async with asyncio.timeout(timeout):
            while not (state.complete and cycle.done):
                message = await link.receive()
                if not _usable(message):
                    continue
                try:
                    state = fold(state, message.arbitration_id, bytes(message.data))
                except FrameError as err:
                    _LOGGER.debug("bad frame 0x%03X: %s", message.arbitration_id, err)
                    continue
                cycle.add(message.arbitration_id)
    except TimeoutError:
        pass
    finally:
        await link.close()
    return state


@dataclass(frozen=True, slots=True, kw_only=True)
class CanData:
    """What the CAN entities read: the bus state and the energy integrated from its power."""

    state: CanState
    energy: EnergyTotals


def can_identifier(entry: ConfigEntry[Any]) -> str:
    """Device identifier of the cluster behind the CAN link."""
    return str(entry.unique_id or entry.entry_id)


class LfpCanCoordinator(DataUpdateCoordinator[CanData]):
    """Push coordinator: no update interval; the frames drive `async_set_updated_data`."""

    config_entry: LfpCanConfigEntry

    def __init__(self, hass: HomeAssistant, entry: LfpCanConfigEntry) -> None:
        super().__init__(hass, _LOGGER, config_entry=entry, name=entry.title, always_update=False)
        self.link_config = CanLinkConfig.from_dict(entry.data)
        self.link = CanLink(hass, self.link_config, on_error=self._on_link_error)
        self.state = CanState()
        self.energy = EnergyIntegrator(CAN_SILENCE_TIMEOUT.total_seconds() + CAN_PUBLISH_INTERVAL.total_seconds())
        #: States not published because a value in them was implausible (bms/plausibility.py).
        self.implausible_readings = 0
        #: Consecutive publish slots whose state was implausible; None before the first plausible one.
        self._implausible_in_row: int | None = None
        self._cycle = FrameCycle()
        self._ready = asyncio.Event()
        self._last_publish: float | None = None
        self._publish_unsub: CALLBACK_TYPE | None = None
        self._silence_unsub: CALLBACK_TYPE | None = None
        self._consumer: asyncio.Task[None] | None = None
        #: Closing the failed adapter, or one attempt to reopen it.
        self._recovery: asyncio.Task[None] | None = None
        self._reconnect_unsub: CALLBACK_TYPE | None = None
        self._reconnect_delay = RECONNECT_MIN_DELAY_S
        self._link_lost = False
        self._stopping = False

    async def _async_setup(self) -> None:
        """Open the bus and start consuming frames; a bus that does not open means ConfigEntryNotReady."""
        try:
            await self.link.open()
        except LINK_ERRORS as err:
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="cannot_connect",
                translation_placeholders={"error": str(err) or type(err).__name__},
            ) from err
        self._start_consumer()

    def _start_consumer(self) -> None:
        self._consumer = self.config_entry.async_create_background_task(
            self.hass, self._consume(), name=f"lfp_bms CAN {self.link_config.channel}"
        )

    async def _async_update_data(self) -> CanData:
        """First refresh (or a manual one): wait, bounded, for a full broadcast cycle; then the current data."""
        if not self._ready.is_set():
            try:
                async with asyncio.timeout(CAN_LISTEN_TIMEOUT.total_seconds()):
                    await self._ready.wait()
            except TimeoutError:
                if not self.state.complete:
                    raise UpdateFailed(
                        translation_domain=DOMAIN,
                        translation_key="can_silent",
                        translation_placeholders={"channel": self.link_config.channel},
                    ) from None
        return self._data()

    def _data(self) -> CanData:
        return CanData(state=self.state, energy=self.energy.totals)

    async def _consume(self) -> None:
        while True:
            message = await self.link.receive()
            if not _usable(message):
                continue
            try:
                self.state = fold(self.state, message.arbitration_id, bytes(message.data))
            except FrameError as err:
                _LOGGER.debug("bad frame 0x%03X: %s", message.arbitration_id, err)
                continue
            # Published from the first full cycle on (also after a gap): no value of the set is left unknown.
            if self._cycle.add(message.arbitration_id) and self.state.complete:
                self._ready.set()
                self._schedule_publish()

    @callback
    def _schedule_publish(self) -> None:
        if self._publish_unsub is not None:
            return  # one is already due
        now = self.hass.loop.time()
        interval = CAN_PUBLISH_INTERVAL.total_seconds()
        if self._last_publish is None or now - self._last_publish >= interval:
            self._publish()
        else:
            self._publish_unsub = async_call_later(self.hass, self._last_publish + interval - now, self._publish_later)

    @callback
    def _publish_later(self, _now: datetime) -> None:
        self._publish_unsub = None
        if self.state.complete:
            self._publish()

    @callback
    def _publish(self) -> None:
        now = self.hass.loop.time()
        self._last_publish = now
        problem = check_can(self.state)
        if problem is not None:
            # Like a corrupt frame: not published, not integrated. The slot is used up, so a value that stays
            # implausible costs one check a second; once it has for CAN_SILENCE_TIMEOUT the entities go unavailable.
            self._implausible(problem)
            return
        self._plausible()
        power = self.state.power_w
        if power is not None and not self.energy.add(now, power, can_max_power_w(self.state)):
            _LOGGER.debug("CAN power %s W is beyond what the battery can carry, not integrated", power)
        self._rearm_silence()
        self.async_set_updated_data(self._data())

    def _implausible(self, problem: Implausible) -> None:
        self.implausible_readings += 1
        _LOGGER.debug("CAN state not published, implausible: %s", problem)
        count = (self._implausible_in_row or 0) + 1
        self._implausible_in_row = count
        if count == IMPLAUSIBLE_REPAIR_READINGS:
            device = dr.async_get(self.hass).async_get_device(identifiers={(DOMAIN, can_identifier(self.config_entry))})
            name = None if device is None else device.name_by_user or device.name
            issue_id = implausible_issue_id(self.config_entry.entry_id)
            implausible_issue(self.hass, issue_id, name or self.config_entry.title, problem, count)

    def _plausible(self) -> None:
        # None: the first publish since setup; an issue may be left over from before a reload.
        if self._implausible_in_row is None or self._implausible_in_row >= IMPLAUSIBLE_REPAIR_READINGS:
            ir.async_delete_issue(self.hass, DOMAIN, implausible_issue_id(self.config_entry.entry_id))
        self._implausible_in_row = 0

    def _rearm_silence(self) -> None:
        if self._silence_unsub is not None:
            self._silence_unsub()
        self._silence_unsub = async_call_later(self.hass, CAN_SILENCE_TIMEOUT, self._on_silence)

    @callback
    def _on_silence(self, _now: datetime) -> None:
        """Nothing published for CAN_SILENCE_TIMEOUT: unavailable until a complete frame set is heard again."""
        self._silence_unsub = None
        self._forget_frames()
        self.async_set_update_error(
            UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="can_silent",
                translation_placeholders={"channel": self.link_config.channel},
            )
        )

    def _forget_frames(self) -> None:
        """Forget the old frames so that values of before a gap are never published as fresh."""
        self.state = CanState()
        self._cycle = FrameCycle()
        self.energy.break_series()

    def _cancel_timers(self) -> None:
        for unsub in (self._publish_unsub, self._silence_unsub, self._reconnect_unsub):
            if unsub is not None:
                unsub()
        self._publish_unsub = self._silence_unsub = self._reconnect_unsub = None

    @callback
    def _on_link_error(self, err: Exception) -> None:
        """The adapter failed while open: close it, go unavailable with one warning line, reopen it later."""
        if self._link_lost or self._stopping:
            return
        self._link_lost = True
        channel = self.link_config.channel
        _LOGGER.warning("CAN adapter %s failed, reconnecting: %s", channel, str(err) or type(err).__name__)
        if self._consumer is not None:
            self._consumer.cancel()
            self._consumer = None
        self._cancel_timers()
        self._forget_frames()
        self._set_failed(
            UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="can_link_lost",
                translation_placeholders={"channel": channel, "error": str(err) or type(err).__name__},
            )
        )
        self._recovery = self.config_entry.async_create_background_task(
            self.hass, self._close_failed_link(), name=f"lfp_bms CAN close {channel}"
        )

    def _set_failed(self, err: UpdateFailed) -> None:
        """async_set_update_error without its ERROR line: the failure has been logged once already."""
        self.last_exception = err
        if self.last_update_success:
            self.last_update_success = False
            self.async_update_listeners()

    async def _close_failed_link(self) -> None:
        await self.link.close()
        self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        if not self._stopping:
            self._reconnect_unsub = async_call_later(self.hass, self._reconnect_delay, self._reconnect_due)

    @callback
    def _reconnect_due(self, _now: datetime) -> None:
        self._reconnect_unsub = None
        self._recovery = self.config_entry.async_create_background_task(
            self.hass, self._reconnect(), name=f"lfp_bms CAN reconnect {self.link_config.channel}"
        )

    async def _reconnect(self) -> None:
        """One attempt to reopen the adapter; the next one after twice the delay when it fails."""
        try:
            await self.link.open()
        except LINK_ERRORS as err:
            _LOGGER.debug("CAN adapter %s not back yet: %s", self.link_config.channel, err)
            self._reconnect_delay = min(self._reconnect_delay * 2, RECONNECT_MAX_DELAY_S)
            self._schedule_reconnect()
            return
        if self._stopping:
            return  # async_shutdown closes it
        _LOGGER.info("CAN adapter %s reconnected", self.link_config.channel)
        self._reconnect_delay = RECONNECT_MIN_DELAY_S
        self._link_lost = False
        self._start_consumer()

    async def async_shutdown(self) -> None:
        """Cancel timers and the consumer, let a running close or reopen finish, then close the bus."""
        self._stopping = True
        await super().async_shutdown()
        self._cancel_timers()
        if self._consumer is not None:
            self._consumer.cancel()
            await asyncio.gather(self._consumer, return_exceptions=True)
            self._consumer = None
        if self._recovery is not None:
            # Not cancelled: a bus being opened in the executor would be left open.
            await asyncio.gather(self._recovery, return_exceptions=True)
            self._recovery = None
        await self.link.close()


async def async_setup_can_entry(hass: HomeAssistant, entry: LfpCanConfigEntry) -> bool:
    """Set up a CAN entry: listen until the battery has been heard, create the cluster device, forward platforms."""
    coordinator = LfpCanCoordinator(hass, entry)
    entry.async_on_unload(coordinator.async_shutdown)
    await coordinator.async_config_entry_first_refresh()
    manufacturer = coordinator.state.manufacturer
    dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, can_identifier(entry))},
        manufacturer=manufacturer.name if manufacturer is not None and manufacturer.name else None,
        model="Pylon LV CAN",
        name=entry.title,
    )
    entry.runtime_data = coordinator
    await hass.config_entries.async_forward_entry_setups(entry, CAN_PLATFORMS)
    return True

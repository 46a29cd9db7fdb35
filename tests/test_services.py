"""Service actions against the simulated cluster: reads with control off, writes only with control on,
validation before sending, pack targeting by device."""

from datetime import datetime
from typing import Any

import probatio
import pytest
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr

from custom_components.lfp_bms.bms.frame import decode_frame
from custom_components.lfp_bms.bms.pace import Cid2
from custom_components.lfp_bms.bms.pace_params import (
    CellOverVoltage,
    LimiterStartCurrent,
    ParameterError,
    ParameterRule,
)
from custom_components.lfp_bms.bms.simulator import ConstantProfile, Simulator
from custom_components.lfp_bms.const import CONF_ALLOW_CONTROL, DOMAIN
from custom_components.lfp_bms.control_entity import parameter_error
from custom_components.lfp_bms.entity import pack_identifier

from .common import setup_entry

CONTROL = {CONF_ALLOW_CONTROL: True}


def pack_device(hass: HomeAssistant, address: int) -> str:
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, pack_identifier(entry.runtime_data, address)), entry.entry_id
    )
    assert device is not None
    return device.id


async def call(hass: HomeAssistant, service: str, data: dict[str, Any], *, response: bool = True) -> Any:
    return await hass.services.async_call(DOMAIN, service, data, blocking=True, return_response=response)


def sent_cid2s(sim: Simulator) -> list[int]:
    return [decode_frame(s.request).cid2 for s in sim.sent]


async def test_read_parameters_with_control_off(hass: HomeAssistant, simulator: Simulator) -> None:
    """Reads work without the control option: one group, or all of them."""
    await setup_entry(hass, simulator)
    device_id = pack_device(hass, 1)
    result = await call(hass, "read_parameters", {"device_id": device_id, "group": "cell_overvoltage"})
    # The capture's values (tests/data/captures.md §A.4): 3.60 / 3.70 / 3.38 V, 1 s.
    assert result == {
        "address": 1,
        "groups": {"cell_overvoltage": {"alarm_v": 3.6, "protect_v": 3.7, "release_v": 3.38, "delay_s": 1.0}},
    }
    everything = await call(hass, "read_parameters", {"device_id": device_id})
    assert len(everything["groups"]) == 17
    assert everything["groups"]["protocol_selection"] == {
        "can_protocol": 0x13,
        "rs485_protocol": 0x14,
        "selection_type": 0,
    }


async def test_writes_refused_with_control_off(hass: HomeAssistant, simulator: Simulator) -> None:
    """write_parameters, set_clock and a writing raw command refuse with a translated message; nothing is sent."""
    await setup_entry(hass, simulator)
    device_id = pack_device(hass, 1)
    simulator.sent.clear()
    attempts: list[tuple[str, dict[str, Any], bool]] = [
        ("write_parameters", {"group": "cell_overvoltage", "values": {"alarm_v": 3.5}}, True),
        ("set_clock", {}, False),
        ("raw_command", {"cid2": Cid2.SHUTDOWN, "info": "01"}, True),
    ]
    for service, data, response in attempts:
        with pytest.raises(ServiceValidationError) as refused:
            await call(hass, service, {"device_id": device_id, **data}, response=response)
        assert refused.value.translation_key == "control_disabled"
        assert "Allow control" in str(refused.value)
    assert simulator.sent == type(simulator.sent)(maxlen=simulator.sent.maxlen)


async def test_write_parameters_validated_and_read_back(hass: HomeAssistant, simulator: Simulator) -> None:
    """A valid change is written and returned as read back; an invalid one is refused before sending."""
    await setup_entry(hass, simulator, CONTROL)
    device_id = pack_device(hass, 1)
    result = await call(
        hass, "write_parameters", {"device_id": device_id, "group": "cell_overvoltage", "values": {"alarm_v": 3.5}}
    )
    assert result["values"]["alarm_v"] == pytest.approx(3.5)
    assert simulator.cluster.pack(1).settings.cell_ov_alarm_mv == 3500
    writes = sent_cid2s(simulator).count(CellOverVoltage.write_cid2)
    with pytest.raises(ServiceValidationError) as invalid:
        await call(
            hass,
            "write_parameters",
            {"device_id": device_id, "group": "cell_overvoltage", "values": {"protect_v": 3.4}},
        )
    assert invalid.value.translation_key == "parameter_must_be_above"
    assert invalid.value.translation_placeholders == {
        "field": "Cell over-voltage protection",
        "value": "3.4 V",
        "other": "Cell over-voltage alarm",
        "other_value": "3.5 V",
    }
    assert sent_cid2s(simulator).count(CellOverVoltage.write_cid2) == writes
    with pytest.raises(ServiceValidationError) as unknown:
        await call(hass, "write_parameters", {"device_id": device_id, "group": "sleep", "values": {"volts": 3.0}})
    assert unknown.value.translation_key == "parameter_unknown_field"
    # What was typed, the group by its name, and the field names the group does have.
    assert unknown.value.translation_placeholders == {"field": "volts", "group": "Sleep", "fields": "cell_v, delay_min"}


@pytest.mark.parametrize("simulator", [{"profile": ConstantProfile(20.0)}], indirect=True)
async def test_read_history(hass: HomeAssistant, simulator: Simulator) -> None:
    """Decoded records, newest first, at most `count`; more than 50 is a schema error."""
    simulator.advance(3 * 1800)
    await setup_entry(hass, simulator)
    device_id = pack_device(hass, 1)
    result = await call(hass, "read_history", {"device_id": device_id, "count": 3})
    records = result["records"]
    assert len(records) == 3
    assert len(records[0]["cell_voltages_mv"]) == 16
    assert records[0]["timestamp"] >= records[1]["timestamp"]
    newest = simulator.cluster.pack(1).history[0]
    assert records[0]["timestamp"] == newest.time.isoformat()
    assert records[0]["cell_voltages_mv"] == list(newest.cell_voltages_mv)
    with pytest.raises(Exception, match="50"):
        await call(hass, "read_history", {"device_id": device_id, "count": 51})


async def test_parameter_errors_name_fields_as_the_user_sees_them(hass: HomeAssistant, simulator: Simulator) -> None:
    """A protocol code is named like its select entity, a history range like the action's field; the limits come
    with the message (the wire index of a history record is 16 bits: the last start for 2 records is 65534)."""
    await setup_entry(hass, simulator, CONTROL)
    device_id = pack_device(hass, 1)
    with pytest.raises(ServiceValidationError) as code:
        await call(
            hass,
            "write_parameters",
            {"device_id": device_id, "group": "protocol_selection", "values": {"can_protocol": 300}},
        )
    assert code.value.translation_key == "parameter_above_maximum"
    assert code.value.translation_placeholders == {"field": "Inverter CAN protocol", "value": "300", "maximum": "255"}
    with pytest.raises(ServiceValidationError) as low:
        await call(
            hass, "write_parameters", {"device_id": device_id, "group": "cell_overvoltage", "values": {"alarm_v": 2.0}}
        )
    assert low.value.translation_key == "parameter_below_minimum"
    assert low.value.translation_placeholders == {
        "field": "Cell over-voltage alarm",
        "value": "2 V",
        "minimum": "2.5 V",
    }
    # A value no register or wire field can carry (checked after validation, so rarely reached): named, no number.
    unfit = await parameter_error(ParameterError(ParameterRule.WIRE_RANGE, "current_a", group=LimiterStartCurrent))
    assert unfit.translation_key == "parameter_not_encodable"
    assert unfit.translation_placeholders == {"field": "Charge limiter start current"}
    with pytest.raises(ServiceValidationError) as history:
        await call(hass, "read_history", {"device_id": device_id, "count": 2, "start": 0xFFFF})
    assert history.value.translation_key == "parameter_above_maximum"
    assert history.value.translation_placeholders == {"field": "Start", "value": "65535", "maximum": "65534"}
    assert str(history.value) == '"Start" can be at most 65534; 65535 is too high. Nothing was sent to the battery'


async def test_set_clock(hass: HomeAssistant, simulator: Simulator) -> None:
    """An explicit local date-time is written and read back into the clock sensor."""
    await setup_entry(hass, simulator, CONTROL)
    await call(
        hass, "set_clock", {"device_id": pack_device(hass, 1), "datetime": "2026-01-02 03:04:05"}, response=False
    )
    assert simulator.cluster.pack(1).clock(simulator.cluster.time_s) == datetime(2026, 1, 2, 3, 4, 5)
    state = hass.states.get("sensor.pack_1_bms_clock")
    assert state is not None
    assert state.state.startswith("2026-01-02T")


async def test_raw_command(hass: HomeAssistant, simulator: Simulator) -> None:
    """A read CID2 works with control off; with control on a write goes and its RTN comes back."""
    entry = await setup_entry(hass, simulator)
    device_id = pack_device(hass, 1)
    reply = await call(hass, "raw_command", {"device_id": device_id, "cid2": Cid2.READ_CLOCK})
    assert reply["rtn"] == 0
    assert len(bytes.fromhex(reply["info"])) == 6
    hass.config_entries.async_update_entry(entry, options=CONTROL)
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    # Issue 17: a refusal (RTN 09) came back as a result. It is an error now, unless the caller asks for the RTN.
    with pytest.raises(HomeAssistantError) as refused:
        await call(hass, "raw_command", {"device_id": device_id, "cid2": Cid2.SHUTDOWN, "info": "02"})
    assert refused.value.translation_key == "raw_command_refused"
    assert refused.value.translation_placeholders == {"address": "1", "cid2": "0x9C", "rtn": "0x09"}
    assert "0x09" in str(refused.value)
    data = {"device_id": device_id, "cid2": Cid2.SHUTDOWN, "info": "02", "return_refusal": True}
    assert await call(hass, "raw_command", data) == {"address": 1, "rtn": 0x09, "info": ""}


async def test_targets(hass: HomeAssistant, simulator: Simulator) -> None:
    """Pack 2 sits behind the master (not writable); the cluster hub is not a pack."""
    entry = await setup_entry(hass, simulator, CONTROL)
    with pytest.raises(ServiceValidationError) as slave:
        await call(hass, "read_parameters", {"device_id": pack_device(hass, 2), "group": "sleep"})
    assert slave.value.translation_key == "not_writable"
    hub = entry.runtime_data.cluster_device_id
    with pytest.raises(ServiceValidationError) as not_pack:
        await call(hass, "read_parameters", {"device_id": hub})
    assert not_pack.value.translation_key == "not_a_pack"


#: Issue 17: numbers the library got raw (ValueError, OverflowError), each now a translated validation error.
BAD_VALUES = {
    "NaN": ("cell_overvoltage", {"alarm_v": "nan"}, "parameter_not_finite", "Cell over-voltage alarm"),
    "NaN number": ("cell_overvoltage", {"alarm_v": float("nan")}, "parameter_not_finite", "Cell over-voltage alarm"),
    "infinity on an integer field": (
        "charge_overcurrent",
        {"alarm_a": "inf"},
        "parameter_not_finite",
        "Charge over-current alarm",
    ),
    "1e400": ("sleep", {"delay_min": "1e400"}, "parameter_not_finite", "Sleep delay"),
    "-infinity": (
        "mosfet_overtemperature",
        {"alarm_c": float("-inf")},
        "parameter_not_finite",
        "MOSFET over-temperature alarm",
    ),
    "above the range": ("cell_overvoltage", {"alarm_v": 9.0}, "parameter_above_maximum", "Cell over-voltage alarm"),
    "below the range": (
        "limiter_start_current",
        {"current_a": 1},
        "parameter_below_minimum",
        "Charge limiter start current",
    ),
}


@pytest.mark.parametrize(("group", "values", "key", "name"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
async def test_write_parameters_validates_every_number(
    hass: HomeAssistant, simulator: Simulator, group: str, values: dict[str, Any], key: str, name: str
) -> None:
    """Not finite or out of the field's range: a translated validation error naming the field as its entity is
    named, nothing sent (not even the read of the group)."""
    await setup_entry(hass, simulator, CONTROL)
    simulator.sent.clear()
    with pytest.raises(ServiceValidationError) as invalid:
        await call(hass, "write_parameters", {"device_id": pack_device(hass, 1), "group": group, "values": values})
    assert invalid.value.translation_key == key
    assert invalid.value.translation_placeholders is not None
    assert invalid.value.translation_placeholders["field"] == name
    assert "Nothing was sent" in str(invalid.value)
    assert not simulator.sent


@pytest.mark.parametrize(
    "moment",
    [
        "1999-12-31 23:59:59",  # issue 17: ValueError
        "2300-01-01 00:00:00",  # issue 17: ValueError
        "2256-01-01 00:00:00",
        "0001-01-01T00:00:00+14:00",  # before year 1 in Home Assistant's zone: OverflowError
    ],
)
async def test_set_clock_outside_the_bms_clock(hass: HomeAssistant, simulator: Simulator, moment: str) -> None:
    """The PACE clock holds 2000-2255 (year − 2000 in one byte): anything else is a translated error, unsent."""
    await setup_entry(hass, simulator, CONTROL)
    simulator.sent.clear()
    with pytest.raises(ServiceValidationError) as invalid:
        await call(hass, "set_clock", {"device_id": pack_device(hass, 1), "datetime": moment}, response=False)
    assert invalid.value.translation_key == "clock_out_of_range"
    assert "2000-01-01 00:00:00" in str(invalid.value)
    assert "2255-12-31 23:59:59" in str(invalid.value)
    assert not simulator.sent


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "1e400", -1])
async def test_integer_fields_reject_any_non_integer(hass: HomeAssistant, simulator: Simulator, value: Any) -> None:
    """read_history's count/start and raw_command's CID2: the schema refuses NaN, ∞ and out-of-range values (an
    invalid-input error, never ValueError/OverflowError from the library), and nothing is sent."""
    await setup_entry(hass, simulator)
    device_id = pack_device(hass, 1)
    simulator.sent.clear()
    for service, field in (("read_history", "count"), ("read_history", "start"), ("raw_command", "cid2")):
        with pytest.raises(probatio.Invalid):
            await call(hass, service, {"device_id": device_id, field: value})
    assert not simulator.sent

"""The '~' frame codec against the PACE captures (tests/data/captures.md A/B) and the worked examples of
docs/protocol.md §1.3/§1.4."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custom_components.lfp_bms.bms.frame import (
    FrameError,
    checksum,
    decode_frame,
    encode_frame,
    length_field,
    split_frames,
)

#: Every request frame of tests/data/captures.md A and B, verbatim.
REQUESTS = [
    # A.1
    "~25014642E00201FD30\r",
    "~25014644E00201FD2E\r",
    "~250146C10000FD9A\r",
    "~250146C20000FD99\r",
    "~250046A60000FD98\r",
    "~250146900000FDA5\r",
    # A.2
    "~25004699E0020DFD12\r",
    "~25004699E0020CFD13\r",
    "~25004699E00206FD20\r",
    "~25004699E00207FD1F\r",
    "~25004699E0020AFD15\r",
    "~25004699E0020BFD14\r",
    "~25004699E00209FD1D\r",
    "~25004699E00208FD1E\r",
    "~2500469AE00200FD1E\r",
    "~2500469AE00201FD1D\r",
    "~2500469BE00200FD1D\r",
    "~2500469BE00201FD1C\r",
    "~2500469CE00201FD1B\r",
    # A.3
    "~250046B10000FD9C\r",
    "~250046B2400C1808140E0F25FAFC\r",
    "~250046A1C004018FFCA7\r",
    # A.4 reads
    "~250046D10000FD9A\r",
    "~250046D50000FD96\r",
    "~250046D30000FD98\r",
    "~250046D70000FD94\r",
    "~250046D90000FD92\r",
    "~250046DB0000FD89\r",
    "~250046E30000FD97\r",
    "~250046E50000FD95\r",
    "~250046B60000FD97\r",
    "~250046A00000FD9E\r",
    "~250046AF0000FD88\r",
    "~250046DD0000FD87\r",
    "~250046DF0000FD85\r",
    "~250046E10000FD99\r",
    "~250046E70000FD93\r",
    "~250046ED0000FD86\r",
    "~250046EB0000FD88\r",
    # A.4 writes
    "~250046D0F010010E100E740D340AFA21\r",
    "~250046D4F01001E10AE740D2F00AF9FB\r",
    "~250046D2F010010AF009C40B540AFA0E\r",
    "~250046D6F01001AF009C40B5400AFA0A\r",
    "~250046D8400C010068006E0AFB01\r",
    "~250046DA400C010069006E0AFAF7\r",
    "~250046E2A006009604FC4E\r",
    "~250046E4E0020CFD0C\r",
    "~250046B580080D48001EFBD2\r",
    "~250046A880080C1C0005FBDA\r",
    "~250046AE600ADAC007D005FB3A\r",
    "~250046DC501A010CA80CD00C9E0CDA0D020CD0F797\r",
    "~250046DE501A010AAA0A780AAA0A1409E20A14F7BC\r",
    "~250046E0200E010E2E0EF60DFCFA48\r",
    "~250046E6501A0109E209B009E20D340D660D34F7EB\r",
    "~250046EEC0040064FCA4\r",
    "~250046ECA006131400FC47\r",
    # B.1
    "~25004642E00201FD31\r",
    "~25004642E002FFFD06\r",
    "~25004644E00201FD2F\r",
    "~25004644E002FFFD04\r",
    # B.2
    "~250246900000FDA4\r",
    "~25024642E00202FD2E\r",
    "~25024644E00202FD2C\r",
]

#: Every reply frame of tests/data/captures.md A and B (all marked ✓ there).
REPLIES = [
    "~25014600F07A0001100CC70CC80CC70CC70CC70CC50CC60CC70CC70CC60CC70CC60CC60CC70CC60CC7060B9B0B990B990B990BB30BBCFF1FCCCD12D303286A008C2710E1E4\r",
    "~25014600004C000110000000000000000000000000000000000600000000000000000000000E000000000000EF3A\r",
    "~25014600602850313653313030412D313831322D312E30302000F58E\r",
    "~25014600B05031383132313031333830333039442020202020202020202020202020202020202020202020202020EE0F\r",
    "~25004600400C183C286A2710FB0E\r",
    "~25014600E00202FD35\r",
    "~25004600C0040D01FCC3\r",
    "~25004600E00226FD30\r",
    "~25004609E00204FD2B\r",
    "~250046000000FDAF\r",
    "~25004600400C180815051D1FFB10\r",
    "~25004600709018021D020038100D970D990D9A0D990D990D970D990D980D990D980D800D980D980D990D980D98060B740B750B770B760B710B79FF6ED9D7286A286A0000000000060043FFFFFFFFDDE3\r",
    "~25004600F010010E100E740D340AFA35\r",
    "~25004600400C009604009604FB32\r",
    "~25004600501A0109E209B009E20D340D660D34F806\r",
    "~25004600F07A0001100D420D140D130D130D130D130D130D130D110D120D130D110D110D120D100D13060BB70BB70BB80BB60BB30BBD0000D155128E03138800001388E3AC\r",
    "~25024600F07A0002100D370CE50D080CED0D060CE70D1D0CEB0CF80CFA0CFB0D070CE10CF10CC20D06060BAA0BAC0BA60BA70BA90BB20000CF9406D603138800001388E261\r",
]


def _fields(frame: str) -> tuple[int, int, int, int, bytes]:
    """VER, ADR, CID1, CID2 and INFO read straight off the capture text."""
    return (
        int(frame[1:3], 16),
        int(frame[3:5], 16),
        int(frame[5:7], 16),
        int(frame[7:9], 16),
        bytes.fromhex(frame[13:-5]),
    )


@pytest.mark.parametrize("frame", REQUESTS)
def test_encode_frame_reproduces_captured_request(frame: str) -> None:
    assert encode_frame(*_fields(frame)) == frame.encode("ascii")


@pytest.mark.parametrize("frame", REQUESTS + REPLIES)
def test_decode_frame_reads_captured_frame(frame: str) -> None:
    ver, adr, cid1, cid2, info = _fields(frame)
    decoded = decode_frame(frame.encode("ascii"))
    assert (decoded.ver, decoded.adr, decoded.cid1, decoded.cid2, decoded.info) == (ver, adr, cid1, cid2, info)
    assert decoded.raw == frame.encode("ascii")


@pytest.mark.parametrize(
    ("lenid", "length"),
    [
        (0x000, 0x0000),
        (0x002, 0xE002),
        (0x004, 0xC004),
        (0x00C, 0x400C),
        (0x012, 0xD012),
        (0x04C, 0x004C),
        (0x07A, 0xF07A),
    ],
)
def test_length_field_worked_examples(lenid: int, length: int) -> None:
    """docs/protocol.md §1.3 table."""
    assert length_field(lenid) == length


def test_length_field_rejects_too_long_info() -> None:
    with pytest.raises(FrameError):
        length_field(0x1000)


def test_checksum_worked_examples() -> None:
    """docs/protocol.md §1.4: example 1 (PACE analog request) and the vendor example 2."""
    assert checksum(b"25014642E00201") == 0xFD30
    assert checksum(b"1203400356ABCEFE") == 0xFC72


def test_garbage_and_crlf_before_soi_are_skipped() -> None:
    frame = decode_frame(b"\r\n\x00\xffnoise ~25014600E00202FD35\r\n")
    assert (frame.adr, frame.cid2, frame.info) == (0x01, 0x00, b"\x02")


def test_leading_space_as_in_capture_a1_11() -> None:
    assert decode_frame(b" ~250146900000FDA5\r").cid2 == 0x90


def test_lowercase_hex_is_accepted() -> None:
    upper = REPLIES[0].encode("ascii")
    lower = upper.lower()
    assert decode_frame(lower).info == decode_frame(upper).info
    # A sender may also have summed its lower-case characters.
    body = lower[1:-5]
    resummed = b"~" + body + f"{checksum(body):04x}".encode() + b"\r"
    assert decode_frame(resummed).info == decode_frame(upper).info


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"~25014600E00202FD36\r", id="bad-checksum"),
        pytest.param(b"~25014600D00202FD36\r", id="bad-lchksum"),
        pytest.param(b"~25014600E00202FD3\r", id="truncated-checksum"),
        pytest.param(b"~25014600E00202FD35", id="no-eoi"),
        pytest.param(b"25014600E00202FD35\r", id="no-soi"),
        pytest.param(b"~25014600E004020", id="truncated"),
        pytest.param(b"~2501460\r", id="short"),
        pytest.param(b"~25014600E002GGFD35\r", id="not-hex"),
        pytest.param(b"~25014600E0040202FD35\r", id="lenid-mismatch"),
    ],
)
def test_malformed_frames_raise_frame_error(data: bytes) -> None:
    with pytest.raises(FrameError):
        decode_frame(data)


def test_bad_lchksum_with_otherwise_valid_checksum() -> None:
    """LENGTH E002 → 1002 with CHKSUM recomputed: only the LCHKSUM is wrong."""
    body = b"250146001002" + b"02"
    with pytest.raises(FrameError, match="LCHKSUM"):
        decode_frame(b"~" + body + f"{checksum(body):04X}".encode() + b"\r")


def test_split_frames_resyncs_on_new_soi() -> None:
    good = b"~25014600E00202FD35\r"
    buffer = b"junk~2501460" + good + b"\n" + good + b"~250146"
    frames, rest = split_frames(buffer)
    assert frames == [good, good]
    assert rest == b"~250146"
    assert [decode_frame(f).info for f in frames] == [b"\x02", b"\x02"]


def test_split_frames_drops_noise_without_soi() -> None:
    assert split_frames(b"\r\nnoise") == ([], b"")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(REPLIES), st.data())
def test_mutated_captures_raise_only_frame_error(frame: str, data: st.DataObject) -> None:
    raw = bytearray(frame.encode("ascii"))
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] = data.draw(st.integers(0, 255))
    try:
        decoded = decode_frame(bytes(raw))
    except FrameError:
        return
    # One changed character always breaks CHKSUM unless it is the same byte or a hex letter's case.
    assert decoded.info == decode_frame(frame.encode("ascii")).info

"""Generate custom_components/lfp_bms/translations/en.json from strings.json.

A custom integration only loads translations/<lang>.json at runtime and HA does not resolve
`[%key:...%]` references for it, so we resolve them here against the installed Home Assistant's own
strings (`homeassistant/strings.json` for `common::`, component strings.json for `component::`).

    python scripts/translations.py          # write en.json
    python scripts/translations.py --check  # exit 1 when en.json is stale (scripts/test runs this)
"""

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import homeassistant

ROOT = Path(__file__).resolve().parent.parent
INTEGRATION = ROOT / "custom_components" / "lfp_bms"
HA_ROOT = Path(homeassistant.__file__).parent
REFERENCE = re.compile(r"\[%key:([a-z0-9_:]+)%\]")


def _lookup(path: str, own: dict[str, Any]) -> str:
    parts = path.split("::")
    if parts[0] == "common":
        source: Any = json.loads((HA_ROOT / "strings.json").read_text())
        keys = parts
    elif parts[0] == "component":
        domain = parts[1]
        file = INTEGRATION / "strings.json" if domain == "lfp_bms" else HA_ROOT / "components" / domain / "strings.json"
        source = own if domain == "lfp_bms" else json.loads(file.read_text())
        keys = parts[2:]
    else:
        raise SystemExit(f"unknown reference [%key:{path}%]")
    for key in keys:
        source = source[key]
    if not isinstance(source, str):
        raise SystemExit(f"reference [%key:{path}%] is not a string")
    return _resolve_str(source, own)


def _resolve_str(text: str, own: dict[str, Any]) -> str:
    return REFERENCE.sub(lambda m: _lookup(m.group(1), own), text)


def _resolve(node: Any, own: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {k: _resolve(v, own) for k, v in node.items()}
    if isinstance(node, str):
        return _resolve_str(node, own)
    return node


class MessageFormatError(ValueError):
    """A string that is not valid ICU MessageFormat (what Home Assistant's frontend formats strings with)."""


def arguments(text: str) -> set[str]:
    """Names of every placeholder in an ICU message, nested ones included: `{name}`, `{n, plural, one {# x} other
    {# xs}}`, `{k, select, a {…} other {…}}`. Raises MessageFormatError on unbalanced braces or a plural/select
    without an `other` case. Quoting follows ICU: an apostrophe only quotes when it precedes a brace."""
    found: set[str] = set()
    end = _message(text, 0, found, nested=False)
    if end != len(text):
        raise MessageFormatError(f"unexpected '}}' at {end} in {text!r}")
    return found


def _message(text: str, pos: int, found: set[str], *, nested: bool) -> int:
    """Parse literal text and arguments up to an unmatched '}' (returned) or the end."""
    while pos < len(text):
        char = text[pos]
        if char == "'" and pos + 1 < len(text) and text[pos + 1] in "{}":
            close = text.find("'", pos + 1)
            if close < 0:
                raise MessageFormatError(f"unterminated quote in {text!r}")
            pos = close + 1
        elif char == "{":
            pos = _argument(text, pos + 1, found)
        elif char == "}":
            return pos
        else:
            pos += 1
    if nested:
        raise MessageFormatError(f"missing '}}' in {text!r}")
    return pos


def _argument(text: str, pos: int, found: set[str]) -> int:
    """Parse `name}` or `name, type, cases}` after a '{'; returns the position after the closing brace."""
    match = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:,\s*([a-z]+)\s*)?([,}])").match(text, pos)
    if match is None:
        raise MessageFormatError(f"bad placeholder at {pos} in {text!r}")
    name, kind, after = match.groups()
    found.add(name)
    pos = match.end()
    if after == "}":
        return pos
    if kind not in ("plural", "select", "selectordinal"):
        raise MessageFormatError(f"unsupported argument type {kind!r} in {text!r}")
    cases: set[str] = set()
    case = re.compile(r"\s*(=?[A-Za-z0-9_]+)\s*\{")
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos < len(text) and text[pos] == "}":
            break
        match = case.match(text, pos)
        if match is None:
            raise MessageFormatError(f"bad {kind} case at {pos} in {text!r}")
        cases.add(match.group(1))
        pos = _message(text, match.end(), found, nested=True) + 1
    if "other" not in cases:
        raise MessageFormatError(f"{kind} of {name!r} has no 'other' case in {text!r}")
    return pos + 1


def render() -> str:
    """The en.json text for the current strings.json."""
    own = json.loads((INTEGRATION / "strings.json").read_text())
    return json.dumps(_resolve(own, own), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    """Write or check en.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    target = INTEGRATION / "translations" / "en.json"
    text = render()
    if args.check:
        if not target.exists() or target.read_text() != text:
            print("translations/en.json is stale: run python scripts/translations.py", file=sys.stderr)
            return 1
        return 0
    target.parent.mkdir(exist_ok=True)
    target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Generate custom_components/lfp_bms/translations/en.json from strings.json; check the other languages.

A custom integration only loads translations/<lang>.json at runtime and HA does not resolve
`[%key:...%]` references for it, so we resolve them here against the installed Home Assistant's own
strings (`homeassistant/strings.json` for `common::`, component strings.json for `component::`).

The other languages (LANGUAGES) are written by hand, fully resolved. `check_languages` (run by scripts/test through
check_metadata.py) requires each to have exactly the keys of en.json, every string valid ICU MessageFormat with the
same placeholders as the English one and, for a `select`, the same cases.

    python scripts/translations.py          # write en.json
    python scripts/translations.py --check  # exit 1 when en.json is stale or a language file is incomplete
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
#: Every language besides English, by the code Home Assistant uses for translations/<code>.json.
LANGUAGES = ("de", "nl", "fr", "es", "it", "pl", "cs", "sv", "pt", "zh-Hans")


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
    return shape(text)[0]


def shape(text: str) -> tuple[set[str], dict[str, set[str]]]:
    """The placeholders of an ICU message and the cases of each `select` in it (a translation keeps both; plural
    cases differ by language)."""
    found: set[str] = set()
    selects: dict[str, set[str]] = {}
    end = _message(text, 0, found, selects, nested=False)
    if end != len(text):
        raise MessageFormatError(f"unexpected '}}' at {end} in {text!r}")
    return found, selects


def _message(text: str, pos: int, found: set[str], selects: dict[str, set[str]], *, nested: bool) -> int:
    """Parse literal text and arguments up to an unmatched '}' (returned) or the end."""
    while pos < len(text):
        char = text[pos]
        if char == "'" and pos + 1 < len(text) and text[pos + 1] in "{}":
            close = text.find("'", pos + 1)
            if close < 0:
                raise MessageFormatError(f"unterminated quote in {text!r}")
            pos = close + 1
        elif char == "{":
            pos = _argument(text, pos + 1, found, selects)
        elif char == "}":
            return pos
        else:
            pos += 1
    if nested:
        raise MessageFormatError(f"missing '}}' in {text!r}")
    return pos


def _argument(text: str, pos: int, found: set[str], selects: dict[str, set[str]]) -> int:
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
        pos = _message(text, match.end(), found, selects, nested=True) + 1
    if "other" not in cases:
        raise MessageFormatError(f"{kind} of {name!r} has no 'other' case in {text!r}")
    if kind == "select":
        selects[name] = cases
    return pos + 1


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves of a translation tree by dotted key."""
    if not isinstance(node, dict):
        return {prefix: node}
    leaves: dict[str, Any] = {}
    for key, value in node.items():
        leaves |= flatten(value, f"{prefix}.{key}" if prefix else key)
    return leaves


def compare(english: dict[str, Any], translation: Any, language: str) -> list[str]:
    """Every way `translation` falls short of `english` (the resolved en.json tree), one line each."""
    if not isinstance(translation, dict):
        return [f"{language}: not a JSON object"]
    ours, theirs = flatten(english), flatten(translation)
    problems = [f"{language}: missing {key}" for key in ours if key not in theirs]
    problems += [f"{language}: {key} is not in English" for key in theirs if key not in ours]
    for key, text in theirs.items():
        if key not in ours:
            continue
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{language}: {key} is empty or not a string")
            continue
        if REFERENCE.search(text):
            problems.append(f"{language}: {key} has a [%key:…%] reference (not resolved for a custom integration)")
            continue
        try:
            placeholders, selects = shape(text)
        except MessageFormatError as err:
            problems.append(f"{language}: {key}: {err}")
            continue
        english_placeholders, english_selects = shape(ours[key])
        if placeholders != english_placeholders:
            problems.append(
                f"{language}: {key} has placeholders {sorted(placeholders)}, English {sorted(english_placeholders)}"
            )
        elif selects != english_selects:
            problems.append(f"{language}: {key} has select cases {selects}, English {english_selects}")
    return problems


def check_languages(directory: Path | None = None) -> list[str]:
    """Problems of every language file in `directory` (the integration's translations/) against en.json."""
    directory = directory or INTEGRATION / "translations"
    english = json.loads(render())
    problems: list[str] = []
    for language in LANGUAGES:
        path = directory / f"{language}.json"
        try:
            translation = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            problems.append(f"{language}: translations/{language}.json is missing")
            continue
        except ValueError as err:
            problems.append(f"{language}: translations/{language}.json is not valid JSON: {err}")
            continue
        problems += compare(english, translation, language)
    return problems


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
        problems = check_languages()
        if not target.exists() or target.read_text() != text:
            problems.insert(0, "translations/en.json is stale: run python scripts/translations.py")
        for line in problems:
            print(line, file=sys.stderr)
        return 1 if problems else 0
    target.parent.mkdir(exist_ok=True)
    target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

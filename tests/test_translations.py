"""The language files: complete, the same placeholders as English, valid ICU; and the check that says so fails on a
broken file (scripts/test runs it through scripts/check_metadata.py)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scripts.translations import (
    INTEGRATION,
    LANGUAGES,
    MessageFormatError,
    arguments,
    check_languages,
    compare,
    render,
    shape,
)

ROOT = INTEGRATION.parent.parent
ENGLISH: dict[str, Any] = json.loads(render())


def test_every_language_is_complete_and_keeps_the_placeholders() -> None:
    assert check_languages() == []
    # Every language the brief names, by Home Assistant's codes, and nothing left untranslated by copying English.
    assert set(LANGUAGES) == {"de", "nl", "fr", "es", "it", "pl", "cs", "sv", "pt", "zh-Hans"}
    english_title = ENGLISH["config"]["step"]["confirm"]["title"]
    for language in LANGUAGES:
        translation = json.loads((INTEGRATION / "translations" / f"{language}.json").read_text(encoding="utf-8"))
        assert translation["config"]["step"]["confirm"]["title"] != english_title, language


@pytest.mark.parametrize(
    ("text", "names", "selects"),
    [
        ("Pack {address}", {"address"}, {}),
        ("{n, plural, one {# pack} other {# packs}} on {device}", {"n", "device"}, {}),
        ("{r, select, bus {Pack {m} asks} other {Direct}}", {"r", "m"}, {"r": {"bus", "other"}}),
        ("{n, plural, one {#} few {#} many {#} other {#}}", {"n"}, {}),  # Polish/Czech cases
        ("the battery's port", set(), {}),  # an apostrophe quotes only before a brace
        ("'{literal}' and {real}", {"real"}, {}),
    ],
)
def test_shape_reads_icu(text: str, names: set[str], selects: dict[str, set[str]]) -> None:
    assert shape(text) == (names, selects)


@pytest.mark.parametrize(
    "text",
    ["{open", "close}", "{n, plural, one {x}}", "{n, plural, one {x} other {y}", "{ }", "{n, widget, a {x} other {y}}"],
)
def test_shape_refuses_broken_icu(text: str) -> None:
    with pytest.raises(MessageFormatError):
        arguments(text)


def _broken(change: str) -> dict[str, Any]:
    """A copy of the German file with one defect."""
    german: dict[str, Any] = json.loads((INTEGRATION / "translations" / "de.json").read_text(encoding="utf-8"))
    exceptions = german["exceptions"]
    match change:
        case "missing":
            del exceptions["parameter_must_be_above"]
        case "extra":
            exceptions["not_in_english"] = {"message": "Hallo"}
        case "renamed":  # a translator translated the placeholder's name
            exceptions["refused"]["message"] = "Pack {adresse} hat den Befehl abgelehnt (Rückgabecode {rtn})."
        case "dropped":
            exceptions["refused"]["message"] = "Das Pack hat den Befehl abgelehnt (Rückgabecode {rtn})."
        case "select":
            confirm = german["config"]["step"]["confirm"]
            confirm["description"] = confirm["description"].replace("relay {", "weiterleitung {")
        case "icu":
            exceptions["refused"]["message"] = "Pack {address hat abgelehnt ({rtn})."
        case "empty":
            exceptions["refused"]["message"] = " "
        case "reference":
            exceptions["refused"]["message"] = "[%key:common::config_flow::error::unknown%] {address} {rtn}"
    return german


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("missing", "de: missing exceptions.parameter_must_be_above.message"),
        ("extra", "de: exceptions.not_in_english.message is not in English"),
        ("renamed", "de: exceptions.refused.message has placeholders ['adresse', 'rtn'], English ['address', 'rtn']"),
        ("dropped", "de: exceptions.refused.message has placeholders ['rtn'], English ['address', 'rtn']"),
        ("select", "de: config.step.confirm.description has select cases"),
        ("icu", "de: exceptions.refused.message: bad placeholder"),
        ("empty", "de: exceptions.refused.message is empty or not a string"),
        ("reference", "de: exceptions.refused.message has a [%key:…%] reference"),
    ],
)
def test_compare_names_each_defect(change: str, problem: str) -> None:
    problems = compare(ENGLISH, _broken(change), "de")
    assert len(problems) == 1, problems
    assert problems[0].startswith(problem)


def test_check_languages_on_broken_files(tmp_path: Path) -> None:
    """A missing file, invalid JSON and a file with a missing key are each reported; the intact ones are not."""
    for language in LANGUAGES:
        shutil.copy(INTEGRATION / "translations" / f"{language}.json", tmp_path)
    (tmp_path / "sv.json").unlink()
    (tmp_path / "nl.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "de.json").write_text(json.dumps(_broken("missing"), ensure_ascii=False), encoding="utf-8")
    problems = check_languages(tmp_path)
    assert problems == [
        "de: missing exceptions.parameter_must_be_above.message",
        problems[1],
        "sv: translations/sv.json is missing",
    ]
    assert problems[1].startswith("nl: translations/nl.json is not valid JSON")


def test_check_metadata_fails_on_a_placeholder_mismatch(tmp_path: Path) -> None:
    """What scripts/test runs: check_metadata.py exits 1 and names the defect when a language file is wrong."""
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "scripts", copy / "scripts")
    shutil.copytree(INTEGRATION, copy / "custom_components" / "lfp_bms", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("hacs.json", "pyproject.toml", "requirements_test.txt"):
        shutil.copy(ROOT / name, copy / name)
    script = [sys.executable, str(copy / "scripts" / "check_metadata.py")]
    environment = {**os.environ, "PYTHONPATH": str(copy)}
    intact = subprocess.run(script, capture_output=True, text=True, env=environment, check=False)
    assert intact.returncode == 0, intact.stderr
    french = copy / "custom_components" / "lfp_bms" / "translations" / "fr.json"
    french.write_text(
        french.read_text(encoding="utf-8").replace("pack {address}", "pack {adresse}", 1), encoding="utf-8"
    )
    broken = subprocess.run(script, capture_output=True, text=True, env=environment, check=False)
    assert broken.returncode == 1
    assert "fr: " in broken.stderr
    assert "['adresse'" in broken.stderr

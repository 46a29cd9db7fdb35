"""Offline stand-in for the hassfest/HACS checks that matter to us (hassfest needs Docker and network).

Checks manifest.json (required keys, key order, no unknown keys), hacs.json (allowed keys only),
quality_scale.yaml (all 54 rules, a comment on every exemption), that translations/en.json is current and every
other language complete with the same placeholders (translations.check_languages), and that
the runtime requirements of manifest.json, pyproject.toml and the pins of requirements_test.txt agree.
"""

import json
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from translations import check_languages, render  # scripts/ is sys.path[0] when run as a script

ROOT = Path(__file__).resolve().parent.parent
INTEGRATION = ROOT / "custom_components" / "lfp_bms"

MANIFEST_KEYS = {
    "domain", "name", "after_dependencies", "codeowners", "config_flow", "dependencies", "documentation",
    "integration_type", "iot_class", "issue_tracker", "loggers", "quality_scale", "requirements", "usb",
    "dhcp", "zeroconf", "single_config_entry", "version",
}  # fmt: skip
HACS_KEYS = {
    "name", "content_in_root", "country", "filename", "hacs", "hide_default_branch", "homeassistant",
    "persistent_directory", "render_readme", "zip_release",
}  # fmt: skip
RULES = {
    "bronze": "action-setup appropriate-polling brands common-modules config-flow config-flow-test-coverage "
    "dependency-transparency docs-actions docs-conditions docs-high-level-description "
    "docs-installation-instructions docs-removal-instructions docs-triggers entity-event-setup "
    "entity-unique-id has-entity-name runtime-data test-before-configure test-before-setup unique-config-entry",
    "silver": "action-exceptions config-entry-unloading docs-configuration-parameters docs-installation-parameters "
    "entity-unavailable integration-owner log-when-unavailable parallel-updates reauthentication-flow test-coverage",
    "gold": "devices diagnostics discovery discovery-update-info docs-data-update docs-examples "
    "docs-known-limitations docs-supported-devices docs-supported-functions docs-troubleshooting docs-use-cases "
    "dynamic-devices entity-category entity-device-class entity-disabled-by-default entity-translations "
    "exception-translations icon-translations reconfiguration-flow repair-issues stale-devices",
    "platinum": "async-dependency inject-websession strict-typing",
}


def requirement_problems(manifest: list[str]) -> list[str]:
    """The manifest's requirements are pyproject's dependencies, and the pins we test with satisfy them."""
    problems: list[str] = []
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    if sorted(manifest) != sorted(declared):
        problems.append(f"manifest.json requirements {manifest} differ from pyproject.toml dependencies {declared}")
    pins = {}
    for line in (ROOT / "requirements_test.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            pinned = Requirement(line)
            pins[pinned.name.lower()] = next(iter(pinned.specifier)).version
    for text in manifest:
        requirement = Requirement(text)
        pin = pins.get(requirement.name.lower())
        if pin is None or pin not in requirement.specifier:
            problems.append(f"requirements_test.txt does not pin a version of {requirement.name} within {text!r}")
    return problems


def main() -> int:
    """Print every problem; exit 1 if any."""
    problems: list[str] = []
    manifest = json.loads((INTEGRATION / "manifest.json").read_text())
    keys = list(manifest)
    if keys[:2] != ["domain", "name"] or keys[2:] != sorted(keys[2:]):
        problems.append("manifest.json: keys must be domain, name, then alphabetical")
    problems += [f"manifest.json: unknown key {k}" for k in keys if k not in MANIFEST_KEYS]
    for required in ("codeowners", "documentation", "version", "iot_class", "issue_tracker"):
        if required not in manifest:
            problems.append(f"manifest.json: missing {required}")
    if manifest.get("domain") != INTEGRATION.name:
        problems.append("manifest.json: domain must equal the folder name")
    problems += requirement_problems(manifest.get("requirements", []))
    hacs = json.loads((ROOT / "hacs.json").read_text())
    problems += [f"hacs.json: key {k} is rejected by HACS" for k in hacs if k not in HACS_KEYS]
    rules = yaml.safe_load((INTEGRATION / "quality_scale.yaml").read_text())["rules"]
    expected = {r for tier in RULES.values() for r in tier.split()}
    problems += [f"quality_scale.yaml: missing rule {r}" for r in sorted(expected - set(rules))]
    problems += [f"quality_scale.yaml: unknown rule {r}" for r in sorted(set(rules) - expected)]
    for rule, value in rules.items():
        if isinstance(value, dict) and value.get("status") == "exempt" and not value.get("comment"):
            problems.append(f"quality_scale.yaml: exemption of {rule} needs a comment")
        elif not isinstance(value, dict) and value not in ("done", "todo"):
            problems.append(f"quality_scale.yaml: {rule} has status {value!r}")
    en = INTEGRATION / "translations" / "en.json"
    if not en.exists() or en.read_text() != render():
        problems.append("translations/en.json is stale: run python scripts/translations.py")
    problems += check_languages()
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""docs/operations.md keeps a playbook for each failure of the design and working links.

Every alert's runbook link is checked by tests/unit/test_monitoring_files.py;
this checks the design's failure table and the document's own anchors.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.monitoring import heading_anchors

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"
DESIGN = ROOT.parent / "shared" / "spec" / "production-architecture.md"

# production-architecture.md, "Failure Scenarios & Mitigation" (compared below when present).
FAILURE_SCENARIOS = (
    "Single API instance crashes",
    "Database primary fails",
    "Redis cache cluster fails",
    "LLM API outage",
    "CDN outage",
    "Entire availability zone fails",
    "Full region failure",
    "Database corruption",
)


def _design_scenarios() -> list[str]:
    text = DESIGN.read_text()
    table = text.split("Failure Scenarios & Mitigation", 1)[1].split("\n---", 1)[0]
    return re.findall(r"^\|\s*\*\*(.+?)\*\*\s*\|", table, flags=re.MULTILINE)


@pytest.mark.skipif(not DESIGN.exists(), reason="the design document is not beside the repo")
def test_the_list_is_the_design_table() -> None:
    assert tuple(_design_scenarios()) == FAILURE_SCENARIOS


def test_every_failure_scenario_has_its_playbook() -> None:
    headings = re.findall(r"^## Playbook: (.+?)\s*$", OPERATIONS.read_text(), flags=re.MULTILINE)
    assert headings == list(FAILURE_SCENARIOS)


def test_every_link_inside_the_document_has_its_anchor() -> None:
    text = OPERATIONS.read_text()
    anchors = heading_anchors(text)
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links
    assert sorted(links - anchors) == []


def test_links_to_other_documents_exist() -> None:
    text = OPERATIONS.read_text()
    for target in re.findall(r"\]\(([^)#:]+?\.md)(?:#[^)]*)?\)", text):
        assert (OPERATIONS.parent / target).exists(), target

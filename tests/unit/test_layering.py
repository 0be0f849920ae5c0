"""The folder contract of docs (DESIGN.md's layout table): ``pipelines/`` is the logic and
imports nothing from ``jobs/`` (I/O, runtime) or ``udfs/`` (executor code)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.unit


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", sorted((REPO / "pipelines").glob("*.py")), ids=lambda p: p.name)
def test_pipelines_import_nothing_from_jobs_or_udfs(path: Path) -> None:
    wrong = sorted(
        m for m in imported_modules(path) if m.split(".")[0] in ("jobs", "udfs", "bench", "tests")
    )
    assert wrong == [], f"{path.relative_to(REPO)} imports {', '.join(wrong)}"


def test_the_rule_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("def f():\n    from jobs.storage import Storage\n    import udfs.score\n")
    assert imported_modules(sample) == {"jobs.storage", "udfs.score"}

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
    sample.write_text(
        "def f():\n    from jobs.runtime.storage import Storage\n    import udfs.score\n"
    )
    assert imported_modules(sample) == {"jobs.runtime.storage", "udfs.score"}


def imported_closure(module: str) -> set[str]:
    """``module`` and every ``pipelines`` module it imports, directly or through another, with
    everything those import (by the same static reading as ``imported_modules``)."""
    seen: set[str] = set()
    todo, found = [module], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        imports = imported_modules(REPO / (name.replace(".", "/") + ".py"))
        found |= imports
        todo += [m for m in imports if m.split(".")[0] == "pipelines"]
    return found


def test_the_model_needs_torch_not_spark() -> None:
    """``bench/gpu_check.py`` runs ``pipelines.model`` where torch is installed and Spark is
    not (a lent GPU machine): nothing it imports, directly or not, may be pyspark."""
    spark = sorted(m for m in imported_closure("pipelines.model") if m.split(".")[0] == "pyspark")
    assert spark == [], f"pipelines.model imports {', '.join(spark)} (through pipelines modules)"
    assert "pyspark.sql" in imported_closure("pipelines.train")  # the reading follows imports


ROOT_NAMES = {"root", "data_root"}


def root_joins(path: Path) -> list[int]:
    """Lines that join a literal path segment onto a data root (``join(root, "recs")``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        first = node.args[0]
        base = first.attr if isinstance(first, ast.Attribute) else getattr(first, "id", "")
        literal = any(
            isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args[1:]
        )
        if name == "join" and base in ROOT_NAMES and literal:
            found.append(node.lineno)
    return found


@pytest.mark.parametrize(
    "path",
    sorted(
        p
        for folder in ("jobs", "pipelines", "udfs")
        for p in (REPO / folder).rglob("*.py")
        if p != REPO / "jobs" / "runtime" / "layout.py"
    ),
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_only_the_layout_module_names_paths_under_the_data_root(path: Path) -> None:
    assert root_joins(path) == [], (
        f"{path.relative_to(REPO)} builds a path under the data root at lines "
        f"{root_joins(path)}: add it to jobs/runtime/layout.py and call that"
    )


def test_the_layout_rule_sees_a_root_join(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text('a = join(config.data_root, "recs")\nb = join(staging, "recs")\n')
    assert root_joins(sample) == [1]


# What pipelines/ may not do: file I/O, driver collects, RDDs (absent on Spark Connect), caching
# it never releases, printing.
FORBIDDEN_CALLS = {
    "rdd", "collect", "toPandas", "cache", "persist", "open", "save", "load", "print",
    "read_text", "write_text", "parquet", "json", "csv",
}  # fmt: skip


def forbidden_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "rdd":
            found.append(f"{node.lineno}: .rdd")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = getattr(getattr(func, "value", None), "id", "")
            # the training loop saves through the Checkpoints protocol the caller passes in
            if name in FORBIDDEN_CALLS and owner != "checkpoints":
                found.append(f"{node.lineno}: {name}()")
    return sorted(found, key=lambda f: int(f.split(":")[0]))


@pytest.mark.parametrize("path", sorted((REPO / "pipelines").glob("*.py")), ids=lambda p: p.name)
def test_pipelines_do_no_io_collect_rdd_or_cache(path: Path) -> None:
    assert forbidden_uses(path) == [], f"{path.relative_to(REPO)}: {forbidden_uses(path)}"


def test_the_purity_rule_sees_an_rdd_and_a_collect(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("rows = df.rdd.map(f)\nn = df.collect()\nok = F.col('a')\n")
    assert forbidden_uses(sample) == ["1: .rdd", "2: collect()"]

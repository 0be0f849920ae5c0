"""The notebooks in notebooks/: the Jupyter quick-start is executed (papermill, a real kernel,
tiny parameters) and fails the test if any cell errors; the Databricks notebook is checked as far
as it can be without a workspace."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import papermill
import pytest

from jobs import nightly
from tests.conftest import REPO

pytestmark = pytest.mark.smoke

NOTEBOOKS = REPO / "notebooks"


@pytest.mark.slow  # a whole night, rank included, in a fresh kernel: 7 minutes here under load (make test-all)
def test_quickstart_notebook_runs_every_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARTWHEEL_DRIVER_MEMORY", "1500m")  # the kernel starts its own JVM
    out = tmp_path / "quickstart.out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOKS / "quickstart.ipynb"),
        str(out),
        parameters={"data_root": str(tmp_path / "data"), "rows": 6000, "days": 4, "epochs": 1, "gate_min_ratio": 0.0},
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
    )  # fmt: skip  # raises PapermillExecutionError naming the failing cell
    cells = json.loads(out.read_text())["cells"]
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(
        "".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
        for o in outputs
    )
    assert "SUCCEEDED" in text and "recommendation tables:" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the metrics plot
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("reason" in "".join(h) for h in html)  # the quality table
    assert any("title" in "".join(h) for h in html)  # the recommendations with titles
    assert (tmp_path / "data" / "recs" / "user_topk" / "dt=2026-11-21").is_dir()


def test_databricks_notebook_is_source_format_and_calls_the_package() -> None:
    source = (NOTEBOOKS / "databricks_nightly.py").read_text()
    assert source.startswith("# Databricks notebook source\n")
    cells = source.split("\n# COMMAND ----------\n")
    assert len(cells) >= 4
    tree = ast.parse(source)  # MAGIC lines are comments: the whole file is valid Python
    widgets = {
        ast.literal_eval(node.args[0])
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("text", "dropdown")
        and ast.unparse(node.func.value) == "dbutils.widgets"
    }
    fields = {f for f in nightly.NightlyConfig.__dataclass_fields__}
    assert {"run_date", "data_root"} <= widgets and widgets <= fields
    called = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert "nightly.main" in called and "config_from_values" in called

"""The schedules in jobs/schedules/, checked as far as they can be without a Databricks workspace
or an Airflow scheduler: they parse, name entry points and files that exist, and pass arguments
that cartwheel's own parser accepts."""

from __future__ import annotations

import ast
import shlex
import tomllib
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from databricks.bundles.jobs import Job

from jobs import cli, nightly
from jobs.runtime import pyfiles
from jobs.runtime.config import parse_config
from tests.conftest import REPO

pytestmark = pytest.mark.unit

SCHEDULES = REPO / "jobs" / "schedules"
BUNDLE = SCHEDULES / "databricks.yml"
DAG = SCHEDULES / "airflow_cartwheel_nightly.py"


def bundle() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(BUNDLE.read_text())
    return doc


def substitute(value: Any, variables: dict[str, Any]) -> Any:
    """Replace ``${var.NAME}`` by the variable's default, as the bundle CLI would."""
    if isinstance(value, str):
        for name, spec in variables.items():
            value = value.replace("${var." + name + "}", str(spec["default"]))
        return value
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    return value


def test_bundle_jobs_are_valid_databricks_job_definitions() -> None:
    doc = bundle()
    assert doc["bundle"]["name"] == "cartwheel"
    jobs = substitute(doc["resources"]["jobs"], doc["variables"])
    assert set(jobs) == {"cartwheel_nightly", "cartwheel_nightly_notebook"}
    for key, spec in jobs.items():
        job = Job.from_dict(spec)  # raises on any field the Jobs API does not have
        assert job.max_concurrent_runs == 1, key
        for task in job.tasks:
            assert task.job_cluster_key in {c.job_cluster_key for c in job.job_clusters}
    cron = jobs["cartwheel_nightly"]["schedule"]["quartz_cron_expression"]
    assert len(cron.split()) == 6 and jobs["cartwheel_nightly"]["schedule"]["timezone_id"] == "UTC"
    # Databricks Runtime 15.4 LTS ML: the Spark 3.5 line DESIGN.md pins against
    for spec in jobs.values():
        for cluster in spec["job_clusters"]:
            assert cluster["new_cluster"]["spark_version"].startswith("15.4.")


def test_bundle_wheel_task_calls_the_real_entry_point_with_valid_arguments() -> None:
    doc = bundle()
    jobs = substitute(doc["resources"]["jobs"], doc["variables"])
    task = jobs["cartwheel_nightly"]["tasks"][0]["python_wheel_task"]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert task["package_name"] == project["name"]
    assert project["scripts"][task["entry_point"]] == "jobs.cli:main"
    step, *args = task["parameters"]
    assert step in cli.STEPS
    config = parse_config(nightly.NightlyConfig, args, prog="check", description="")
    assert config.data_root == "dbfs:/cartwheel" and config.num_proc == 2
    # the artifact is what `make package` builds, and the library path points at it
    assert "make package" in doc["artifacts"]["cartwheel_wheel"]["build"]
    assert (BUNDLE.parent / doc["artifacts"]["cartwheel_wheel"]["path"]).resolve() == REPO
    assert jobs["cartwheel_nightly"]["tasks"][0]["libraries"] == [{"whl": "../../dist/*.whl"}]


def test_bundle_notebook_task_names_the_notebook_and_its_widgets() -> None:
    doc = bundle()
    task = doc["resources"]["jobs"]["cartwheel_nightly_notebook"]["tasks"][0]["notebook_task"]
    notebook = (BUNDLE.parent / task["notebook_path"]).resolve()
    assert notebook.is_file()
    source = notebook.read_text()
    assert source.startswith("# Databricks notebook source")
    for widget in task["base_parameters"]:
        assert f'dbutils.widgets.text("{widget}"' in source, widget


def dag_tree() -> ast.Module:
    return ast.parse(DAG.read_text(), filename=str(DAG))


def dag_constants() -> dict[str, str]:
    """The module-level string constants of the DAG file, evaluated as Python would."""
    values: dict[str, str] = {}
    for node in dag_tree().body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            expr = ast.Expression(node.value)
            values[node.targets[0].id] = eval(compile(expr, str(DAG), "eval"), {}, dict(values))
    return values


def test_airflow_dag_parses_and_runs_one_night_at_a_time() -> None:
    tree = dag_tree()
    compile(tree, str(DAG), "exec")
    calls = {
        node.func.id: {k.arg: k.value for k in node.keywords}
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    dag = calls["DAG"]
    assert ast.literal_eval(dag["dag_id"]) == "cartwheel_nightly"
    assert ast.literal_eval(dag["max_active_runs"]) == 1
    assert len(ast.literal_eval(dag["schedule"]).split()) == 5  # a valid 5-field cron line
    task = calls["BashOperator"]
    assert (
        isinstance(task["bash_command"], ast.Name) and task["bash_command"].id == "NIGHTLY_COMMAND"
    )


def test_airflow_command_renders_to_a_valid_spark_submit_of_the_nightly_job(tmp_path: Path) -> None:
    command = dag_constants()["NIGHTLY_COMMAND"]
    variables = {"cartwheel_home": "/opt/cartwheel", "cartwheel_data_root": "s3a://shop/cartwheel"}

    class Var:
        value = type("V", (), {"get": lambda self, k, d=None: variables.get(k, d), **variables})()

    rendered = jinja2.Template(command, undefined=jinja2.StrictUndefined).render(
        ds="2026-11-21", var=Var
    )
    argv = shlex.split(rendered)
    assert argv[0] == "spark-submit" and argv[argv.index("--master") + 1] == "yarn"
    zip_name = Path(argv[argv.index("--py-files") + 1]).name
    assert zip_name == pyfiles.build(tmp_path).name  # the file `make package` builds
    script = next(a for a in argv if a.endswith(".py"))
    assert script == "/opt/cartwheel/jobs/nightly.py" and (REPO / "jobs" / "nightly.py").is_file()
    args = argv[argv.index(script) + 1 :]
    config = parse_config(nightly.NightlyConfig, args, prog="check", description="")
    assert config.run_date.isoformat() == "2026-11-21"
    assert config.data_root == "s3a://shop/cartwheel"

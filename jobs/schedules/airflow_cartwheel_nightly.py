"""Airflow DAG: cartwheel's nightly run through spark-submit, one run per day.

Copy this file into the scheduler's DAG folder. It needs Airflow 2.7+ (or 3.x) and a
``spark-submit`` on the worker that can reach the cluster. Set the Airflow Variables
``cartwheel_data_root`` (the data root URI), ``cartwheel_home`` (a folder holding the files
``make package`` built: ``dist/cartwheel-<version>-pyfiles.zip`` and the ``jobs/`` scripts) and
optionally ``cartwheel_master`` (default ``yarn``).

The DAG's logical date ``ds`` is the day whose logs the night processes: the daily run for
2026-11-21 starts after that day ends. ``cartwheel nightly`` does the steps itself, so a retry
resumes at the failed step; ``max_active_runs=1`` and cartwheel's lock keep nights one at a time.
A failed night exits non-zero, which fails the task (and alerts) while the previous night's
recommendation tables stay published.
"""

from __future__ import annotations

import datetime as dt

from airflow import DAG

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2
    from airflow.operators.bash import BashOperator

SPARK_SUBMIT = (
    "spark-submit"
    " --master {{ var.value.get('cartwheel_master', 'yarn') }}"
    " --name cartwheel-nightly-{{ ds }}"
    " --py-files {{ var.value.cartwheel_home }}/dist/cartwheel-0.1.0-pyfiles.zip"
)
NIGHTLY_COMMAND = (
    SPARK_SUBMIT + " {{ var.value.cartwheel_home }}/jobs/nightly.py"
    " --data-root {{ var.value.cartwheel_data_root }}"
    " --run-date {{ ds }}"
    " --num-proc 2"
)

with DAG(
    dag_id="cartwheel_nightly",
    description="cartwheel: clean, label, shard, train, score, evaluate, publish",
    schedule="0 2 * * *",
    start_date=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=10)},
    tags=["cartwheel", "recommendations"],
) as dag:
    BashOperator(
        task_id="nightly",
        bash_command=NIGHTLY_COMMAND,
        execution_timeout=dt.timedelta(hours=6),
    )

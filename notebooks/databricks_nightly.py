# Databricks notebook source
# MAGIC %md
# MAGIC # cartwheel: one night on Databricks
# MAGIC
# MAGIC Runs `cartwheel nightly` for a run date on this cluster's Spark session: clean, label,
# MAGIC shard, train (Horovod on Spark), score, evaluate, and publish the recommendation tables
# MAGIC only if the evaluation passed. Steps already done for the date with the same inputs are
# MAGIC skipped, so running it again after a failure resumes at the failed step.
# MAGIC
# MAGIC Needs the cartwheel wheel as a cluster or job library (`make package` builds it; the bundle
# MAGIC in `jobs/schedules/databricks.yml` attaches it) on Databricks Runtime 15.4 LTS ML.

# COMMAND ----------

dbutils.widgets.text("run_date", "yesterday", "Run date (YYYY-MM-DD, or yesterday)")
dbutils.widgets.text("data_root", "dbfs:/cartwheel", "Data root (abfss://, s3://, dbfs:/)")
dbutils.widgets.text("lookback_days", "30", "Days of events a night uses")
dbutils.widgets.dropdown("force", "false", ["false", "true"], "Redo every step")

# COMMAND ----------

from jobs import nightly
from jobs.runtime.step import setup_logging
from jobs.runtime.config import config_from_values
from jobs.runtime.session import get_spark
from jobs.runtime.storage import Storage

setup_logging()  # one progress line per step in the cell output
config = config_from_values(
    nightly.NightlyConfig,
    {
        "data_root": dbutils.widgets.get("data_root"),
        "run_date": dbutils.widgets.get("run_date"),
        "lookback_days": dbutils.widgets.get("lookback_days"),
        "force": dbutils.widgets.get("force"),
    },
    source="notebook widgets",
)
spark = get_spark("cartwheel-nightly")  # adopts the cluster's session
result = nightly.main(spark, config)
print(nightly.summarize(result))

# COMMAND ----------

# MAGIC %md The night's report: counts per step, data quality, metrics against the baselines,
# MAGIC and a sample of the published recommendations.

# COMMAND ----------

displayHTML(Storage(spark).read_text(result.manifest["report"]))

# COMMAND ----------

# A failed night fails the job run (the scheduler alerts); the published tables stay as they were.
if not result.succeeded:
    raise RuntimeError(f"cartwheel night {config.run_date} failed: see {result.manifest_path}")

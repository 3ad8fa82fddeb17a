"""Runs one DAG run of pipelines/dags/terrabyte_stac.py with Airflow's `dag.test()`, in Airflow's virtualenv:

    .venv-airflow/bin/python tests/airflow_dag_run.py <DAG id> <logical date, RFC 3339> [<params, JSON>]

Prints the run's data interval, then each task's id (and map index, where mapped) and state, a line each (`RESULT`
first); exits 0 where the DAG run succeeded. Airflow's settings (its home, the DAGs folder) and dlt's come from the
environment the test sets.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime

from airflow.models import DagBag

RESULT = "dag_run: "
"""The start of this script's own lines, among Airflow's log lines on stdout."""


def main(dag_id: str, logical_date: str, params: str = "{}") -> int:
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"], include_examples=False)
    if bag.import_errors:
        print(f"import errors: {bag.import_errors}", file=sys.stderr)
        return 2
    dag = bag.get_dag(dag_id)
    run = dag.test(execution_date=datetime.fromisoformat(logical_date), run_conf=json.loads(params))
    print(f"{RESULT}interval {run.data_interval_start.isoformat()} {run.data_interval_end.isoformat()}")
    for instance in sorted(run.get_task_instances(), key=lambda instance: (instance.task_id, instance.map_index)):
        mapped = f"[{instance.map_index}]" if instance.map_index >= 0 else ""
        print(f"{RESULT}{instance.task_id}{mapped} {instance.state}")
    return 0 if run.state == "success" else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

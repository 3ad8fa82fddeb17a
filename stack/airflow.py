"""Airflow in its own virtualenv (`.venv-airflow`, `stack/airflow-requirements.txt`) over the project's DAGs
(`pipelines/dags`): what the tests and the scale-out benchmark run a DAG with.

Without a metadata database, Airflow keeps its SQLite one in its home, enough for `dag.test()`. With one (a
PostgreSQL URL), Airflow's scheduler runs DAG runs with LocalExecutor, which runs tasks in parallel (it needs a
database other than SQLite), each task in a Python process of its own.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg2

from stack.processes import log_tail, terminate_process_group

PROJECT_ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_VENV = PROJECT_ROOT / ".venv-airflow"
AIRFLOW = AIRFLOW_VENV / "bin" / "airflow"
DAGS_FOLDER = PROJECT_ROOT / "pipelines" / "dags"
COMMAND_WITHIN_S = 300.0


class AirflowFailed(RuntimeError):
    """An `airflow` command failed, or a DAG run did not end."""


TaskInstance = tuple[str, int, str, datetime | None, datetime | None]
"""A task instance's id, map index (-1 where not mapped), state, start and end."""


@dataclass(frozen=True)
class DagRun:
    state: str | None
    start: datetime | None
    end: datetime | None
    tasks: list[TaskInstance]

    @property
    def task_states(self) -> list[tuple[str, int, str]]:
        return [(task_id, map_index, state) for task_id, map_index, state, _, _ in self.tasks]


class LocalAirflow:
    """Airflow with its home in `home`, dlt's and the DAGs' settings in `settings` (environment variables)."""

    def __init__(self, home: Path, settings: dict[str, str], metadata_database: str | None = None) -> None:
        self.metadata_database = metadata_database
        self.env = {
            "PATH": f"{AIRFLOW.parent}:/usr/bin:/bin",
            "HOME": str(home),
            "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            **settings,
        }
        if metadata_database is not None:
            self.env |= {
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_database.replace(
                    "postgresql:", "postgresql+psycopg2:", 1
                ),
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__EXECUTE_TASKS_NEW_PYTHON_INTERPRETER": "True",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            }
        self.log = home / "scheduler.log"

    def run(self, *arguments: str) -> None:
        """Runs `airflow <arguments>`; raises `AirflowFailed` with the end of its stderr where it fails."""
        done = subprocess.run(
            [str(AIRFLOW), *arguments], env=self.env, capture_output=True, text=True, timeout=COMMAND_WITHIN_S
        )
        if done.returncode:
            raise AirflowFailed(f"airflow {' '.join(arguments[:2])} exited {done.returncode}: {done.stderr[-3000:]}")

    def prepared(self) -> LocalAirflow:
        """The metadata database migrated and the DAGs in it (all paused, as Airflow creates them)."""
        self.run("db", "migrate")
        self.run("dags", "reserialize")
        return self

    def triggered(self, dag_id: str, conf: dict[str, Any]) -> None:
        """A DAG run of `dag_id` with `conf`, its DAG unpaused so that the scheduler runs it."""
        self.run("dags", "unpause", dag_id)
        self.run("dags", "trigger", dag_id, "--conf", json.dumps(conf))

    def scheduled_to_the_end(self, dag_id: str, within_s: float) -> DagRun:
        """Runs the scheduler until the DAG run triggered before has ended, then stops it and its task processes;
        raises `AirflowFailed` where the run did not end within `within_s` or the scheduler stopped."""
        with self.log.open("w") as output:
            scheduler = subprocess.Popen(
                [str(AIRFLOW), "scheduler"],
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + within_s
            while (run := self.dag_run(dag_id)) is None or run.state not in ("success", "failed"):
                if time.monotonic() > deadline or scheduler.poll() is not None:
                    raise AirflowFailed(f"the run of {dag_id} did not end ({run}): {log_tail(self.log)}")
                time.sleep(1)
            return run
        finally:
            terminate_process_group(scheduler.pid)

    def dag_run(self, dag_id: str) -> DagRun | None:
        """The (only) DAG run of `dag_id`, from the metadata database."""
        rows = self._query("SELECT state, start_date, end_date FROM dag_run WHERE dag_id = %s", dag_id)
        return DagRun(*rows[0], tasks=self.task_instances(dag_id)) if rows else None

    def task_instances(self, dag_id: str) -> list[TaskInstance]:
        return self._query(
            "SELECT task_id, map_index, state, start_date, end_date FROM task_instance WHERE dag_id = %s"
            " ORDER BY task_id, map_index",
            dag_id,
        )

    def _query(self, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
        assert self.metadata_database is not None, "the scheduler needs a metadata database"
        with psycopg2.connect(self.metadata_database) as connection, connection.cursor() as cursor:
            cursor.execute(sql, parameters)
            return list(cursor.fetchall())

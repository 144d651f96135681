"""The collaborative's orchestration: Dagster definitions, resources, sensors, jobs and the CLI."""

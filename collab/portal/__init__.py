"""The charity portal: a charity checks, sends and follows its files with only a web browser.

Dagster-free and warehouse-free (DuckDB admits one process at a time): it reads the registry, the
staging manifests and reports, and writes only to the charity's own landing area.
"""

"""The collaborative's services, free of Dagster: the workspace and registry, landing zones (a local
folder or S3), intake, staging, the warehouse, release packages, publication, the static site and the
S3 server's launcher and access policies.

``assets`` wraps these in Dagster assets and resources; the CLI in ``pipelines`` calls them directly.
"""

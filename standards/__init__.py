"""The Charity Service-User Extract standard.

Usable on its own: a charity can check a file before upload with
``standards.check.check_extract`` (or ``collab check FILE``) without Dagster, DuckDB or a server.
"""

STANDARD_VERSION = "1.1"  # 1.1: optional surname, used only for cross-charity linkage

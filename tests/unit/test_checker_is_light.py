"""The charity's checker imports the standard only: no analyst stack, no POSIX-only module."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import contact_rows, write_csv

HEAVY = ("dagster", "duckdb", "boto3", "great_expectations", "opendp", "pandas", "collab", "assets", "pipelines")


def _run_checker(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False)


def test_the_checker_imports_nothing_of_the_analysts_stack(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "contacts.csv", contact_rows(40))
    script = f"""
import sys
import tomllib
from standards.cli import checker
try:
    checker([{str(path)!r}, "--json", "--no-linkage"])
except SystemExit as done:
    code = done.code
loaded = sorted({{name.split(".")[0] for name in sys.modules}} & set({HEAVY!r}))
print("LOADED", loaded, "EXIT", code, file=sys.stderr)
"""
    result = _run_checker(script, tmp_path)
    assert "LOADED [] EXIT 0" in result.stderr, result.stderr
    assert '"status": "accepted"' in result.stdout


def test_the_checker_runs_where_fcntl_does_not_exist(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "contacts.csv", contact_rows(10))
    script = f"""
import sys
import tomllib
sys.modules["fcntl"] = None  # as on Windows: importing it raises ImportError
from standards.cli import checker
checker([{str(path)!r}])
"""
    result = _run_checker(script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "accepted" in result.stdout.lower()


def test_installing_with_no_extras_brings_the_checker_only() -> None:
    """What `pip install .` brings: the analyst's stack stays behind the `collaborative` extra."""
    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~\[ ]", requirement, maxsplit=1)[0].lower() for requirement in project["dependencies"]}
    assert names == {"polars", "pydantic", "fastexcel", "xlsxwriter", "jinja2", "pyyaml", "typer", "rich"}
    assert project["scripts"]["collab-check"] == "standards.cli:main"


def test_collab_in_a_checker_only_install_says_what_to_use_instead(tmp_path: Path) -> None:
    # A charity's trial: the guide's install has a `collab` command too, and it ended in a traceback about botocore.
    collaborative_only = (
        "botocore",
        "boto3",
        "dagster",
        "duckdb",
        "opendp",
        "great_expectations",
        "splink",
        "jellyfish",
    )
    script = f"""
import sys
for name in {collaborative_only!r}:
    sys.modules[name] = None  # not installed: importing it raises ModuleNotFoundError
sys.argv = ["collab", "check", "contacts.csv"]
from pipelines.cli import main
main()
"""
    result = _run_checker(script, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "is not installed here. To check a file, use `collab-check FILE`" in result.stderr


def test_collab_reports_a_missing_module_of_its_own_as_the_error_it_is(tmp_path: Path) -> None:
    # A review: "is not installed here" for any missing module would also hide a mistake in our own imports.
    script = """
import sys
sys.modules["pipelines.cli.bucket"] = None  # one of our own modules, failing to import
sys.argv = ["collab", "--help"]
from pipelines.cli import main
main()
"""
    result = _run_checker(script, tmp_path)
    assert result.returncode == 1 and "ModuleNotFoundError" in result.stderr
    assert "is not installed here" not in result.stderr

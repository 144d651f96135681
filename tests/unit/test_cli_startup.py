"""`collab`'s light commands (registering a charity, checking a file) start without the run machinery."""

import subprocess
import sys

import pytest

# Seconds of imports each: Dagster and Great Expectations (the runner), Splink (the warehouse), OpenDP (budgets);
# boto3, half a second, only for the commands that talk to the S3 server.
RUN_MACHINERY = ("dagster", "great_expectations", "splink", "opendp", "uvicorn", "boto3")


def test_the_command_line_loads_the_run_machinery_only_for_the_commands_that_use_it() -> None:
    script = f"""
import sys
import pipelines.cli
pipelines.cli.register_commands()
print(sorted({{name.split(".")[0] for name in sys.modules}} & set({RUN_MACHINERY!r})))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_ctrl_c_while_the_commands_load_says_so_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pipelines.cli

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pipelines.cli, "register_commands", interrupted)
    with pytest.raises(SystemExit) as stopped:
        pipelines.cli.main()
    assert stopped.value.code == 130
    assert capsys.readouterr().err == "Interrupted before anything started.\n"

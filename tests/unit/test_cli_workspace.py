"""Commands that read a workspace say when there is none, and `collab serve-site` when its port is taken (an
analyst's trial, session 31: a mistyped COLLAB_HOME made an empty workspace that said "No submissions yet", and a
port in use ended in a traceback)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from collab.workspace import Workspace
from pipelines.cli import register_commands
from pipelines.cli.app import app


@pytest.mark.parametrize("command", [["submissions"], ["budget"], ["charity", "list"], ["incident", "ABC123"]])
def test_a_command_that_reads_a_workspace_makes_none_where_there_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    register_commands()
    nowhere = tmp_path / "mistyped"
    monkeypatch.setenv("COLLAB_HOME", str(nowhere))
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2 and "there is no workspace at" in " ".join(result.output.split())
    assert not nowhere.exists()


def test_the_site_is_not_served_on_a_port_in_use(workspace: Workspace) -> None:
    register_commands()
    (workspace.publish / "site").mkdir(parents=True)
    (workspace.publish / "site" / "index.html").write_text("<!doctype html><title>Site</title>")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["serve-site", "--port", str(port)])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and f"cannot serve on port {port}" in said and "--port" in said
    assert not isinstance(result.exception, OSError)


def test_a_refusal_asked_for_as_json_is_json(workspace: Workspace) -> None:
    """An analyst's trial (session 31): some commands' refusals were JSON under --json, others plain text."""
    register_commands()
    for command in (["incident", "NOPE", "--json"], ["purge", "no-such-submission", "--json"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code in (1, 2)
        said = json.loads(result.stdout)
        assert said["exit_code"] == result.exit_code and said["error"]

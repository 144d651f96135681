"""`collab budget` as an operator reads it."""

from __future__ import annotations

from typer.testing import CliRunner

from collab.warehouse import connect
from collab.workspace import Workspace


def test_a_quarter_released_at_two_unit_counts_shows_both_beside_its_summed_rho(workspace: Workspace) -> None:
    """Found by the operator's trial: after a charity stopped linking records, a quarter's release at 2 units and its
    revision at 3 showed "units 3" beside a ρ per person that 3² × the ρ per unit did not give."""
    from pipelines.cli import register_commands
    from pipelines.cli.app import app

    register_commands()
    with connect(workspace.warehouse_path) as con:
        for release_id, kind, units in (("2026Q3-v1", "release", 2), ("2026Q3-v2", "revision", 3)):
            con.execute(
                "INSERT INTO privacy_ledger (release_id, period, indicator_id, measurement, kind, mechanism, rho, "
                "noise_scale, sensitivity, recorded_at, max_units, rho_per_person, spent_order) "
                "VALUES (?, '2026Q3', 'people', 'count', ?, 'gaussian', 0.125, 2.0, 1.0, now(), ?, ?, ?)",
                [release_id, kind, units, 0.125 * units**2, units],
            )
    shown = CliRunner().invoke(app, ["budget"]).output
    [row] = [line for line in shown.splitlines() if line.lstrip("│ ").startswith("2026Q3")]
    assert "2–3" in row and "1.625" in row  # 0.125 × 2² + 0.125 × 3²


def test_a_release_charged_again_after_the_caps_were_raised_shows_at_its_new_units(workspace: Workspace) -> None:
    """Found by the privacy audit: raised caps recharge earlier releases, and the budget must say what they cost."""
    import json

    from pipelines.cli import register_commands
    from pipelines.cli.app import app

    register_commands()
    with connect(workspace.warehouse_path) as con:
        for release_id, units in (("2026Q3-v1", 2), ("2026Q3-v2", 3)):
            con.execute(
                "INSERT INTO privacy_ledger (release_id, period, indicator_id, measurement, kind, mechanism, rho, "
                "noise_scale, sensitivity, recorded_at, max_units, rho_per_person, spent_order) "
                "VALUES (?, '2026Q3', 'people', 'count', 'release', 'gaussian', 0.125, 2.0, 1.0, now(), ?, ?, ?)",
                [release_id, units, 0.125 * units**2, 2 * units - 1],
            )
        con.execute(
            "INSERT INTO privacy_recharges VALUES ('2026Q3-v1', '2026Q3', '2026Q3-v2', 2, 3, ?, now(), 4)", [0.125 * 5]
        )
    shown = CliRunner().invoke(app, ["budget"]).output
    [row] = [line for line in shown.splitlines() if line.lstrip("│ ").startswith("2026Q3")]
    assert "2–3" not in row and "2.25" in row  # both at 3 units now: 0.125 × 3² twice
    summary = json.loads(CliRunner().invoke(app, ["budget", "--json"]).output)
    assert summary["lifetime_rho_per_person"] == 2.25
    [recharged] = [e for e in summary["entries"] if e["kind"] == "recharge"]
    assert recharged["measurement"] == "recharged from 2 to 3 units by 2026Q3-v2"
    assert "recharged" in CliRunner().invoke(app, ["budget", "--detail"]).output  # a narrow table wraps the rest


def test_caps_raised_since_the_last_release_show_at_once(workspace: Workspace) -> None:
    """Before the next release charges them, the budget already counts earlier releases at the units raised caps
    give them: an analyst who raised one sees what is left now."""
    import json

    from pipelines.cli import register_commands
    from pipelines.cli.app import app

    register_commands()
    with connect(workspace.warehouse_path) as con:
        # Two charities that do not link records and one that does: 3 units a person, one across the linking one.
        con.execute(
            "INSERT INTO releases (release_id, period, revision, kind, rho, contributors, linking_contributors, "
            "units_per_person, standard_version, code_version, created_at, rho_per_person, linked_units_per_person) "
            "VALUES ('2026Q3-v1', '2026Q3', 1, 'release', 0.125, 3, 1, 3, '1.1', 't', now(), 1.125, 1)"
        )
        con.execute(
            "INSERT INTO privacy_ledger (release_id, period, indicator_id, measurement, kind, mechanism, rho, "
            "noise_scale, sensitivity, recorded_at, max_units, rho_per_person, spent_order) "
            "VALUES ('2026Q3-v1', '2026Q3', 'people', 'count', 'release', 'gaussian', 0.125, 2.0, 1.0, now(), 3, 1.125, 1)"
        )
    settings = workspace.settings.model_copy(deep=True)
    settings.privacy.linked_units_per_person = 2
    settings.privacy.period_rho = 1.5
    workspace.save_settings(settings)
    shown = CliRunner().invoke(app, ["budget"]).output
    [row] = [line for line in shown.splitlines() if line.lstrip("│ ").startswith("2026Q3")]
    assert "│ 4 " in row and "│ 2 " in row  # 4 units now: 0.125 × 4²
    assert "over 1.5 by" in row  # the quarter's budget, broken by the charge again: said, not "0 left"
    assert "the next release charges them so" in " ".join(shown.split())
    summary = json.loads(CliRunner().invoke(app, ["budget", "--json"]).output)
    assert summary["lifetime_rho_per_person"] == 2.0 and summary["periods"][0]["rho_left"] == -0.5
    [due] = [e for e in summary["entries"] if e["kind"] == "recharge due"]
    assert due["measurement"] == "due from 3 to 4 units at the next release"
    with connect(workspace.warehouse_path) as con:
        assert con.execute("SELECT count(*) FROM privacy_recharges").fetchall() == [(0,)]  # shown, not charged


def test_the_units_across_linking_charities_are_said_to_hold_only_while_linkage_is_right(workspace: Workspace) -> None:
    # A privacy review: the caption said "plus one across those that do", as if linkage never went wrong.
    from pipelines.cli import register_commands
    from pipelines.cli.app import app

    register_commands()
    shown = " ".join(CliRunner().invoke(app, ["budget"]).output.replace("│", " ").split())
    assert (
        "plus one across those that do, and one more for each extra group linkage split their records into and each "
        "record of someone else's it matched with one of theirs" in shown
    )
    assert "the most the settings declare: someone counted more may get less protection" in shown

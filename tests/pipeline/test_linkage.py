"""Record linkage through the real assets: one privacy unit per person across linking charities."""

from __future__ import annotations

import polars as pl
from dagster import DagsterInstance

from collab.intake import submission_dir
from collab.landing import LocalLandingZone
from collab.registry import Registry
from collab.staging import CONTACTS_FILE
from collab.warehouse import connect
from collab.workspace import Workspace
from tests.conftest import HEADER, contact_rows, write_csv
from tests.pipeline.test_submissions import process, sense, submission_of

SURNAMES = ["O'Brien", "Nowak", "Okafor", "Smith"]


def test_linking_charities_share_one_unit_per_person_and_names_never_reach_the_warehouse(workspace: Workspace) -> None:
    settings = workspace.settings.model_copy(deep=True)
    settings.intake.settle_seconds = 0
    workspace.save_settings(settings)
    registry, landing = Registry(workspace), LocalLandingZone(root=str(workspace.home))
    spellings = {"food-bank-a": SURNAMES, "advice-b": [s.upper().replace("'", "") for s in SURNAMES]}
    spellings["pantry-c"] = SURNAMES
    for charity, surnames in spellings.items():
        registry.add(charity, charity.title(), linkage=charity != "pantry-c")
        landing.create_area(charity)
        rows = [[*row, surnames[i]] for i, row in enumerate(contact_rows(4, prefix=charity[:2].upper()))]
        path = write_csv(workspace.home.parent / "extracts" / f"{charity}.csv", rows, header=[*HEADER, "Surname"])
        landing.drop(charity, path)
    instance = DagsterInstance.ephemeral()
    keys = sense(workspace, instance)
    assert len(keys) == 3 and all(process(workspace, instance, key).success for key in keys)
    for key in keys:
        staged = pl.read_parquet(submission_dir(workspace, submission_of(workspace, key)) / CONTACTS_FILE)
        assert "surname" not in staged.columns and "linkage_basis" not in staged.columns
        assert staged.get_column("linkage_token").is_null().all() == key.startswith("pantry-c")
    with connect(workspace.warehouse_path) as con:
        people = {
            charity: (sorted(keys), linked)
            for charity, keys, linked in con.execute(
                "SELECT charity_id, list(DISTINCT person_key), bool_and(linked) FROM contacts GROUP BY ALL"
            ).fetchall()
        }
        everything = str(con.execute("SELECT * FROM contacts").fetchall())
    assert people["food-bank-a"] == people["advice-b"] and people["food-bank-a"][1]
    assert not set(people["pantry-c"][0]) & set(people["food-bank-a"][0]) and not people["pantry-c"][1]
    assert len(people["food-bank-a"][0]) == 4
    assert not any(name.upper().replace("'", "") in everything.upper() for name in SURNAMES)

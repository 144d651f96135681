"""Landed files as named partitions, and duplicates found where each file is received (in its own run)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from dagster import DagsterInvalidDefinitionError
from dagster._core.definitions.partitions.utils.base import raise_error_on_invalid_partition_key_substring

import collab.intake
from collab.faults import CRASH_VARIABLE
from collab.intake import (
    Receipt,
    _incoming_copy,
    _write_notice,
    partition_key_for,
    read_receipt,
    receive_object,
    receive_partition,
    sweep_abandoned_copies,
)
from collab.landing import LandingObject, LandingObjectGone, LocalLandingZone
from collab.states import read_state, write_state
from collab.workspace import Workspace
from tests.conftest import contact_rows, write_csv

CHARITY = "north-pantry"
MODIFIED = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def landed(key: str, version: str = "10-1") -> LandingObject:
    return LandingObject(CHARITY, key, 10, version, MODIFIED)


@pytest.mark.parametrize(
    ("key", "stem"),
    [
        ("Jan contacts (final).csv", "Jan-contacts-final"),
        ("2026/q1...export,v2[1].xlsx", "q1-export-v2-1"),
        ("données été|2026.csv", "donn-es-t-2026"),
        ("\n\t.csv", "file"),
        ("x" * 200 + ".csv", "x" * 60),
    ],
)
def test_partition_keys_are_readable_and_safe_for_dagster(key: str, stem: str) -> None:
    partition = partition_key_for(landed(key))
    charity, readable, digest = partition.split("/")
    assert (charity, readable) == (CHARITY, stem)
    assert len(digest) == 8 and int(digest, 16) >= 0
    raise_error_on_invalid_partition_key_substring([partition])  # nothing Dagster refuses
    assert not set(partition) & set(",|[]")  # nor what breaks its partition selections


def test_partition_keys_are_stable_and_unique_per_landed_file() -> None:
    assert partition_key_for(landed("q1.csv")) == partition_key_for(landed("q1.csv"))
    keys = {
        partition_key_for(landed("q1.csv")),
        partition_key_for(landed("q1.csv", version="11-2")),  # the same name written again
        partition_key_for(landed("old/q1.csv")),  # the same name in another folder
        partition_key_for(LandingObject("south", "q1.csv", 10, "10-1", MODIFIED)),
    }
    assert len(keys) == 4
    with pytest.raises(DagsterInvalidDefinitionError):  # what the sanitising protects against
        raise_error_on_invalid_partition_key_substring(["a...b"])


def test_identical_files_received_at_once_make_one_submission_and_one_duplicate(
    workspace: Workspace, tmp_path: Path
) -> None:
    zone = LocalLandingZone(root=str(workspace.home))
    path = write_csv(tmp_path / "q1.csv", contact_rows(5))
    zone.drop(CHARITY, path)
    zone.drop(CHARITY, path, "copy.csv")
    objects = zone.pending([CHARITY])
    running: set[str] = set()  # what Dagster would say: both runs are going
    running.update(partition_key_for(obj) for obj in objects)
    start = threading.Barrier(len(objects))
    receipts = {}

    def run(obj: LandingObject) -> None:
        start.wait()
        receipts[obj.name] = receive_object(workspace, zone, obj, is_active=running.__contains__)

    threads = [threading.Thread(target=run, args=(obj,)) for obj in objects]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.duplicate for r in receipts.values()) == [False, True]
    assert len({r.submission_id for r in receipts.values()}) == 1
    [kept] = [r for r in receipts.values() if not r.duplicate]
    state = read_state(workspace, kept.submission_id)
    assert state is not None and state.state == "staged" and state.name == kept.partition_key
    assert not list((workspace.landing / CHARITY).iterdir())
    assert len(list((workspace.feedback / CHARITY).glob("*.duplicate-*.json"))) == 1


def test_a_partition_is_received_once_and_a_stopped_submission_is_taken_up_by_a_new_drop(
    workspace: Workspace, tmp_path: Path
) -> None:
    zone = LocalLandingZone(root=str(workspace.home))
    path = write_csv(tmp_path / "q1.csv", contact_rows(5))
    zone.drop(CHARITY, path)
    [obj] = zone.pending([CHARITY])
    key = partition_key_for(obj)
    first = receive_partition(workspace, zone, key)
    assert receive_partition(workspace, zone, key) == first == read_receipt(workspace, key)
    # Its run stopped after the check: the same bytes dropped again, nobody processing it, take it up.
    write_state(workspace, submission_id=first.submission_id, charity_id=CHARITY, file_name="q1.csv", state="checked")
    zone.drop(CHARITY, path, "again.csv")
    [again] = zone.pending([CHARITY])
    taken = receive_object(workspace, zone, again)
    assert (taken.submission_id, taken.duplicate) == (first.submission_id, False)
    state = read_state(workspace, first.submission_id)
    assert state is not None and state.state == "checked" and state.name == partition_key_for(again)
    # A partition whose file is gone (or changed since it was named) receives nothing.
    with pytest.raises(LandingObjectGone):
        receive_partition(workspace, zone, f"{CHARITY}/q1/00000000")


# A process that receives every landed file of the charity, as a run's first step does.
_RECEIVE = """
import sys
from pathlib import Path
from collab.intake import receive_object
from collab.landing import LocalLandingZone
from collab.workspace import Workspace
zone = LocalLandingZone(root=sys.argv[1])
for obj in zone.pending([sys.argv[2]]):
    receive_object(Workspace(Path(sys.argv[1])), zone, obj)
"""


def test_a_copy_left_by_a_run_killed_mid_copy_is_swept_by_the_next_and_a_live_one_is_not(
    workspace: Workspace, tmp_path: Path
) -> None:
    # A trial found each killed run's raw copy kept in staging for good (`.incoming-<uuid>`).
    zone = LocalLandingZone(root=str(workspace.home))
    zone.drop(CHARITY, write_csv(tmp_path / "q1.csv", contact_rows(30_000)))  # past the first 1 MB written
    environment = {**os.environ, CRASH_VARIABLE: "mid-copy"}
    killed = subprocess.run(
        [sys.executable, "-c", _RECEIVE, str(workspace.home), CHARITY], env=environment, capture_output=True
    )
    assert killed.returncode == -signal.SIGKILL
    [abandoned] = workspace.staging.glob(".incoming-*")
    assert abandoned.stat().st_size > 0 and abandoned.stat().st_mode & 0o077 == 0  # raw bytes, the run's user only

    with _incoming_copy(workspace) as live:  # another run's copy, being written now
        live.write_bytes(b"being copied")
        empty = workspace.staging / ".incoming-just-made"  # made, not yet locked: left alone while young
        empty.touch()
        assert sweep_abandoned_copies(workspace) == [abandoned]
        assert live.exists() and empty.exists()
        os.utime(empty, (0, 0))
        assert sweep_abandoned_copies(workspace) == [empty]
        assert live.exists()

    [obj] = zone.pending([CHARITY])  # the killed run's file is still there, and taken whole
    receipt = receive_object(workspace, zone, obj)
    assert not receipt.duplicate and not list(workspace.staging.glob(".incoming-*"))


def test_a_notice_page_escapes_what_the_charity_named(workspace: Workspace) -> None:
    zone = LocalLandingZone(root=str(workspace.home))
    zone.create_area(CHARITY)
    note = {"status": "refused", "file_name": "<script>x</script>.csv", "message": "'<b>' & more was not read."}
    _write_notice(zone, CHARITY, "refused-test", note)
    page = (workspace.feedback / CHARITY / "refused-test.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;.csv" in page
    assert "&#x27;&lt;b&gt;&#x27; &amp; more was not read." in page
    assert json.loads((workspace.feedback / CHARITY / "refused-test.json").read_text()) == note


def test_a_file_stopped_between_its_manifest_and_its_receipt_is_taken_up_by_its_own_partitions_next_run(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ctrl-C reaches a run anywhere: one stopped after writing a submission's manifest, before its receipt and
    state, left the landed file in place. The next run of the same partition is going while it receives the file: it
    must take the submission up, not call the file a duplicate of itself (a trial's run did, and released the quarter
    without it)."""
    zone = LocalLandingZone(root=str(workspace.home))
    zone.drop(CHARITY, write_csv(tmp_path / "q1.csv", contact_rows(5)))
    [obj] = zone.pending([CHARITY])
    key = partition_key_for(obj)

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(collab.intake, "_write_receipt", interrupted)
        with pytest.raises(KeyboardInterrupt):
            receive_partition(workspace, zone, key)
    assert read_receipt(workspace, key) is None and zone.pending([CHARITY]) == [obj]

    receipt = receive_partition(workspace, zone, key, is_active=lambda partition: partition == key)
    assert not receipt.duplicate
    state = read_state(workspace, receipt.submission_id)
    assert state is not None and state.state == "staged" and state.name == key
    assert not zone.pending([CHARITY]) and not list((workspace.feedback / CHARITY).glob("*.duplicate-*.json"))


def test_a_finished_submission_sent_again_while_an_earlier_file_is_unfinished_is_taken_up_not_a_duplicate(
    workspace: Workspace, tmp_path: Path
) -> None:
    """An attacker's trial (session 37): a charity sent A, then B replacing it, then both again. With one worker, A's
    copy was loaded before B's came (B replaced, so taken up again) and B won; with two, B's copy came while A's was
    being checked, B was not yet replaced, its copy was called a duplicate, and A, the older extract, won. A copy of a
    finished submission is a duplicate only if nothing its charity sent before it is unfinished."""
    zone = LocalLandingZone(root=str(workspace.home))
    a, b = write_csv(tmp_path / "a.csv", contact_rows(5)), write_csv(tmp_path / "b.csv", contact_rows(3, prefix="B"))

    def received(path: Path, name: str) -> Receipt:
        zone.drop(CHARITY, path, name)
        [obj] = [o for o in zone.pending([CHARITY]) if o.name == name]
        return receive_object(workspace, zone, obj)

    def finished(receipt: Receipt, name: str) -> None:
        write_state(workspace, submission_id=receipt.submission_id, charity_id=CHARITY, file_name=name, state="loaded")

    first_a, first_b = received(a, "a.csv"), received(b, "b.csv")
    finished(first_a, "a.csv")
    finished(first_b, "b.csv")
    # Nothing else under way: the same bytes again are a duplicate, as before.
    assert received(b, "b-again.csv").duplicate
    # B replaced A, so A's copy is taken up again, counted from when it came; it is being checked when B's copy
    # comes: B's copy is taken up again too, counted from when it came, after A's.
    write_state(
        workspace,
        submission_id=first_a.submission_id,
        charity_id=CHARITY,
        file_name="a.csv",
        state="loaded",
        replaced=True,
    )
    assert not received(a, "a-again.csv").duplicate
    taken = received(b, "b-third.csv")
    assert (taken.submission_id, taken.duplicate) == (first_b.submission_id, False)
    assert read_state(workspace, first_b.submission_id).state == "staged"  # type: ignore[union-attr]
    # A's copy waits in the area, sent after B and before B's copy: the same.
    finished(first_a, "a.csv")
    finished(first_b, "b.csv")
    zone.drop(CHARITY, a, "a-third.csv")
    assert not received(b, "b-fourth.csv").duplicate


def test_a_copy_is_a_duplicate_when_what_is_unfinished_was_sent_before_the_original_or_after_the_copy(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Only a file sent between a submission and its copy can replace the submission's quarters before the copy
    comes. The demo's "Copy of" file, sent beside its charity's other quarters, was taken up again while they were
    being checked, and the demo showed no duplicate."""
    zone = LocalLandingZone(root=str(workspace.home))
    earlier, b = (
        write_csv(tmp_path / "earlier.csv", contact_rows(4, prefix="E")),
        write_csv(tmp_path / "b.csv", contact_rows(3, prefix="B")),
    )

    def received(path: Path, name: str) -> Receipt:
        zone.drop(CHARITY, path, name)
        [obj] = [o for o in zone.pending([CHARITY]) if o.name == name]
        return receive_object(workspace, zone, obj)

    first_earlier = received(earlier, "earlier.csv")  # being checked throughout: sent before B
    first_b = received(b, "b.csv")
    write_state(workspace, submission_id=first_b.submission_id, charity_id=CHARITY, file_name="b.csv", state="loaded")
    assert read_state(workspace, first_earlier.submission_id).state == "staged"  # type: ignore[union-attr]
    zone.drop(CHARITY, b, "Copy of b.csv")
    zone.drop(CHARITY, tmp_path / "earlier.csv", "sent-after-the-copy.csv")
    [copy] = [o for o in zone.pending([CHARITY]) if o.name == "Copy of b.csv"]
    assert receive_object(workspace, zone, copy).duplicate

"""The local landing zone reads only regular files of the charity's own area, and only once they are settled.

Real files, links, pipes and a real writer thread: an attacker with write access to one charity's
folder tries to make the pipeline read /etc/passwd, another charity's file or the pseudonymisation key.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from collab.intake import receive_object, settled_objects
from collab.landing import MAX_FOLDER_DEPTH, LandingObjectGone, LandingObjectRefused, LocalLandingZone
from collab.workspace import Workspace
from tests.conftest import contact_rows, write_csv
from tests.intake_pass import receive_pending

ATTACKER, VICTIM = "attacker-food-bank", "victim-advice"


@pytest.fixture
def zone(workspace: Workspace) -> LocalLandingZone:
    landing = LocalLandingZone(root=str(workspace.home))
    for charity in (ATTACKER, VICTIM):
        landing.create_area(charity)
    return landing


def _area(workspace: Workspace, charity: str) -> Path:
    return workspace.landing / charity


def _nothing_staged(workspace: Workspace) -> bool:
    return not [p for p in workspace.staging.iterdir() if not p.name.startswith(".")]


def _refusal_notes(workspace: Workspace) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((workspace.feedback / ATTACKER).glob("refused-*.json"))]


def test_links_to_files_outside_the_area_are_refused_unread(
    workspace: Workspace, zone: LocalLandingZone, tmp_path: Path
) -> None:
    victim_file = zone.drop(VICTIM, write_csv(tmp_path / "victim.csv", contact_rows(5)))
    area = _area(workspace, ATTACKER)
    (area / "passwd.csv").symlink_to("/etc/passwd")
    (area / "theirs.csv").symlink_to(victim_file)
    (area / "key.csv").symlink_to(workspace.key_path)
    (area / "victim-folder").symlink_to(_area(workspace, VICTIM), target_is_directory=True)
    os.link(workspace.key_path, area / "hard-linked-key.csv")

    result = receive_pending(workspace, zone, [ATTACKER])

    assert result.received == [] and _nothing_staged(workspace)
    refused = {obj.key: reason for obj, reason in result.refused}
    assert set(refused) == {"passwd.csv", "theirs.csv", "key.csv", "victim-folder", "hard-linked-key.csv"}
    assert all(reason.startswith("E_NOT_A_REGULAR_FILE: ") for reason in refused.values())
    assert "hard link" in refused["hard-linked-key.csv"] and "symbolic link" in refused["passwd.csv"]
    # Each entry was moved aside as it was (a link stays a link), and the charity is told, with the code.
    assert not any(area.iterdir())
    archived = list((workspace.archive / ATTACKER / "refused").rglob("passwd.csv"))
    assert len(archived) == 1 and archived[0].is_symlink()
    notes = _refusal_notes(workspace)
    assert len(notes) == 5 and {n["code"] for n in notes} == {"E_NOT_A_REGULAR_FILE"}
    # Nothing of what the links pointed at appears anywhere the charity can read.
    secret = workspace.key_path.read_bytes()
    for path in (workspace.feedback / ATTACKER).iterdir():
        text = path.read_bytes()
        assert b"root:" not in text and secret not in text and b"NFB-" not in text
    # The victim's file and the key are untouched.
    assert victim_file.exists() and workspace.key_path.read_bytes() == secret


def test_folders_nested_too_deep_are_moved_aside_whole_and_the_rest_is_read(
    workspace: Workspace, zone: LocalLandingZone, tmp_path: Path
) -> None:
    """A hostile trial (session 31): 1,100 nested folders in one charity's area ended the listing in a RecursionError,
    which stopped every charity's intake and the portal's list of files."""
    area = _area(workspace, ATTACKER)
    folder = os.open(area, os.O_RDONLY | os.O_DIRECTORY)
    for depth in range(1, 1_101):
        os.mkdir("d", dir_fd=folder)
        inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=folder)
        os.close(folder)
        folder = inner
        if depth == MAX_FOLDER_DEPTH:  # as far down as files are read
            write_csv(Path(f"/proc/self/fd/{folder}/deepest.csv"), contact_rows(6))
    os.close(folder)
    zone.drop(ATTACKER, write_csv(tmp_path / "top.csv", contact_rows(5)))
    zone.drop(VICTIM, write_csv(tmp_path / "theirs.csv", contact_rows(5)))

    result = receive_pending(workspace, zone, [ATTACKER, VICTIM])

    deepest = "/".join(["d"] * MAX_FOLDER_DEPTH) + "/deepest.csv"
    assert result.skipped == []
    assert sorted(m.object_key for m in result.received) == sorted([deepest, "top.csv", "theirs.csv"])
    [(refused, reason)] = result.refused
    assert refused.key == "/".join(["d"] * (MAX_FOLDER_DEPTH + 1)) and reason.startswith("E_FOLDERS_TOO_DEEP: ")
    # The folder was moved aside whole (only the folders above it are left), and the charity told.
    archived = workspace.archive / ATTACKER / "refused"
    try:
        assert not (area / refused.key).exists() and not [p for p in area.rglob("*") if not p.is_dir()]
        assert [p.name for p in archived.glob("*/d")] == ["d"]
        [note] = _refusal_notes(workspace)
        assert note["code"] == "E_FOLDERS_TOO_DEEP" and "nearer the top" in note["message"]
    finally:
        subprocess.run(["rm", "-rf", str(archived)], check=True)  # pytest's clean-up (shutil.rmtree) recurses


def test_a_named_pipe_is_refused_without_blocking(workspace: Workspace, zone: LocalLandingZone) -> None:
    os.mkfifo(_area(workspace, ATTACKER) / "pipe.csv")
    outcome: dict[str, object] = {}
    worker = threading.Thread(target=lambda: outcome.update(result=receive_pending(workspace, zone, [ATTACKER])))
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "intake blocked on a named pipe"
    [(obj, reason)] = outcome["result"].refused  # type: ignore[attr-defined]
    assert obj.key == "pipe.csv" and "named pipe" in reason


def test_a_file_swapped_for_a_link_or_pipe_after_listing_is_refused(
    workspace: Workspace, zone: LocalLandingZone, tmp_path: Path
) -> None:
    area = _area(workspace, ATTACKER)
    (area / "folder").mkdir()
    zone.drop(ATTACKER, write_csv(tmp_path / "a.csv", contact_rows(3)), "a.csv")
    write_csv(area / "folder" / "b.csv", contact_rows(3))
    listed = {obj.key: obj for obj in zone.pending([ATTACKER])}
    (area / "a.csv").unlink()
    os.mkfifo(area / "a.csv")
    with pytest.raises(LandingObjectRefused, match="named pipe"):
        zone.fetch(listed["a.csv"], tmp_path / "copy")
    # A folder on the path swapped for a link to another area after listing: refused, not followed.
    (area / "folder").rename(area / "moved")
    (area / "folder").symlink_to(_area(workspace, VICTIM), target_is_directory=True)
    with pytest.raises(LandingObjectRefused):
        zone.fetch(listed["folder/b.csv"], tmp_path / "copy")
    assert not (tmp_path / "copy").exists() or (tmp_path / "copy").stat().st_size == 0


def test_a_growing_file_is_never_taken_half_written(
    workspace: Workspace, zone: LocalLandingZone, tmp_path: Path
) -> None:
    path = _area(workspace, ATTACKER) / "growing.csv"
    rows = contact_rows(60)
    write_csv(path, rows[:1])
    # Listed, then written to before it is fetched: left for the next pass.
    [listed] = zone.pending([ATTACKER])
    with path.open("a") as handle:
        handle.write(",".join(rows[1]) + "\n")
    with pytest.raises(LandingObjectGone, match="changed"):
        zone.fetch(listed, tmp_path / "copy")

    def write_slowly() -> None:
        for row in rows[2:]:
            with path.open("a") as handle:
                handle.write(",".join(row) + "\n")
            time.sleep(0.03)

    writer = threading.Thread(target=write_slowly)
    writer.start()
    settled, waiting = settled_objects(zone, [ATTACKER], settle_seconds=0.5)
    writer.join()
    assert settled == []
    assert [(obj.key, "still being written" in why) for obj, why in waiting] == [("growing.csv", True)]
    [finished], _ = settled_objects(zone, [ATTACKER], settle_seconds=0.5)
    receipt = receive_object(workspace, zone, finished)
    staged = workspace.staging / receipt.submission_id / "source.csv"
    assert len(staged.read_text().splitlines()) == 61  # the header and every row


def test_a_file_dated_in_the_future_waits_and_says_why_without_holding_the_run(
    workspace: Workspace, zone: LocalLandingZone
) -> None:
    path = write_csv(_area(workspace, ATTACKER) / "ahead.csv", contact_rows(3))
    ahead = time.time() + 3600
    os.utime(path, (ahead, ahead))
    started = time.perf_counter()
    settled, waiting = settled_objects(zone, [ATTACKER], settle_seconds=0.5)
    assert time.perf_counter() - started < 0.5  # not waited for
    assert settled == []
    assert [(obj.key, "dated in the future" in why) for obj, why in waiting] == [("ahead.csv", True)]


def _folder_and_outside(area: Path, tmp_path: Path) -> Path:
    """A file in a folder of the area, and a folder outside it holding a secret of the same name; returns the latter."""
    (area / "folder").mkdir()
    write_csv(area / "folder" / "b.csv", contact_rows(2))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "b.csv").write_text("SECRET OUTSIDE\n")
    return outside


def _swap_folder_for_link(area: Path, outside: Path) -> None:
    (area / "folder").rename(area / "moved")
    (area / "folder").symlink_to(outside, target_is_directory=True)


def test_a_file_changed_or_a_folder_swapped_after_it_was_read_is_not_archived(
    workspace: Workspace, zone: LocalLandingZone, tmp_path: Path
) -> None:
    area = _area(workspace, ATTACKER)
    appended = write_csv(area / "appended.csv", contact_rows(2))
    outside = _folder_and_outside(area, tmp_path)
    listed = {obj.key: obj for obj in zone.pending([ATTACKER])}
    for obj in listed.values():
        zone.fetch(obj, tmp_path / f"copy-{obj.name}")
    # Written to after its copy was read: it stays, whole, for the next pass.
    with appended.open("a") as handle:
        handle.write("more,rows\n")
    with pytest.raises(LandingObjectGone, match="changed"):
        zone.archive(listed["appended.csv"], "s1")
    assert appended.read_text().endswith("more,rows\n")
    # The folder swapped for a link to somewhere else: nothing is moved from there.
    _swap_folder_for_link(area, outside)
    with pytest.raises(LandingObjectRefused):
        zone.archive(listed["folder/b.csv"], "s2")
    assert (outside / "b.csv").read_text() == "SECRET OUTSIDE\n"
    assert not (workspace.home / "archive" / ATTACKER).exists() or not any(
        p.is_file() for p in (workspace.home / "archive" / ATTACKER).rglob("*")
    )


def test_discarding_deletes_only_the_entry_as_it_was_listed(
    workspace: Workspace, zone: LocalLandingZone, tmp_path: Path
) -> None:
    area = _area(workspace, ATTACKER)
    write_csv(area / "gone.csv", contact_rows(2))
    changed = write_csv(area / "changed.csv", contact_rows(2))
    outside = _folder_and_outside(area, tmp_path)
    listed = {obj.key: obj for obj in zone.pending([ATTACKER])}
    zone.discard(listed["gone.csv"])
    assert not (area / "gone.csv").exists()
    zone.discard(listed["gone.csv"])  # already gone: nothing to do
    with changed.open("a") as handle:
        handle.write("more,rows\n")
    with pytest.raises(LandingObjectGone, match="changed"):
        zone.discard(listed["changed.csv"])
    assert changed.exists()
    _swap_folder_for_link(area, outside)
    with pytest.raises(LandingObjectRefused):
        zone.discard(listed["folder/b.csv"])
    assert (outside / "b.csv").read_text() == "SECRET OUTSIDE\n"


def test_a_drop_that_fails_midway_leaves_nothing_in_the_area(
    tmp_path: Path, zone: LocalLandingZone, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_csv(tmp_path / "big.csv", contact_rows(5))

    def disk_full(src: Path, dst: Path) -> None:
        Path(dst).write_bytes(b"person_ref,con")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("collab.landing.shutil.copyfile", disk_full)
    with pytest.raises(OSError, match="No space left"):
        zone.drop(ATTACKER, source)
    assert [p.name for p in (Path(zone.root) / "landing" / ATTACKER).iterdir()] == []
    with pytest.raises(ValueError, match="is not a file"):
        zone.drop(ATTACKER, tmp_path)  # a folder, as a device or a pipe: never copied


def test_a_file_named_as_long_as_a_name_may_be_is_dropped(zone: LocalLandingZone, tmp_path: Path) -> None:
    """Found by the session-31 attacker's trial: `collab submit` of a 252-byte name failed with "File name too long",
    its partial copy being named after it, and longer."""
    source = write_csv(tmp_path / f"{'a' * 251}.csv", contact_rows(5))
    assert zone.drop(ATTACKER, source).read_bytes() == source.read_bytes()
    assert [obj.key for obj in zone.pending([ATTACKER])] == [source.name]


def test_a_folder_swapped_for_a_link_after_its_parent_was_listed_is_not_listed_through(
    workspace: Workspace, zone: LocalLandingZone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attacker's trial (session 37): a charity's process swapping one of its folders for a link to another
    charity's area, again and again, had that area's waiting files listed as its own (and shown on its portal page)
    in 23 of 2,000 listings: the folder was listed by its path, which follows a link. Here the swap is made at the
    worst moment, each time: just after the folder's parent was listed."""
    area = _area(workspace, ATTACKER)
    (area / "referrals").mkdir()
    write_csv(area / "referrals" / "own.csv", contact_rows(3))
    zone.drop(VICTIM, write_csv(tmp_path / "private-referrals.csv", contact_rows(5)))
    listed = os.scandir

    class SwappedOnceListed:
        """A folder's listing; once read, its folder "referrals" is swapped for a link to the victim's area."""

        def __init__(self, path: object) -> None:
            self._listing = listed(path)  # type: ignore[call-overload]

        def __enter__(self) -> object:
            return self._listing.__enter__()

        def __exit__(self, *exc: object) -> None:
            self._listing.__exit__(*exc)
            if not (area / "referrals").is_symlink():
                (area / "referrals").rename(area / "kept")
                (area / "referrals").symlink_to(_area(workspace, VICTIM), target_is_directory=True)

    monkeypatch.setattr(os, "scandir", SwappedOnceListed)
    listing = zone.pending([ATTACKER])
    assert (area / "referrals").is_symlink()  # the swap was made
    assert listing == []  # the folder listed was gone when it was to be entered; the next pass lists what is there
    monkeypatch.undo()
    assert sorted((obj.key, obj.refusal is None) for obj in zone.pending([ATTACKER])) == [
        ("kept/own.csv", True),
        ("referrals", False),  # the link, refused, never followed
    ]

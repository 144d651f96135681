"""Altering a published indicator file the way someone editing it by hand would."""

from pathlib import Path


def alter_one_row(data: Path) -> None:
    """Rename the region of one row of a by-region indicator CSV. Every such file has that row, whatever the
    release's noise (a flag such as ``low_reliability`` can be the same in every row, and then nothing changes)."""
    published = data.read_text()
    altered = published.replace(",North East,", ",North Eastern,", 1)
    assert altered != published, f"{data} has no North East row to alter"
    data.write_text(altered)

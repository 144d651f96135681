"""A check held for the charity that made it: the uploaded file and what the check wrote about it.

Nothing of a check reaches the workspace. Its files live in the portal's private temporary folder
(0700, outside ``COLLAB_HOME``) only while the charity may still look at them or send the file: they
are deleted when the charity checks another file, sends this one, signs out or goes idle, and all of
them when the portal stops. The uploaded file's name is only ever shown or used as the name of the
sent object, cleaned to one plain path component; it never becomes a path here.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from standards.check import CheckOptions, CheckResult, check_extract
from standards.feedback import FeedbackReport
from standards.mapping import CharityMapping
from standards.rows import RowFiles

UPLOAD = "upload"
REPORT = "report.json"
META = "meta.json"
REJECTED = "rejected.csv"
ACCEPTED = "accepted.csv"
AFFECTED = "affected.jsonl"
TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
# Letters and digits of any script ('Contacts – Cymraeg ŵ.csv' stays readable), spaces and ._()-: no markup, no
# control or direction-changing characters, nothing a shell or a URL treats specially.
_UNSAFE = re.compile(r"[^\w ._()-]+|_+")


# A sent file's name in UTF-8 bytes, its extension included: file systems allow 255 bytes, and the landing area and
# the feedback add to it. Cut at 100 characters, a name in Chinese or Japanese was 300 bytes: a 500 page.
MAX_NAME_BYTES = 100
# Longer than this after the last dot, it is no extension ('minutes of 3.5 meeting'), and is cut as the rest is.
MAX_EXTENSION_CHARS = 5


def safe_file_name(name: str) -> str:
    """A file name fit to show and to name the sent object: its last component, plain characters only, at most
    ``MAX_NAME_BYTES`` in UTF-8, a long one cut before its extension so that the extension stays."""
    last = PureWindowsPath(PurePosixPath(unicodedata.normalize("NFC", name or "")).name).name
    cleaned = re.sub(r"\s+", " ", _UNSAFE.sub("_", last)).strip(" .")
    stem, dot, extension = cleaned.rpartition(".")
    if not dot or not stem or len(extension) > MAX_EXTENSION_CHARS or " " in extension:
        stem, extension = cleaned, ""
    suffix = f".{extension}" if extension else ""
    room = MAX_NAME_BYTES - len(suffix.encode())
    stem = stem.encode()[:room].decode(errors="ignore").strip(" .")
    return f"{stem}{suffix}" if stem else "file"


@dataclass(frozen=True)
class HeldCheck:
    token: str
    directory: Path

    @classmethod
    def create(cls, root: Path, charity_id: str) -> HeldCheck:
        token = secrets.token_urlsafe(24)
        directory = root / charity_id / token
        directory.mkdir(parents=True, mode=0o700)
        return cls(token, directory)

    @property
    def upload(self) -> Path:
        return self.directory / UPLOAD

    @property
    def rejected(self) -> Path:
        return self.directory / REJECTED

    @property
    def accepted(self) -> Path:
        return self.directory / ACCEPTED

    @property
    def affected(self) -> Path:
        return self.directory / AFFECTED

    def meta(self) -> dict[str, object]:
        return json.loads((self.directory / META).read_text(encoding="utf-8"))

    def report(self) -> FeedbackReport:
        return FeedbackReport.model_validate_json((self.directory / REPORT).read_text(encoding="utf-8"))

    def run(self, file_name: str, mapping: CharityMapping, options: CheckOptions) -> CheckResult:
        """Check the held file with the charity's mapping, writing every affected row beside it."""
        for old in (self.rejected, self.accepted, self.affected):
            old.unlink(missing_ok=True)
        with RowFiles(rejected=self.rejected, accepted=self.accepted, affected=self.affected) as rows:
            result = check_extract(self.upload, mapping=mapping, file_name=file_name, options=options, on_rows=rows)
        (self.directory / REPORT).write_text(result.report.model_dump_json(), encoding="utf-8")
        meta = {"file_name": file_name, "rows_affected": rows.rows_affected}
        (self.directory / META).write_text(json.dumps(meta), encoding="utf-8")
        return result

    def delete(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

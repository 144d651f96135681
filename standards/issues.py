"""Every problem the checks can report, each with a stable code and a one-sentence fix.

Codes are part of the standard's public interface: a charity's scripts and our analysts' dashboards
may key on them, so a code is never renamed or reused. ``E_`` codes are errors (the row, or the whole
file, is not accepted); ``W_`` codes are warnings (the data are accepted, something was changed or
ignored). An optional field's value that fails a rule is dropped with the warning twin of the error
its required counterpart would raise (``E_INVALID_DATE`` -> ``W_INVALID_DATE``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    FILE = "file"  # the whole file is rejected, or a note about the whole file
    ROW = "row"  # the row is rejected
    VALUE = "value"  # one value was dropped or changed; the row is kept


@dataclass(frozen=True)
class IssueType:
    code: str
    scope: Scope
    title: str
    fix: str

    @property
    def is_error(self) -> bool:
        return self.code.startswith("E_")


@dataclass(frozen=True)
class Issue:
    """One occurrence: where it is (row as the spreadsheet shows it, column as the charity named it)."""

    code: str
    message: str
    row: int | None = None
    column: str | None = None
    value: str | None = None
    field: str | None = None  # the standard's field, when the issue is about one


class FileRejected(Exception):
    """The file as a whole cannot be accepted; carries the code, a plain-English message and, where
    one place shows the problem, its row and column."""

    def __init__(self, code: str, message: str, *, row: int | None = None, column: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.row = row
        self.column = column

    def issue(self) -> Issue:
        return Issue(self.code, self.message, row=self.row, column=self.column)


_TYPES = [
    # File-level errors: nothing from the file is accepted.
    IssueType(
        "E_EMPTY_FILE",
        Scope.FILE,
        "The file is empty",
        "Export the data again and check the file has a header row and at least one row of contacts.",
    ),
    IssueType(
        "E_NO_DATA_ROWS",
        Scope.FILE,
        "The file has a header but no contacts",
        "Export the data again, including the rows of contacts below the header.",
    ),
    IssueType(
        "E_UNREADABLE_FILE",
        Scope.FILE,
        "The file could not be read",
        "Save the file from your spreadsheet as 'CSV UTF-8' or as an Excel workbook (.xlsx) and upload it again.",
    ),
    IssueType(
        "E_UNSUPPORTED_FORMAT",
        Scope.FILE,
        "The file is not a spreadsheet",
        "Upload the extract as CSV or Excel (.xlsx); documents, images and archives cannot be read.",
    ),
    IssueType(
        "E_UNSAFE_FILE",
        Scope.FILE,
        "The file was not opened because it looks unsafe",
        "Save the workbook again from Excel as a normal .xlsx file and upload that.",
    ),
    IssueType(
        "E_INTERNAL",
        Scope.FILE,
        "The check of this file stopped on an error of ours",
        "Nothing for you to change: the collaborative's team has the details and will be in touch. If you ask about "
        "it, quote the reference in the message.",
    ),
    IssueType(
        "E_CELL_TOO_LONG",
        Scope.FILE,
        "A cell is longer than any spreadsheet cell can be",
        "Check the row named: a quote mark that is never closed, or a pasted document, makes one huge cell. Save the "
        "file again from your spreadsheet.",
    ),
    IssueType(
        "E_ENCRYPTED_FILE",
        Scope.FILE,
        "The workbook is protected by a password",
        "Save a copy of the workbook without its password and send that; files are encrypted in transit anyway.",
    ),
    IssueType(
        "E_FILE_TOO_LARGE",
        Scope.FILE,
        "The file is larger than a file may be",
        "Send the extract in parts, for example one file per quarter.",
    ),
    IssueType(
        "E_TOO_MANY_COLUMNS",
        Scope.FILE,
        "The file has more columns than a file may have",
        "Export only the columns the standard uses (the template shows them); a stray separator can also create them.",
    ),
    IssueType(
        "E_SHEET_TOO_LARGE",
        Scope.FILE,
        "The sheet is too large to read as a workbook",
        "Save the sheet as 'CSV UTF-8', which is read whatever its size. If the table itself is small, delete the rows "
        "below it and the columns right of it (one value far away is enough), or copy it into a new workbook.",
    ),
    IssueType(
        "E_TOO_MANY_ROWS",
        Scope.FILE,
        "The file has more rows than a file may have",
        "Send the extract in parts, for example one file per quarter.",
    ),
    IssueType(
        "E_LINE_TOO_LONG",
        Scope.FILE,
        "A line of the file is far too long to be a row of contacts",
        "Check that the file was saved as CSV with a line per contact; save it again from your spreadsheet.",
    ),
    IssueType(
        "E_UNTERMINATED_QUOTE",
        Scope.FILE,
        "A quote mark is never closed, so rows were read as one cell",
        'Open the file in a text editor at the row named and close or remove the stray quote mark ("), then save '
        "it again.",
    ),
    IssueType(
        "E_ENCODING",
        Scope.FILE,
        "The file's text encoding was not recognised",
        "In Excel use File > Save As > 'CSV UTF-8 (Comma delimited)' and upload the new file.",
    ),
    IssueType(
        "E_MISSING_SHEET",
        Scope.FILE,
        "The sheet named in your mapping file is not in the workbook",
        "Correct the sheet name in your mapping file, or remove it to let the check find the data sheet.",
    ),
    IssueType(
        "E_TOO_MANY_SHEETS",
        Scope.FILE,
        "The workbook has more sheets than a check chooses from",
        "Name the sheet that holds the contacts in your mapping file (sheet:), or save that sheet as a workbook of its "
        "own or as CSV UTF-8.",
    ),
    IssueType(
        "E_FIRST_ROWS_TOO_LARGE",
        Scope.FILE,
        "The first rows of the workbook's sheets hold more text than a check reads to choose among them",
        "Name the sheet that holds the contacts in your mapping file (sheet:), or save that sheet as a workbook of its "
        "own or as CSV UTF-8.",
    ),
    IssueType(
        "E_MISSING_COLUMN",
        Scope.FILE,
        "A required column is missing",
        "Add the column, or tell us which of your columns holds it in your mapping file; the template shows every column.",
    ),
    IssueType(
        "E_DUPLICATE_COLUMN",
        Scope.FILE,
        "Two columns hold the same field",
        "Name the column to use for the field in your mapping file's columns (`collab-standard suggest-mapping` "
        "proposes one): the others are then not read. Or delete or rename all but one of them.",
    ),
    IssueType(
        "E_IDENTIFIER_AS_REFERENCE",
        Scope.FILE,
        "The person references identify people outside your charity",
        "Use your own reference for each person instead (the client or case number from your records), the same "
        "in every file; never a National Insurance or NHS number, email address, phone number or name.",
    ),
    IssueType(
        "E_TOO_MANY_ROW_ERRORS",
        Scope.FILE,
        "Too many rows have errors",
        "Fix the most common problems listed in this report (they usually come from one column) and check the file again.",
    ),
    # Row-level errors: the row is not accepted, the rest of the file is.
    IssueType(
        "E_RAGGED_ROW",
        Scope.ROW,
        "The row has a different number of cells from the header",
        "Check the row for an extra or missing separator, or a comma inside a value that is not in quotes (blank "
        "cells after the last column are fine).",
    ),
    IssueType(
        "E_MISSING_VALUE",
        Scope.ROW,
        "A required value is blank",
        "Fill in the value: every contact needs a person reference, a contact date and a need ('Unknown' or 'N/A' "
        "count as blank). If you merged cells in Excel, unmerge them and fill in every row.",
    ),
    IssueType(
        "E_MISSING_AREA",
        Scope.ROW,
        "The row has no local authority code or postcode",
        "Give either the person's postcode (it is reduced to its district) or their local authority code.",
    ),
    IssueType(
        "E_INVALID_DATE",
        Scope.ROW,
        "A date could not be read",
        "Write real dates as day/month/year (31/01/2026) or year-month-day (2026-01-31); a contact whose date is not "
        "known yet cannot be counted, so leave it out until it is.",
    ),
    IssueType(
        "E_FUTURE_DATE",
        Scope.ROW,
        "The contact date is in the future",
        "Check the date; contacts can only be reported once they have happened. If you cannot find the real date, "
        "leave the row out.",
    ),
    IssueType(
        "E_DATE_OUT_OF_RANGE",
        Scope.ROW,
        "The contact date is implausibly early",
        "Check the year; contacts before 2000 are not part of the collaborative's data.",
    ),
    IssueType(
        "E_UNKNOWN_CODE",
        Scope.ROW,
        "A value is not in the codelist",
        "Use one of the codes or labels listed in the standard, or map your own wording in a mapping file "
        "(`collab-standard suggest-mapping` proposes one).",
    ),
    IssueType(
        "E_INVALID_VALUE",
        Scope.ROW,
        "A value breaks a rule of the standard",
        "Correct the value as described in the message.",
    ),
    IssueType(
        "E_REFERENCE_SHORTENED",
        Scope.ROW,
        "A person's reference was shortened by Excel",
        "In Excel, format the reference column as Text (or as Number with no decimal places) before saving as CSV, "
        "or export the references again from your own system: shortened, several people's references become one.",
    ),
    IssueType(
        "E_VALUE_TOO_LONG",
        Scope.ROW,
        "A value is far too long",
        "Check the cell; a reference should be a short code, not a paragraph.",
    ),
    # Value-level warnings: the value is dropped, the row is kept.
    IssueType(
        "W_INVALID_DATE",
        Scope.VALUE,
        "A date could not be read, so it was left out",
        "Write dates as day/month/year (31/01/2026) or year-month-day (2026-01-31).",
    ),
    IssueType(
        "W_DATE_OUT_OF_RANGE",
        Scope.VALUE,
        "A date is implausible, so it was left out",
        "Check the date of birth: it must be no later than the contact date, and give an age of at most 110 at it. "
        "If your system writes a date such as 01/01/1900 when the date of birth is not known, leave the cell blank.",
    ),
    IssueType(
        "W_UNKNOWN_CODE",
        Scope.VALUE,
        "A value is not in the codelist, so it was left out",
        "Use one of the codes or labels listed in the standard, or map your own wording in a mapping file "
        "(`collab-standard suggest-mapping` proposes one).",
    ),
    IssueType(
        "W_INVALID_AMOUNT",
        Scope.VALUE,
        "An amount could not be read, so it was left out",
        "Write amounts as plain numbers of pounds, such as 1250 or 1250.00; '£' is fine, and so are commas between "
        "thousands (1,250.00), but never a comma for the pence (1250,00).",
    ),
    IssueType(
        "W_NEGATIVE_AMOUNT",
        Scope.VALUE,
        "An amount is negative, so it was left out",
        "Record amounts as positive numbers of pounds; a debt of £500 is 500.",
    ),
    IssueType(
        "W_IMPLAUSIBLE_VALUE",
        Scope.VALUE,
        "A value is outside the plausible range, so it was left out",
        "Check the value; the message gives the range the standard accepts.",
    ),
    IssueType(
        "W_INVALID_NUMBER",
        Scope.VALUE,
        "A number could not be read, so it was left out",
        "Write whole numbers without words, such as 2.",
    ),
    IssueType(
        "W_UNKNOWN_AREA",
        Scope.VALUE,
        "A local authority code or postcode was not recognised, so it was left out",
        "Use a current local authority code (such as E08000025) or a full UK postcode.",
    ),
    IssueType(
        "W_AREA_NAME_AS_POSTCODE",
        Scope.VALUE,
        "A council's name was given instead of a postcode, and used as the area",
        "Nothing to fix if the council is right; a postcode (or its district, such as BS1) is more precise.",
    ),
    IssueType(
        "W_SURNAME_NOT_LINKABLE",
        Scope.VALUE,
        "A surname has no Latin letters, so the person cannot be linked across charities",
        "If your records also hold the surname in Latin letters (A to Z, as on a passport), give that spelling (the "
        "same each time) so the person can be linked: a person none of whose contacts can be linked is not counted in "
        "the published figures, or they would be counted as someone else at every charity.",
    ),
    IssueType(
        "W_INVALID_VALUE",
        Scope.VALUE,
        "A value breaks a rule of the standard, so it was left out",
        "Correct the value as described in the message.",
    ),
    IssueType(
        "W_VALUE_TOO_LONG",
        Scope.VALUE,
        "A value is far too long, so it was left out",
        "Check the cell; it should hold a short value.",
    ),
    # File-level warnings: the file is accepted, something about it changed.
    IssueType(
        "W_UNMAPPED_COLUMN",
        Scope.FILE,
        "A column is not part of the standard and was ignored",
        "Nothing to do if the column is not needed; if it holds a standard field, rename it or add it to your mapping file.",
    ),
    IssueType(
        "W_DROPPED_IDENTIFIER",
        Scope.FILE,
        "A column of personal details or free text was removed before storage",
        "Leave names, contact details, ID numbers, addresses and notes out of future extracts: the collaborative never needs them.",
    ),
    IssueType(
        "W_PERSONAL_DATA_VALUES",
        Scope.FILE,
        "Personal details were found in a column of the standard and were not stored",
        "Keep names, contact details, ID numbers and addresses out of this column; it should hold only what the standard asks for.",
    ),
    IssueType(
        "W_ENCODING_CONVERTED",
        Scope.FILE,
        "The file was not saved as UTF-8",
        "Nothing to do; next time use 'CSV UTF-8' in Save As so that accents and £ signs are always kept.",
    ),
    IssueType(
        "W_QUARTER_IN_A_LATER_FILE",
        Scope.FILE,
        "A quarter this file covers was not loaded from it: a file sent after it covers that quarter",
        "Each file replaces whole quarters, and the file sent last keeps them. If this file was meant to replace the "
        "later one, send it again: it is then the latest.",
    ),
    IssueType(
        "W_QUARTER_MOSTLY_REPLACED",
        Scope.FILE,
        "A quarter this file covers with a few contacts replaced many more sent before",
        "Each file replaces whole quarters. If that quarter was not meant to be in this file (a date typed in the wrong "
        "year, say), correct the date, or send the earlier file for that quarter again: it is loaded again.",
    ),
    IssueType(
        "W_HEADER_REPEATED",
        Scope.FILE,
        "A row repeats the header row and was skipped",
        "Nothing to do if two exports were joined into one file; otherwise check the rows listed.",
    ),
    IssueType(
        "W_MAPPED_COLUMN_MISSING",
        Scope.FILE,
        "Your mapping file names a column this file does not have",
        "Write the column's name in your mapping file exactly as the file's header has it (a typo is the usual cause), "
        "or remove the line if your system no longer exports that column.",
    ),
    IssueType(
        "W_FORMULAS_NOT_CALCULATED",
        Scope.FILE,
        "Formulas saved without their results were read as blank",
        "Open the workbook in Excel (or LibreOffice), let it calculate, save it, and send it again: the program that "
        "made it saved the formulas but not what they work out to.",
    ),
    IssueType(
        "W_HIDDEN_ROWS_READ",
        Scope.FILE,
        "Rows hidden in the workbook were read like the others",
        "Nothing to do if they are contacts to send. If they were hidden to leave them out, delete them and send the "
        "file again: a hidden row is still in the file.",
    ),
    IssueType(
        "W_HIDDEN_COLUMNS_READ",
        Scope.FILE,
        "Columns hidden in the workbook were read like the others",
        "Nothing to do if they hold what the feedback says they were read as. If a column was hidden to leave it out, "
        "delete it and send the file again (a hidden column is still in the file), or name the column to read in your "
        "mapping file.",
    ),
    IssueType(
        "W_ROWS_REPEATED",
        Scope.FILE,
        "Rows repeat earlier rows in every cell, and were counted again",
        "If the same export was joined into the file twice, remove the copy and send the file again; rows alike in "
        "every cell that are separate contacts need nothing.",
    ),
    IssueType(
        "W_ROW_OUTSIDE_COLUMNS",
        Scope.FILE,
        "A row with nothing in the columns that are read was skipped",
        "Nothing to do if it is a note beside the table; if it is a contact, put its values in the table's columns.",
    ),
    IssueType(
        "W_TEXT_LINE_ROW",
        Scope.FILE,
        "A line of text with no contact date was skipped",
        "Nothing to do if it is a report's footer or a note; if it is a contact, put its values in the table's "
        "columns, with its contact date.",
    ),
    IssueType(
        "W_TOTALS_ROW",
        Scope.FILE,
        "A row of totals was skipped",
        "Nothing to do; leave rows of totals out of the extract if you can. If the row is a contact, give it its "
        "contact date.",
    ),
    IssueType(
        "W_PEOPLE_NOT_LINKABLE",
        Scope.FILE,
        "Some people cannot be recognised across charities, so they are not counted",
        "Give a surname, a date of birth and a postcode in at least one contact of each person, wherever your records "
        "have them; if your charity never records them, ask your collaborative contact whether it should take part in "
        "record linkage.",
    ),
    IssueType(
        "W_OTHER_SHEETS_IGNORED",
        Scope.FILE,
        "Only one of several sheets of contacts was read",
        "Put all the contacts on one sheet (or send one file per sheet), or name the sheet to read in your mapping file.",
    ),
    IssueType(
        "W_DATE_ORDER_ASSUMED",
        Scope.FILE,
        "Dates could be day/month or month/day; day/month was assumed",
        "If your system writes month/day, add the line date_format: month/day/year to your mapping file.",
    ),
    IssueType(
        "W_DATE_ORDER_US",
        Scope.FILE,
        "Dates were read as month/day/year",
        "Many of these dates make sense only as month/day/year, and fewer only as day/month/year; if your dates are "
        "day/month/year, add the line date_format: day/month/year to your mapping file.",
    ),
]

ISSUE_TYPES: dict[str, IssueType] = {issue_type.code: issue_type for issue_type in _TYPES}


def issue_type(code: str) -> IssueType:
    return ISSUE_TYPES[code]


def warning_twin(code: str) -> str:
    """The value-level warning for an error found in an optional field (E_INVALID_DATE -> W_INVALID_DATE)."""
    twin = "W_" + code.removeprefix("E_")
    return twin if twin in ISSUE_TYPES else "W_INVALID_VALUE"

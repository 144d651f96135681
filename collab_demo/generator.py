"""Synthetic extracts from fictional charities, with known true aggregates for evaluation.

Every charity exports differently (headers, date formats, encodings, CSV or Excel, codes or its own
wording), declared in its mapping file. People live in one local authority and may be supported by
several charities serving their region. A few realistic mistakes are injected: unreadable dates,
misspelt needs, blank references, a file sent without its need column (and then corrected), a file
sent twice, and an annual report dropped by accident. Nothing here is real data.

The true aggregates are written to ``demo/truth/``, apart from the pipeline.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import xlsxwriter

from standards.codelists import load_codelist
from standards.extract import age_band_at, quarter_of
from standards.geography import load_geography
from standards.mapping import CharityMapping

NEEDS = load_codelist("need").values
FIRST_NAMES = (
    "Alex",
    "Sam",
    "Jo",
    "Chris",
    "Priya",
    "Mohammed",
    "Aisha",
    "Tom",
    "Megan",
    "Oliver",
    "Fatima",
    "Liam",
    "Grace",
    "Kwame",
    "Zofia",
)
SURNAMES = (
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Khan",
    "Patel",
    "Evans",
    "Wilson",
    "Campbell",
    "Murphy",
    "Nowak",
    "Okafor",
    "Hughes",
    "Davies",
)

# The long tail of surnames: no surname is common enough that a birth date alone finds the person.
_SURNAME_STEMS = (
    "Ash",
    "Brad",
    "Carr",
    "Dun",
    "Fair",
    "Hal",
    "Kings",
    "Lang",
    "Mar",
    "North",
    "Pen",
    "Ross",
    "Stan",
    "Thorn",
    "Wood",
    "Whit",
    "Ald",
    "Bex",
    "Cald",
    "Dray",
    "Elm",
    "Fen",
    "Gold",
    "Hart",
    "Ivy",
    "Kel",
    "Lowe",
    "Mill",
    "Oak",
    "Rad",
)
_SURNAME_ENDINGS = (
    "ley",
    "ton",
    "well",
    "field",
    "worth",
    "by",
    "ham",
    "ford",
    "wood",
    "more",
    "son",
    "er",
    "ridge",
    "stone",
    "wick",
    "bury",
    "combe",
    "dale",
    "land",
    "croft",
)


def draw_surnames(people: int, rng: np.random.Generator) -> np.ndarray:
    """A surname for each person: about one in five has a common one (``SURNAMES``), the rest one of
    600 rarer ones, each rarer name about as likely as any other."""
    rare = np.array([stem + ending.lower() for stem in _SURNAME_STEMS for ending in _SURNAME_ENDINGS])
    common = rng.random(people) < 0.2
    return np.where(
        common, np.array(SURNAMES)[rng.integers(0, len(SURNAMES), people)], rare[rng.integers(0, len(rare), people)]
    )


@dataclass(frozen=True)
class CharityProfile:
    id: str
    name: str
    regions: tuple[str, ...]
    file_format: str  # csv or xlsx
    encoding: str
    delimiter: str
    date_format: str | None  # None: real Excel dates
    columns: dict[str, str]  # standard field -> their header
    need_weights: dict[str, float]
    need_wording: dict[str, str] = field(default_factory=dict)  # code -> their wording
    uses_labels: bool = False
    money_style: str = "plain"  # plain | pounds
    extra_columns: tuple[str, ...] = ()  # columns we must drop (names, notes)
    linkage: bool = False  # takes part in record linkage: sends surnames
    named: bool = False  # agreed to be named among the contributors of published releases

    def mapping(self) -> CharityMapping:
        values = {"need": {wording: code for code, wording in self.need_wording.items()}} if self.need_wording else {}
        return CharityMapping(
            columns={header: field_name for field_name, header in self.columns.items()},
            date_format=self.date_format,
            values=values,
            sheet="Contacts" if self.file_format == "xlsx" else None,
        )


_COMMON = {
    "household_type": "Household",
    "children_in_household": "Children",
    "tenure": "Tenure",
    "employment_status": "Employment",
    "disability": "Disability",
    "monthly_income_gbp": "Monthly income",
    "monthly_essential_costs_gbp": "Monthly essential costs",
    "total_debt_gbp": "Total debt",
    "support_type": "Support given",
}

PROFILES: tuple[CharityProfile, ...] = (
    CharityProfile(
        "northside-food-bank",
        "Northside Food Bank",
        ("E12000001", "E12000003"),
        "csv",
        "utf-8",
        ",",
        "%d/%m/%Y",
        {
            "person_ref": "Client ID",
            "contact_date": "Visit Date",
            "need": "Reason for referral",
            "postcode": "Post Code",
            "date_of_birth": "D.O.B",
            "surname": "Surname",
            **_COMMON,
        },
        {"food": 5, "fuel_energy": 3, "benefits_income": 2, "debt": 1, "other": 0.5},
        uses_labels=True,
        extra_columns=("Client Name", "Notes"),
        named=True,
        linkage=True,
    ),
    CharityProfile(
        "riverside-advice",
        "Riverside Advice Centre",
        ("E12000007", "E12000008"),
        "xlsx",
        "utf-8",
        ",",
        None,
        {
            "person_ref": "Case Ref",
            "contact_date": "Date of Contact",
            "need": "Primary Need",
            "local_authority_code": "LA Code",
            "age_band": "Age Group",
            **_COMMON,
        },
        {
            "debt": 4,
            "benefits_income": 4,
            "housing_homelessness": 3,
            "employment": 1,
            "immigration": 1,
            "family_relationships": 1,
        },
    ),
    CharityProfile(
        "valleys-debt-line",
        "Valleys Debt Line",
        ("W92000004", "E12000009"),
        "csv",
        "cp1252",
        ",",
        "%d-%m-%Y",
        {
            "person_ref": "ClientRef",
            "contact_date": "ContactDate",
            "need": "Issue",
            "postcode": "Postcode",
            "date_of_birth": "DOB",
            "surname": "Surname",
            **_COMMON,
        },
        {"debt": 6, "benefits_income": 2, "fuel_energy": 2, "housing_homelessness": 1},
        need_wording={"debt": "Debt – priority", "fuel_energy": "Gas & electric"},
        money_style="pounds",
        linkage=True,
    ),
    CharityProfile(
        "highland-housing-trust",
        "Highland Housing Trust",
        ("S92000003", "E12000002"),
        "csv",
        "utf-8-sig",
        ";",
        "%Y-%m-%d",
        {
            "person_ref": "Tenant No",
            "contact_date": "Date",
            "need": "Need",
            "local_authority_code": "Council code",
            "age_band": "Age band",
            **_COMMON,
        },
        {"housing_homelessness": 6, "debt": 1, "benefits_income": 2, "health_disability": 1, "family_relationships": 1},
        uses_labels=True,
    ),
    CharityProfile(
        "midlands-money-advice",
        "Midlands Money Advice",
        ("E12000005", "E12000004", "E12000006", "E12000003"),
        "xlsx",
        "utf-8",
        ",",
        None,
        {
            "person_ref": "Client Number",
            "contact_date": "Appointment Date",
            "need": "Main Issue",
            "postcode": "Postcode",
            "age_band": "Age Range",
            **_COMMON,
        },
        {"debt": 5, "benefits_income": 3, "employment": 2, "fuel_energy": 1},
        need_wording={"benefits_income": "UC problem", "employment": "Job loss"},
    ),
    CharityProfile(
        "coastal-community-pantry",
        "Coastal Community Pantry",
        ("E12000009", "E12000008", "E12000007"),
        "csv",
        "utf-8",
        ",",
        "%d/%m/%y",
        {
            "person_ref": "Member ID",
            "contact_date": "Date of visit",
            "need": "Reason",
            "postcode": "Postcode",
            "date_of_birth": "Date of Birth",
            "surname": "Surname",
            **_COMMON,
        },
        {"food": 6, "fuel_energy": 3, "health_disability": 1, "other": 1},
        extra_columns=("Phone",),
        linkage=True,
    ),
    CharityProfile(
        "belfast-family-support",
        "Belfast Family Support",
        ("N92000002",),
        "csv",
        "utf-8",
        ",",
        "%d/%m/%Y",
        {
            "person_ref": "Family ID",
            "contact_date": "Contact date",
            "need": "Presenting issue",
            "local_authority_code": "LA code",
            "age_band": "Age band",
            **_COMMON,
        },
        {"family_relationships": 4, "food": 2, "benefits_income": 2, "health_disability": 2},
    ),
    CharityProfile(
        "pennine-debt-advice",
        "Pennine Debt Advice",
        ("E12000002", "E12000003"),
        "xlsx",
        "utf-8",
        ",",
        None,
        {
            "person_ref": "Client ref",
            "contact_date": "Session date",
            "need": "Need category",
            "postcode": "Post code",
            "date_of_birth": "Date of birth",
            "surname": "Surname",
            **_COMMON,
        },
        {"debt": 6, "benefits_income": 2, "housing_homelessness": 1},
        linkage=True,
    ),
)


def last_complete_quarters(count: int, today: dt.date | None = None) -> list[str]:
    """The ``count`` most recent quarters that have ended, oldest first."""
    today = today or dt.date.today()
    year, quarter = today.year, (today.month - 1) // 3 + 1
    periods = []
    for _ in range(count):
        quarter -= 1
        if quarter == 0:
            year, quarter = year - 1, 4
        periods.append(f"{year}Q{quarter}")
    return list(reversed(periods))


def _quarter_start(period: str) -> dt.date:
    return dt.date(int(period[:4]), 3 * (int(period[-1]) - 1) + 1, 1)


@dataclass
class DemoData:
    charities: list[CharityProfile]
    quarters: list[str]
    contacts: pl.DataFrame  # one row per contact, true values, with `injected_error`
    files: list[tuple[str, Path]] = field(default_factory=list)  # (charity_id, path) in drop order


def generate_contacts(contacts: int, charities: list[CharityProfile], quarters: list[str], seed: int) -> pl.DataFrame:
    """The true contacts: people, their charities and their visits, vectorised with NumPy."""
    rng = np.random.default_rng(seed)
    geography = load_geography()
    served = sorted({r for c in charities for r in c.regions})
    las_by_region = {
        r: sorted(la.code for la in geography.local_authorities.values() if la.region_code == r) for r in served
    }
    districts_by_la: dict[str, list[str]] = {}
    for district, la in geography.postcode_districts.items():
        if district in geography.current_districts:
            districts_by_la.setdefault(la, []).append(district)
    people = max(10, int(contacts / 2.3))
    region_of = rng.choice(
        served,
        size=people,
        p=np.array([len(las_by_region[r]) for r in served]) / sum(len(v) for v in las_by_region.values()),
    )
    la_of = np.array(
        [
            las_by_region[r][i % len(las_by_region[r])]
            for r, i in zip(region_of, rng.integers(0, 10_000, people), strict=True)
        ]
    )
    ages = np.clip(rng.normal(42, 15, people), 16, 92).astype(int)
    birth = (2026 - ages - 1970).astype("datetime64[Y]").astype("datetime64[D]") + rng.integers(0, 365, people)
    household = rng.choice(
        ["single_adult", "couple_no_children", "single_parent", "couple_with_children", "multi_adult"],
        size=people,
        p=[0.38, 0.12, 0.22, 0.18, 0.10],
    )
    children = np.where(np.isin(household, ["single_parent", "couple_with_children"]), rng.integers(1, 5, people), 0)
    tenure = rng.choice(
        ["social_rented", "private_rented", "owner_occupier", "temporary_accommodation", "living_with_family_friends"],
        size=people,
        p=[0.42, 0.33, 0.10, 0.08, 0.07],
    )
    employment = rng.choice(
        ["unemployed", "employed_part_time", "employed_full_time", "unable_to_work", "retired", "carer"],
        size=people,
        p=[0.30, 0.22, 0.12, 0.20, 0.08, 0.08],
    )
    disability = rng.choice(["yes", "no", "prefer_not_to_say"], size=people, p=[0.38, 0.55, 0.07])
    income = np.round(rng.lognormal(6.9, 0.45, people), 2)
    costs = np.round(income * rng.normal(1.08, 0.22, people), 2)
    debt = np.where(rng.random(people) < 0.55, np.round(rng.lognormal(8.0, 1.0, people), 2), 0.0)

    # Which charities each person uses: one serving their region, sometimes two or three.
    serving = {r: [i for i, c in enumerate(charities) if r in c.regions] for r in served}
    extra = rng.choice([0, 1, 2], size=people, p=[0.82, 0.15, 0.03])
    person_charities = []
    for region, more in zip(region_of, extra, strict=True):
        options = serving[region]
        person_charities.append(rng.choice(options, size=min(len(options), 1 + int(more)), replace=False))
    # Visits: more contacts in later quarters (rising need), fuel in winter.
    visits = rng.geometric(1 / 2.3, size=people)
    scale = contacts / visits.sum()
    visits = np.maximum(1, np.round(visits * scale)).astype(int)
    quarter_weight = np.array([1 + 0.06 * i for i in range(len(quarters))])
    person = np.repeat(np.arange(people), visits)
    used = np.array([len(c) for c in person_charities])
    first = np.cumsum(used) - used
    charity_of = np.concatenate(person_charities)[first[person] + (rng.random(len(person)) * used[person]).astype(int)]
    period_of = rng.choice(len(quarters), size=len(person), p=quarter_weight / quarter_weight.sum())
    starts = np.array([_quarter_start(q) for q in quarters], dtype="datetime64[D]")
    yesterday = np.datetime64(dt.date.today() - dt.timedelta(days=1), "D")
    contact_date = np.minimum(starts[period_of] + rng.integers(0, 90, len(person)), yesterday)
    winter = np.array([q.endswith(("Q4", "Q1")) for q in quarters])[period_of]
    need = np.empty(len(person), dtype=object)
    for index, charity in enumerate(charities):
        for is_winter in (False, True):
            weights = dict(charity.need_weights)
            if is_winter and "fuel_energy" in weights:
                weights["fuel_energy"] *= 1.8
            chosen = (charity_of == index) & (winter == is_winter)
            p = np.array(list(weights.values())) / sum(weights.values())
            need[chosen] = rng.choice(list(weights), size=int(chosen.sum()), p=p)
    outward = rng.integers(1, 10, people)
    districts = [districts_by_la.get(str(la)) or ["SW1A"] for la in la_of]
    postcodes = np.array(
        [
            f"{options[i % len(options)]} {outward[i]}{chr(65 + i % 26)}{chr(65 + (i // 26) % 26)}"
            for i, options in enumerate(districts)
        ]
    )
    prefixes = np.array([c.id[:3].upper() for c in charities])
    support = {"food": "food_parcel", "fuel_energy": "fuel_support"}
    frame = (
        pl.DataFrame(
            {
                "charity_id": np.array([c.id for c in charities])[charity_of],
                "person_ref": np.char.add(np.char.add(prefixes[charity_of], "-"), np.char.zfill(person.astype(str), 6)),
                "contact_date": contact_date,
                "need": need.astype(str),
                "postcode": postcodes[person],
                "local_authority_code": la_of[person],
                "date_of_birth": birth[person],
                "household_type": household[person],
                "children_in_household": children[person].astype(np.int64),
                "tenure": tenure[person],
                "employment_status": employment[person],
                "disability": disability[person],
                "monthly_income_gbp": income[person],
                "monthly_essential_costs_gbp": np.maximum(0.0, costs)[person],
                "total_debt_gbp": debt[person],
                "support_type": [support.get(n, "advice") for n in need],
                "surname": draw_surnames(people, np.random.default_rng([seed, 2]))[person],
            }
        )
        .with_columns(
            pl.col("contact_date").cast(pl.Date),
            pl.col("date_of_birth").cast(pl.Date),
        )
        .with_columns(
            pl.col("contact_date").map_elements(quarter_of, return_dtype=pl.String).alias("quarter"),
            pl.struct("date_of_birth", "contact_date")
            .map_elements(lambda r: age_band_at(r["date_of_birth"], r["contact_date"]), return_dtype=pl.String)
            .alias("age_band"),
            pl.lit(None, pl.String).alias("injected_error"),
        )
    )
    # A few realistic mistakes, about one row in 200.
    mistakes = rng.random(frame.height) < 0.005
    kinds = rng.choice(["bad_date", "misspelt_need", "blank_ref", "bad_postcode"], size=frame.height)
    frame = frame.with_columns(
        pl.Series("injected_error", [k if m else None for k, m in zip(kinds, mistakes, strict=True)], pl.String),
        pl.Series("person", person, pl.Int64),  # the truth of who is who, never written to an extract
    )
    # From its own generator, so the contacts above stay as they were before identity slips existed.
    return with_identity_slips(frame, np.random.default_rng([seed, 1]), districts_by_la)


SURNAME_TYPO_RATE = 0.04  # of a charity's records of a person: the surname mistyped
MOVED_DISTRICT_RATE = 0.03  # the person had moved to another district of the same council when registering
DUPLICATE_REFERENCE_RATE = 0.02  # the charity registered the person twice: later contacts under a new reference
BIRTH_DAY_TYPO_RATE = 0.01  # the birth date's day mistyped by one


def _mistype(surname: str, choice: int, position: int) -> str:
    """One keyboard slip: swap two neighbouring letters, drop one, double one or change a vowel."""
    i = position % (len(surname) - 1)
    if choice == 0:
        return surname[:i] + surname[i + 1] + surname[i] + surname[i + 2 :]
    if choice == 1:
        return surname[:i] + surname[i + 1 :]
    if choice == 2:
        return surname[: i + 1] + surname[i] + surname[i + 1 :]
    vowels = [j for j, c in enumerate(surname) if c.lower() in "aeiou"] or [i]
    j = vowels[position % len(vowels)]
    return surname[:j] + ("e" if surname[j].lower() != "e" else "a") + surname[j + 1 :]


def with_identity_slips(
    frame: pl.DataFrame, rng: np.random.Generator, districts_by_la: dict[str, list[str]]
) -> pl.DataFrame:
    """What makes record linkage hard in real data, per charity's record of a person (all its contacts):
    a mistyped surname, a postcode in another district of the same council (so no area changes), and a
    second reference for the same person. ``person`` keeps the truth."""
    records = frame.select(
        "charity_id", "person_ref", "surname", "postcode", "local_authority_code", "date_of_birth"
    ).unique(["charity_id", "person_ref"], keep="first", maintain_order=True)
    n = records.height
    typo, moved, duplicate, day_typo = (
        rng.random(n) < rate
        for rate in (SURNAME_TYPO_RATE, MOVED_DISTRICT_RATE, DUPLICATE_REFERENCE_RATE, BIRTH_DAY_TYPO_RATE)
    )
    choice, position = rng.integers(0, 4, n), rng.integers(0, 1_000, n)
    surnames = records.get_column("surname").to_list()
    postcodes = records.get_column("postcode").to_list()
    for index in np.flatnonzero(typo):
        surnames[index] = _mistype(surnames[index], int(choice[index]), int(position[index]))
    councils = records.get_column("local_authority_code").to_list()
    for index in np.flatnonzero(moved):
        district, inward = postcodes[index].split(" ")
        others = [d for d in districts_by_la.get(councils[index], []) if d != district]
        if others:
            postcodes[index] = f"{others[int(position[index]) % len(others)]} {inward}"
    slips = (
        records.select("charity_id", "person_ref", "date_of_birth")
        .with_columns(
            pl.Series("slipped_surname", surnames, pl.String),
            pl.Series("slipped_postcode", postcodes, pl.String),
            pl.Series("duplicated", duplicate, pl.Boolean),
            # One day later, or earlier late in a month, so the slip stays in the birth month.
            pl.when(pl.Series(day_typo))
            .then(
                pl.when(pl.col("date_of_birth").dt.day() < 28)
                .then(pl.col("date_of_birth") + pl.duration(days=1))
                .otherwise(pl.col("date_of_birth") - pl.duration(days=1))
            )
            .otherwise(pl.col("date_of_birth"))
            .alias("slipped_birth"),
        )
        .drop("date_of_birth")
    )
    return (
        frame.join(slips, on=["charity_id", "person_ref"], how="left", maintain_order="left")
        .with_columns(
            pl.col("slipped_surname").alias("surname"),
            pl.col("slipped_postcode").alias("postcode"),
            pl.col("slipped_birth").alias("date_of_birth"),
            # The second reference takes the person's contacts from their second one on.
            pl.when(pl.col("duplicated") & (pl.int_range(pl.len()).over("charity_id", "person_ref") % 2 == 1))
            .then(pl.col("person_ref") + "-2")
            .otherwise(pl.col("person_ref"))
            .alias("person_ref"),
        )
        .drop("slipped_surname", "slipped_postcode", "slipped_birth", "duplicated")
    )


def _render(profile: CharityProfile, frame: pl.DataFrame) -> tuple[list[str], list[list[object]]]:
    """Rows as the charity's system would export them."""
    header = [profile.columns[f] for f in profile.columns] + list(profile.extra_columns)
    labels = {
        name: {c.code: c.label for c in load_codelist(name).codes}
        for name in ("need", "household_type", "tenure", "employment_status", "disability", "support_type", "age_band")
    }

    def money(value: float) -> str:
        return f"£{value:,.2f}" if profile.money_style == "pounds" else f"{value:.2f}"

    def date(value: dt.date) -> object:
        return value if profile.date_format is None else value.strftime(profile.date_format)

    def code(name: str, value: str) -> str:
        if name == "need" and value in profile.need_wording:
            return profile.need_wording[value]
        return labels[name][value] if profile.uses_labels else value

    formatters: dict[str, Callable[[dict[str, object]], object]] = {
        "person_ref": lambda r: "" if r["injected_error"] == "blank_ref" else r["person_ref"],
        "contact_date": lambda r: "31/02/2026" if r["injected_error"] == "bad_date" else date(r["contact_date"]),  # type: ignore[arg-type]
        "need": lambda r: "Fod parcel" if r["injected_error"] == "misspelt_need" else code("need", r["need"]),  # type: ignore[arg-type]
        "postcode": lambda r: "XX9 9ZZ" if r["injected_error"] == "bad_postcode" else r["postcode"],
        "local_authority_code": lambda r: (
            "X99999999" if r["injected_error"] == "bad_postcode" else r["local_authority_code"]
        ),
        "date_of_birth": lambda r: date(r["date_of_birth"]),  # type: ignore[arg-type]
        "age_band": lambda r: labels["age_band"][r["age_band"]],  # type: ignore[index]
        "household_type": lambda r: code("household_type", r["household_type"]),  # type: ignore[arg-type]
        "children_in_household": lambda r: r["children_in_household"],
        "tenure": lambda r: code("tenure", r["tenure"]),  # type: ignore[arg-type]
        "employment_status": lambda r: code("employment_status", r["employment_status"]),  # type: ignore[arg-type]
        "disability": lambda r: code("disability", r["disability"]),  # type: ignore[arg-type]
        "monthly_income_gbp": lambda r: money(r["monthly_income_gbp"]),  # type: ignore[arg-type]
        "monthly_essential_costs_gbp": lambda r: money(r["monthly_essential_costs_gbp"]),  # type: ignore[arg-type]
        "total_debt_gbp": lambda r: money(r["total_debt_gbp"]),  # type: ignore[arg-type]
        "support_type": lambda r: code("support_type", r["support_type"]),  # type: ignore[arg-type]
        "surname": lambda r: r["surname"],
    }
    extras: dict[str, Callable[[dict[str, object]], object]] = {
        "Client Name": lambda r: f"{FIRST_NAMES[int(r['person']) % len(FIRST_NAMES)]} {r['surname']}",
        "Notes": lambda r: "Referred by GP; call back Tuesday",
        "Phone": lambda r: "07700 900" + r["person_ref"][-3:],
    }
    rows = [
        [formatters[f](r) for f in profile.columns] + [extras[c](r) for c in profile.extra_columns]
        for r in frame.iter_rows(named=True)
    ]
    return header, rows


def write_sheet(workbook: xlsxwriter.Workbook, name: str, rows: list[list[object]]) -> None:
    """A worksheet of ``rows``, dates written as real Excel dates (serial numbers shown as dd/mm/yyyy)."""
    sheet = workbook.add_worksheet(name)
    date_format = workbook.add_format({"num_format": "dd/mm/yyyy"})
    for index, row in enumerate(rows):
        for column, value in enumerate(row):
            if isinstance(value, dt.date):
                sheet.write_datetime(index, column, dt.datetime.combine(value, dt.time()), date_format)
            else:
                sheet.write(index, column, value)


def write_extract(profile: CharityProfile, frame: pl.DataFrame, path: Path) -> Path:
    header, rows = _render(profile, frame)
    path.parent.mkdir(parents=True, exist_ok=True)
    if profile.file_format == "xlsx":
        path = path.with_suffix(".xlsx")
        workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
        about = workbook.add_worksheet("About")
        about.write(0, 0, f"{profile.name}: contacts export")
        about.write(1, 0, "Exported from the case management system.")
        write_sheet(workbook, "Contacts", [header, *rows])
        workbook.close()
        return path
    path = path.with_suffix(".csv")
    with path.open("w", newline="", encoding=profile.encoding) as handle:
        writer = csv.writer(handle, delimiter=profile.delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def generate(root: Path, *, contacts: int, charities: int, quarters: int, seed: int = 2026) -> DemoData:
    """Write the demo's extracts, mapping files and true aggregates under ``root``."""
    if not 1 <= charities <= len(PROFILES):
        raise ValueError(f"the demo has between 1 and {len(PROFILES)} charities")
    profiles = list(PROFILES[:charities])
    periods = last_complete_quarters(quarters)
    truth = generate_contacts(contacts, profiles, periods, seed)
    data = DemoData(charities=profiles, quarters=periods, contacts=truth)
    extracts, mappings = root / "extracts", root / "mappings"
    for directory in (extracts, mappings):
        directory.mkdir(parents=True, exist_ok=True)
    for profile in profiles:
        profile.mapping().dump(mappings / f"{profile.id}.yaml")
        for period in periods:
            rows = truth.filter((pl.col("charity_id") == profile.id) & (pl.col("quarter") == period))
            if rows.is_empty():
                continue
            path = write_extract(profile, rows, extracts / profile.id / f"{profile.id}-contacts-{period}")
            data.files.append((profile.id, path))
    _add_realistic_accidents(data, extracts)
    _write_truth(data, root / "truth")
    return data


def _add_realistic_accidents(data: DemoData, extracts: Path) -> None:
    first = data.charities[0]
    # The first charity's first file went out without its need column; it resent a corrected one.
    original = next(path for charity, path in data.files if charity == first.id)
    broken_profile = CharityProfile(
        **{**first.__dict__, "columns": {k: v for k, v in first.columns.items() if k != "need"}}
    )
    rows = data.contacts.filter((pl.col("charity_id") == first.id) & (pl.col("quarter") == data.quarters[0]))
    broken = write_extract(broken_profile, rows, original.with_name(original.stem + "-first-attempt"))
    data.files.insert(0, (first.id, broken))
    # The last charity sent one file twice, under another name.
    last = data.charities[-1]
    repeated = next(path for charity, path in reversed(data.files) if charity == last.id)
    copy = repeated.with_name("Copy of " + repeated.name)
    copy.write_bytes(repeated.read_bytes())
    data.files.append((last.id, copy))
    # And dropped its annual report in the wrong place.
    report = extracts / last.id / "annual-report.pdf"
    report.write_bytes(b"%PDF-1.7\n% Annual report: not a contacts extract\n")
    data.files.append((last.id, report))


def _write_truth(data: DemoData, truth: Path) -> None:
    """True counts for the pipeline's estimand (distinct charity-person pairs per cell) and people."""
    truth.mkdir(parents=True, exist_ok=True)
    geography = load_geography().local_authorities
    valid = data.contacts.filter(pl.col("injected_error").is_null()).with_columns(
        pl.col("local_authority_code")
        .replace_strict({c: la.region_code for c, la in geography.items()})
        .alias("region_code"),
    )
    (
        valid.group_by("quarter", "region_code", "need")
        .agg(
            pl.struct("charity_id", "person_ref").n_unique().alias("people_charity_units"),
            pl.col("person").n_unique().alias("people_distinct"),
            pl.len().alias("contacts"),
        )
        .sort("quarter", "region_code", "need")
        .write_csv(truth / "people_by_need_region.csv")
    )
    # Who is who: each charity's references of one person (with its slips) share ``person``.
    (
        data.contacts.select("charity_id", "person_ref", "person")
        .unique()
        .sort("charity_id", "person_ref")
        .write_csv(truth / "identities.csv")
    )
    per_person = valid.group_by("person").agg(pl.col("charity_id").n_unique().alias("charities"))
    summary = {
        "contacts_generated": data.contacts.height,
        "contacts_with_injected_errors": data.contacts.filter(pl.col("injected_error").is_not_null()).height,
        "people": per_person.height,
        "people_at_two_or_more_charities": per_person.filter(pl.col("charities") >= 2).height,
        "charities": [c.id for c in data.charities],
        "quarters": data.quarters,
        "files": [str(path) for _, path in data.files],
    }
    (truth / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")

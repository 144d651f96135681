"""The demo at scale: the same fictional charities and the same realism as ``collab_demo.generator``,
generated in vectorised batches of people and written as it goes, so memory holds one batch whatever
the total (10 million contacts in well under 1 GB).

What differs from the small demo, and why:
- people are drawn batch by batch from the same distributions (region, local authority, age,
  household, tenure, work, disability, money, the charities they use, their visits, rising need,
  fuel in winter), so the same seed gives other rows than ``generate`` does;
- every charity exports CSV in its own encoding, delimiter, date format and wording: a spreadsheet
  holds at most 1,048,576 rows, and writing one is row-by-row Python;
- the same mistakes about one row in 200, the same surnames (a few common, a long tail) and the same slips
  in a charity's record of a person (``with_identity_slips``), the first file sent without its need
  column, one file sent twice, and an annual report dropped by accident; the truth is summed batch by
  batch (people are never split across batches, so distinct counts add up).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
import polars as pl

from collab_demo.generator import (
    FIRST_NAMES,
    PROFILES,
    CharityProfile,
    draw_surnames,
    last_complete_quarters,
    with_identity_slips,
)
from standards.codelists import load_codelist
from standards.extract import AGE_BANDS
from standards.geography import load_geography

HOUSEHOLDS = (
    ("single_adult", "couple_no_children", "single_parent", "couple_with_children", "multi_adult"),
    (0.38, 0.12, 0.22, 0.18, 0.10),
)
TENURES = (
    ("social_rented", "private_rented", "owner_occupier", "temporary_accommodation", "living_with_family_friends"),
    (0.42, 0.33, 0.10, 0.08, 0.07),
)
EMPLOYMENT = (
    ("unemployed", "employed_part_time", "employed_full_time", "unable_to_work", "retired", "carer"),
    (0.30, 0.22, 0.12, 0.20, 0.08, 0.08),
)
DISABILITY = (("yes", "no", "prefer_not_to_say"), (0.38, 0.55, 0.07))
MISTAKES = ("bad_date", "misspelt_need", "blank_ref", "bad_postcode")
CONTACTS_PER_PERSON = 2.3


@dataclass
class StreamedDemo:
    charities: list[CharityProfile]
    quarters: list[str]
    contacts: int = 0
    files: list[tuple[str, Path]] = field(default_factory=list)  # (charity_id, path) in drop order


class _Geography:
    """Regions served, their local authorities and each authority's live postcode districts, as arrays."""

    def __init__(self, charities: list[CharityProfile]) -> None:
        geography = load_geography()
        self.regions = sorted({r for c in charities for r in c.regions})
        self.las = [
            sorted(la.code for la in geography.local_authorities.values() if la.region_code == r) for r in self.regions
        ]
        sizes = np.array([len(las) for las in self.las], dtype=float)
        self.region_weights = sizes / sizes.sum()
        districts: dict[str, list[str]] = {}
        for district, la in geography.postcode_districts.items():
            if district in geography.current_districts:
                districts.setdefault(la, []).append(district)
        self.districts_by_la = districts
        self.region_of_la = {code: la.region_code for code, la in geography.local_authorities.items()}
        # Padded lookup tables, so a batch picks authorities and districts by array indexing.
        self.la_codes = [code for las in self.las for code in las]
        self.la_counts = np.array([len(las) for las in self.las])
        self.la_table = np.zeros((len(self.las), self.la_counts.max()), dtype=np.int64)
        position = 0
        for region, las in enumerate(self.las):
            self.la_table[region, : len(las)] = np.arange(position, position + len(las))
            position += len(las)
        options = [sorted(districts.get(code, [])) or ["SW1A"] for code in self.la_codes]
        self.district_counts = np.array([len(o) for o in options])
        self.district_table = np.full((len(options), self.district_counts.max()), "", dtype=object)
        for index, names in enumerate(options):
            self.district_table[index, : len(names)] = names


@dataclass
class _Draws:
    """The demo's random generators, one per purpose as the small demo has them, so one seed gives one demo."""

    people_and_visits: np.random.Generator
    surnames: np.random.Generator
    identity_slips: np.random.Generator

    @classmethod
    def of_seed(cls, seed: int) -> _Draws:
        return cls(*(np.random.default_rng(s) for s in (seed, [seed, 2], [seed, 1])))


def _batch(
    draws: _Draws,
    count: int,
    first_person: int,
    geo: _Geography,
    charities: list[CharityProfile],
    quarters: list[str],
) -> pl.DataFrame:
    """The contacts of ``count`` people, numbered from ``first_person``, with the slips each charity's records of
    them have (a mistyped surname, a moved district, a second reference: what record linkage must survive)."""
    people, serving, uses = _people(draws, count, first_person, geo, charities)
    contacts = _contacts(draws.people_and_visits, people, serving, uses, charities, quarters)
    return with_identity_slips(_with_derivations(contacts, charities), draws.identity_slips, geo.districts_by_la)


def _people(
    draws: _Draws, count: int, first_person: int, geo: _Geography, charities: list[CharityProfile]
) -> tuple[pl.DataFrame, list[np.ndarray], np.ndarray]:
    """``count`` people: where they live, who they are, and which charities serve them."""
    rng = draws.people_and_visits
    region = rng.choice(len(geo.regions), size=count, p=geo.region_weights)
    la = geo.la_table[region, rng.integers(0, 10_000, count) % geo.la_counts[region]]
    district = geo.district_table[la, rng.integers(0, 10_000, count) % geo.district_counts[la]]
    ages = np.clip(rng.normal(42, 15, count), 16, 92).astype(int)
    birth = (2026 - ages - 1970).astype("datetime64[Y]").astype("datetime64[D]") + rng.integers(0, 365, count)
    household = rng.choice(HOUSEHOLDS[0], size=count, p=HOUSEHOLDS[1])
    with_children = np.isin(household, ["single_parent", "couple_with_children"])
    income = np.round(rng.lognormal(6.9, 0.45, count), 2)
    people = pl.DataFrame(
        {
            "person": np.arange(first_person, first_person + count, dtype=np.int64),
            "region": region,
            "local_authority_code": np.array(geo.la_codes)[la],
            "postcode": np.char.add(
                np.char.add(district.astype(str), " "),
                np.char.add(
                    rng.integers(1, 10, count).astype(str),
                    np.array([chr(65 + i % 26) + chr(65 + (i // 26) % 26) for i in range(26 * 26)])[
                        rng.integers(0, 26 * 26, count)
                    ],
                ),
            ),
            "date_of_birth": birth,
            "surname": draw_surnames(count, draws.surnames),
            "household_type": household,
            "children_in_household": np.where(with_children, rng.integers(1, 5, count), 0).astype(np.int64),
            "tenure": rng.choice(TENURES[0], size=count, p=TENURES[1]),
            "employment_status": rng.choice(EMPLOYMENT[0], size=count, p=EMPLOYMENT[1]),
            "disability": rng.choice(DISABILITY[0], size=count, p=DISABILITY[1]),
            "monthly_income_gbp": income,
            "monthly_essential_costs_gbp": np.maximum(0.0, np.round(income * rng.normal(1.08, 0.22, count), 2)),
            "total_debt_gbp": np.where(rng.random(count) < 0.55, np.round(rng.lognormal(8.0, 1.0, count), 2), 0.0),
        }
    )
    # Which charities each person uses: one serving their region, sometimes two or three.
    serving = [np.array([i for i, c in enumerate(charities) if r in c.regions]) for r in geo.regions]
    uses = np.minimum(rng.choice([1, 2, 3], size=count, p=[0.82, 0.15, 0.03]), [len(serving[r]) for r in region])
    return people, serving, uses


def _contacts(
    rng: np.random.Generator,
    people: pl.DataFrame,
    serving: list[np.ndarray],
    uses: np.ndarray,
    charities: list[CharityProfile],
    quarters: list[str],
) -> pl.DataFrame:
    """Each person's visits: to one of their charities, more in later quarters, fuel needs in winter."""
    region = people["region"].to_numpy()
    visits = rng.geometric(1 / CONTACTS_PER_PERSON, size=people.height)
    row_person = np.repeat(np.arange(people.height), visits)
    rows = len(row_person)
    # The k-th charity among the person's region's, rotated by a per-person offset, k below how many they use.
    sizes = np.array([len(s) for s in serving])
    offset = (rng.random(people.height) * sizes[region]).astype(int)
    nth = (rng.random(rows) * uses[row_person]).astype(int)
    table = np.full((len(serving), sizes.max()), -1)
    for r, s in enumerate(serving):
        table[r, : len(s)] = s
    person_region = region[row_person]
    charity = table[person_region, (offset[row_person] + nth) % sizes[person_region]]
    weights = np.array([1 + 0.06 * i for i in range(len(quarters))])
    period = rng.choice(len(quarters), size=rows, p=weights / weights.sum())
    starts = np.array([f"{q[:4]}-{3 * (int(q[-1]) - 1) + 1:02d}-01" for q in quarters], dtype="datetime64[D]")
    contact_date = starts[period] + rng.integers(0, 90, rows)  # every quarter has at least 90 days
    winter = np.array([q.endswith(("Q4", "Q1")) for q in quarters])[period]
    need = np.empty(rows, dtype=object)
    draws = rng.random(rows)
    for index, profile in enumerate(charities):
        for is_winter in (False, True):
            weights_by_need = dict(profile.need_weights)
            if is_winter and "fuel_energy" in weights_by_need:
                weights_by_need["fuel_energy"] *= 1.8
            chosen = (charity == index) & (winter == is_winter)
            cumulative = np.cumsum(list(weights_by_need.values()))
            picks = np.searchsorted(cumulative / cumulative[-1], draws[chosen], side="right")
            need[chosen] = np.array(list(weights_by_need))[np.minimum(picks, len(cumulative) - 1)]
    mistakes = np.where(rng.random(rows) < 0.005, rng.integers(0, len(MISTAKES), rows), -1)
    return (
        pl.DataFrame(
            {
                "row_person": row_person,
                "charity": charity.astype(np.int64),
                "contact_date": contact_date,
                "need": need.astype(str),
                "injected_error": pl.Series(np.array([*MISTAKES, ""])[mistakes], dtype=pl.String),
            }
        )
        .with_columns(pl.col("contact_date").cast(pl.Date), pl.col("injected_error").replace("", None))
        .join(people.with_row_index("row_person").with_columns(pl.col("row_person").cast(pl.Int64)), on="row_person")
        .drop("row_person")
    )


def _with_derivations(contacts: pl.DataFrame, charities: list[CharityProfile]) -> pl.DataFrame:
    """Quarter, age band at contact, person ref and support, as the small demo derives them."""
    born, on = pl.col("date_of_birth"), pl.col("contact_date")
    age = (
        on.dt.year()
        - born.dt.year()
        - ((on.dt.month() * 100 + on.dt.day()) < (born.dt.month() * 100 + born.dt.day())).cast(pl.Int32)
    )
    band = pl.lit(AGE_BANDS[0][0])
    for name, lower in AGE_BANDS[1:]:
        band = pl.when(age >= lower).then(pl.lit(name)).otherwise(band)
    prefixes = [c.id[:3].upper() for c in charities]
    return contacts.with_columns(
        pl.format("{}Q{}", on.dt.year(), on.dt.quarter()).alias("quarter"),
        band.alias("age_band"),
        pl.format(
            "{}-{}",
            pl.col("charity").replace_strict(list(range(len(charities))), prefixes, return_dtype=pl.String),
            pl.col("person").cast(pl.String).str.zfill(6),
        ).alias("person_ref"),
        pl.col("charity").replace_strict(list(range(len(charities))), [c.id for c in charities]).alias("charity_id"),
        pl.col("need").replace({"food": "food_parcel", "fuel_energy": "fuel_support"}).alias("support_type"),
    ).with_columns(
        pl.when(pl.col("support_type").is_in(["food_parcel", "fuel_support"]))
        .then(pl.col("support_type"))
        .otherwise(pl.lit("advice"))
        .alias("support_type")
    )


def _money(column: str, pounds: bool) -> pl.Expr:
    pence = (pl.col(column) * 100).round(0).cast(pl.Int64)
    whole, fraction = pence // 100, (pence % 100).cast(pl.String).str.zfill(2)
    if not pounds:
        return pl.format("{}.{}", whole, fraction)
    thousands = (
        pl.when(whole >= 1_000_000)
        .then(
            pl.format(
                "{},{},{}",
                whole // 1_000_000,
                (whole // 1000 % 1000).cast(pl.String).str.zfill(3),
                (whole % 1000).cast(pl.String).str.zfill(3),
            )
        )
        .when(whole >= 1000)
        .then(pl.format("{},{}", whole // 1000, (whole % 1000).cast(pl.String).str.zfill(3)))
        .otherwise(whole.cast(pl.String))
    )
    return pl.format("£{}.{}", thousands, fraction)


def _render(profile: CharityProfile, contacts: pl.DataFrame) -> pl.DataFrame:
    """The charity's own export of ``contacts``, column by column (the small demo does it row by row)."""
    error = pl.col("injected_error")

    def code(name: str) -> pl.Expr:
        mapping = {c.code: c.label for c in load_codelist(name).codes} if profile.uses_labels else {}
        if name == "need":
            mapping = {**mapping, **profile.need_wording}
        return pl.col(name).replace(mapping) if mapping else pl.col(name)

    def date(name: str) -> pl.Expr:
        return pl.col(name).dt.strftime(profile.date_format or "%d/%m/%Y")

    labels = {c.code: c.label for c in load_codelist("age_band").codes}
    formats: dict[str, pl.Expr] = {
        "person_ref": pl.when(error == "blank_ref").then(pl.lit("")).otherwise(pl.col("person_ref")),
        "contact_date": pl.when(error == "bad_date").then(pl.lit("31/02/2026")).otherwise(date("contact_date")),
        "need": pl.when(error == "misspelt_need").then(pl.lit("Fod parcel")).otherwise(code("need")),
        "postcode": pl.when(error == "bad_postcode").then(pl.lit("XX9 9ZZ")).otherwise(pl.col("postcode")),
        "local_authority_code": pl.when(error == "bad_postcode")
        .then(pl.lit("X99999999"))
        .otherwise(pl.col("local_authority_code")),
        "date_of_birth": date("date_of_birth"),
        "age_band": pl.col("age_band").replace(labels),
        "children_in_household": pl.col("children_in_household"),
        "surname": pl.col("surname"),
        **{
            name: code(name) for name in ("household_type", "tenure", "employment_status", "disability", "support_type")
        },
        **{
            name: _money(name, profile.money_style == "pounds")
            for name in ("monthly_income_gbp", "monthly_essential_costs_gbp", "total_debt_gbp")
        },
    }
    extras = {
        "Client Name": pl.format(
            "{} {}",
            (pl.col("person") % len(FIRST_NAMES)).replace_strict(
                list(range(len(FIRST_NAMES))), list(FIRST_NAMES), return_dtype=pl.String
            ),
            pl.col("surname"),
        ),
        "Notes": pl.lit("Referred by GP; call back Tuesday"),
        "Phone": pl.format("07700 900{}", pl.col("person_ref").str.slice(-3)),
    }
    return contacts.select(
        *(formats[name].alias(header) for name, header in profile.columns.items()),
        *(extras[name].alias(name) for name in profile.extra_columns),
    )


class _Extract:
    """One file a charity sends, appended to batch by batch in its own encoding and delimiter."""

    def __init__(self, profile: CharityProfile, path: Path) -> None:
        self.profile, self.path = profile, path
        self.handle: BinaryIO | None = None

    def append(self, rows: pl.DataFrame) -> None:
        first = self.handle is None
        if self.handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.handle = self.path.open("wb")
        text = rows.write_csv(separator=self.profile.delimiter, include_header=first)
        encoding = "utf-8" if self.profile.encoding == "utf-8-sig" and not first else self.profile.encoding
        self.handle.write(text.encode(encoding))

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def streamed_profiles(charities: int) -> list[CharityProfile]:
    """The first ``charities`` demo charities, each exporting CSV (see the module's note)."""
    if not 1 <= charities <= len(PROFILES):
        raise ValueError(f"the demo has between 1 and {len(PROFILES)} charities")
    return [replace(p, file_format="csv") for p in PROFILES[:charities]]


def generate_streaming(
    root: Path,
    *,
    contacts: int,
    charities: int,
    quarters: int,
    seed: int = 2026,
    batch_people: int = 100_000,
) -> StreamedDemo:
    """Write the demo's extracts, mapping files and true aggregates under ``root``, one batch of people at a time."""
    profiles = streamed_profiles(charities)
    periods = last_complete_quarters(quarters)
    demo = StreamedDemo(charities=profiles, quarters=periods)
    extracts, mappings, truth_dir = root / "extracts", root / "mappings", root / "truth"
    for directory in (extracts, mappings, truth_dir):
        directory.mkdir(parents=True, exist_ok=True)
    for profile in profiles:
        profile.mapping().dump(mappings / f"{profile.id}.yaml")
    files = {(p.id, q): _Extract(p, extracts / p.id / f"{p.id}-contacts-{q}.csv") for p in profiles for q in periods}
    first = profiles[0]
    without_need = replace(first, columns={k: v for k, v in first.columns.items() if k != "need"})
    first_attempt = _Extract(without_need, extracts / first.id / f"{first.id}-contacts-{periods[0]}-first-attempt.csv")
    geo = _Geography(profiles)
    draws = _Draws.of_seed(seed)
    people_total = max(10, round(contacts / CONTACTS_PER_PERSON))
    truth: list[pl.DataFrame] = []
    people_at_two_or_more = with_errors = 0
    try:
        for start in range(0, people_total, batch_people):
            count = min(batch_people, people_total - start)
            batch = _batch(draws, count, start, geo, profiles, periods)
            demo.contacts += batch.height
            with_errors += batch["injected_error"].is_not_null().sum()
            for (charity_id, period), rows in batch.partition_by(["charity_id", "quarter"], as_dict=True).items():
                files[(str(charity_id), str(period))].append(_render(files[(charity_id, period)].profile, rows))
                if charity_id == first.id and period == periods[0]:
                    first_attempt.append(_render(without_need, rows))
            truth.append(_truth_counts(batch, geo))
            people_at_two_or_more += (
                batch.filter(pl.col("injected_error").is_null())
                .group_by("person")
                .agg(pl.col("charity_id").n_unique())
                .filter(pl.col("charity_id") >= 2)
                .height
            )
    finally:
        for extract in [*files.values(), first_attempt]:
            extract.close()
    demo.files = [(first.id, first_attempt.path)] + [
        (p.id, files[(p.id, q)].path) for p in profiles for q in periods if files[(p.id, q)].handle is not None
    ]
    last = profiles[-1]
    repeated = next(path for charity_id, path in reversed(demo.files) if charity_id == last.id)
    copy = repeated.with_name("Copy of " + repeated.name)
    shutil.copyfile(repeated, copy)
    report = extracts / last.id / "annual-report.pdf"
    report.write_bytes(b"%PDF-1.7\n% Annual report: not a contacts extract\n")
    demo.files += [(last.id, copy), (last.id, report)]
    _write_truth(demo, truth, {"with_errors": with_errors, "at_two_or_more": people_at_two_or_more}, truth_dir)
    return demo


def _truth_counts(batch: pl.DataFrame, geo: _Geography) -> pl.DataFrame:
    """This batch's true counts per quarter, region and need: distinct counts add up, people never span batches."""
    return (
        batch.filter(pl.col("injected_error").is_null())
        .with_columns(pl.col("local_authority_code").replace_strict(geo.region_of_la).alias("region_code"))
        .group_by("quarter", "region_code", "need")
        .agg(
            pl.struct("charity_id", "person").n_unique().alias("people_charity_units"),
            pl.col("person").n_unique().alias("people_distinct"),
            pl.len().alias("contacts"),
        )
    )


def _write_truth(demo: StreamedDemo, truth: list[pl.DataFrame], totals: dict[str, int], directory: Path) -> None:
    counts = pl.concat(truth).group_by("quarter", "region_code", "need").agg(pl.all().sum())
    counts.sort("quarter", "region_code", "need").write_csv(directory / "people_by_need_region.csv")
    summary = {
        "contacts_generated": demo.contacts,
        "contacts_with_injected_errors": int(totals["with_errors"]),
        "people_at_two_or_more_charities": int(totals["at_two_or_more"]),
        "charities": [c.id for c in demo.charities],
        "quarters": demo.quarters,
        "files": [str(path) for _, path in demo.files],
    }
    (directory / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")


def write_charity_extract(
    path: Path,
    profile: CharityProfile,
    *,
    contacts: int,
    quarters: int = 1,
    seed: int = 2026,
    batch_people: int = 100_000,
) -> int:
    """One charity's extract of ``contacts`` rows over its last ``quarters``, written batch by batch as the
    demo writes it (the same people, visits and mistakes); returns the rows written."""
    geo = _Geography([profile])
    draws = _Draws.of_seed(seed)
    periods = last_complete_quarters(quarters)
    extract = _Extract(profile, path)
    written = people = 0
    try:
        while written < contacts:
            batch = _batch(draws, batch_people, people, geo, [profile], periods).head(contacts - written)
            extract.append(_render(profile, batch))
            written, people = written + batch.height, people + batch_people
    finally:
        extract.close()
    return written

"""Keyed linkage components and Splink clustering (``privacy.linkage``)."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import os
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from privacy import clustering, linkage
from privacy.clustering import UNIT_ID, link_clusters
from privacy.linkage import (
    COMPONENTS,
    DEFAULT_THRESHOLD,
    VARIANTS,
    component_values,
    identity_counts,
    keyed_components,
    reference_component_parts,
    surname_variants,
)
from privacy.pseudonymise import keyed_int64s
from standards.extract import linkage_basis

KEY = bytes(range(32))


def _code(*parts: str) -> int:
    return int(keyed_int64s(KEY, parts[:-1], [parts[-1]])[0])


def test_keyed_components_hold_no_raw_value_and_agree_for_the_same_person_under_one_key() -> None:
    bases = pl.Series(["OBRIEN|1980-02-29|BS35", None, "OBRIEN|1980-02-29|BS35", "NOWAK|1980-02-28|BS35"])
    keyed = keyed_components(KEY, bases)
    assert keyed.columns == [*COMPONENTS, VARIANTS] and keyed.height == 4
    assert keyed.row(1) == (None,) * (len(COMPONENTS) + 1)
    assert keyed.row(0) == keyed.row(2)  # the same person at two charities
    # 64-bit codes: no column can hold a name, a date or a postcode.
    assert keyed.schema == {**dict.fromkeys(COMPONENTS, pl.Int64), VARIANTS: pl.List(pl.Int64)}
    # Components are keyed apart: equal text in two components never gives equal codes.
    assert keyed.row(0)[COMPONENTS.index("district")] == keyed.row(3)[COMPONENTS.index("district")]
    assert keyed.row(0)[COMPONENTS.index("birth_month")] != keyed.row(0)[COMPONENTS.index("birth_date")]
    # Another key, other codes: nothing can be recomputed from a name without the key.
    other = keyed_components(os.urandom(32), bases)
    assert not set(keyed.row(0)[: len(COMPONENTS)]) & set(other.row(0)[: len(COMPONENTS)])


def test_each_component_is_the_keyed_hash_of_its_value_although_each_distinct_value_is_hashed_once() -> None:
    bases = pl.Series(
        ["OBRIEN|1980-02-29|BS35", "OBRIEN|1981-02-28|BS6", None, "OBRIAN|1980-02-29|B6", "OBRIEN|1980-02-29|BS35"]
    )
    for basis, keyed in zip(bases, keyed_components(KEY, bases).iter_rows(named=True), strict=True):
        if basis is None:
            assert set(keyed.values()) == {None}
            continue
        surname = basis.split("|")[0]
        assert keyed == {
            **{name: _code("link", name, value) for name, value in component_values(basis).items()},
            VARIANTS: [_code("link", "surname_variant", v) for v in surname_variants(surname)],
        }


def test_keying_a_files_linkage_records_imports_no_pandas() -> None:
    """pyarrow imports pandas the first time ``pa.array`` is given a NumPy array: 0.42 s in every process that
    keys linkage records, which need nothing of pandas."""
    script = (
        "import sys, polars as pl; from privacy.linkage import keyed_components; "
        "keyed_components(bytes(32), pl.Series(['OBRIEN|1980-02-29|BS35'])); print('pandas' in sys.modules)"
    )
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "False"


@pytest.mark.parametrize("variants_per_part", [12, 1_000_000])
def test_codes_kept_from_part_to_part_and_each_part_are_bounded_and_every_record_keeps_its_own_codes(
    monkeypatch: pytest.MonkeyPatch, variants_per_part: int
) -> None:
    # Surnames recurring across parts (kept codes reused), and new ones in every part (the kept codes pass the bound).
    surnames = ["OBRIEN", "NOWAK", "SMITH", *(f"NEW{letter}" for letter in "ABCDEFGHIJKLMNOP")]
    bases = [
        f"{surnames[i % 3] if i % 2 else surnames[3 + i // 2]}|19{50 + i}-01-0{1 + i % 9}|BS{i % 4}" for i in range(30)
    ]
    counts = identity_counts(pl.DataFrame({"person_ref": [f"R{i:02d}" for i in range(30)], "linkage_basis": bases}))
    monkeypatch.setattr(linkage, "_CODES_KEPT", 5)
    monkeypatch.setattr(linkage, "_VARIANTS_PER_PART", variants_per_part)
    over_the_bound: list[tuple[str, int, int]] = []

    class Watched(linkage._Codebook):
        def components(self, parts: pl.DataFrame) -> pl.DataFrame:
            made = super().components(parts)
            for part, kept in self.kept.items():
                if linkage._codes_in(kept) > 5:
                    over_the_bound.append((part, kept.height, parts.get_column(part).n_unique()))
            return made

    monkeypatch.setattr(linkage, "_Codebook", Watched)
    parts = list(reference_component_parts(KEY, counts, 4))
    # At most four records a part, and at most 12 variants (a surname here has at most 7) when so bounded.
    variants = [int(part.get_column(VARIANTS).list.len().sum()) for part in parts]
    assert all(part.height <= 4 for part in parts) and (variants_per_part > 12 or max(variants) <= 12)
    # The codes kept pass the bound only where one part's values alone do: then only that part's values are kept.
    assert over_the_bound and all(kept <= values for _, kept, values in over_the_bound)
    records = pl.concat(parts)
    assert records.get_column("person_ref").to_list() == [f"R{i:02d}" for i in range(30)]
    for basis, record in zip(bases, records.drop("person_ref").iter_rows(named=True), strict=True):
        assert record == {
            **{name: _code("link", name, value) for name, value in component_values(basis).items()},
            VARIANTS: [_code("link", "surname_variant", v) for v in surname_variants(basis.split("|")[0])],
        }


def test_surname_variants_meet_across_one_slip() -> None:
    for right, slip in [("KELBY", "EKLBY"), ("WHITLEY", "WWHITLEY"), ("CARRFIELD", "CARRIELD"), ("SMITH", "SMYTH")]:
        assert set(surname_variants(right)) & set(surname_variants(slip)), (right, slip)
    assert not set(surname_variants("SMITH")) & set(surname_variants("NOWAK"))


def test_typo_d_records_of_one_person_end_in_one_cluster_and_distinct_people_stay_apart() -> None:
    rng = np.random.default_rng(5)
    letters = np.array(list("ABCDEFGHIJKLMNOPRSTW"))
    people = 400
    surnames = ["".join(rng.choice(letters, 6)) for _ in range(people)]
    births = [dt.date(1940, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 25_000, people)]
    districts = [f"BS{d}" for d in rng.integers(1, 40, people)]
    rows = [(f"a/{i}", i, linkage_basis(surnames[i], births[i], districts[i])) for i in range(people)]
    # Sixty of them are also at a second charity, twenty of those with a slip each.
    for i in range(60):
        surname, birth, district = surnames[i], births[i], districts[i]
        if i < 10:
            surname = surname[1] + surname[0] + surname[2:]  # two letters swapped
        elif i < 15:
            district = "BS99"  # moved
        elif i < 20:
            birth = birth + dt.timedelta(days=1 if birth.day < 28 else -1)
        rows.append((f"b/{i}", i, linkage_basis(surname, birth, district)))
    records = pl.DataFrame(rows, schema=[UNIT_ID, "person", "basis"], orient="row")
    keyed = pl.concat([records.select(UNIT_ID), keyed_components(KEY, records.get_column("basis"))], how="horizontal")
    found = link_clusters(keyed)
    clusters = records.join(found, on=UNIT_ID)
    assert clusters.height == records.height
    per_person = clusters.group_by("person").agg(pl.col("cluster_id").n_unique().alias("clusters"))
    per_cluster = clusters.group_by("cluster_id").agg(pl.col("person").n_unique().alias("people"))
    assert per_person.get_column("clusters").max() == 1  # every slipped pair found
    assert per_cluster.get_column("people").max() == 1  # and nobody merged with another
    assert link_clusters(keyed).equals(found)  # deterministic


def test_a_handful_of_records_links_on_fixed_weights_and_each_cluster_is_named_by_its_smallest_unit() -> None:
    bases = pl.Series(
        [
            linkage_basis("Okafor", dt.date(1980, 1, 2), "BS1 4AA"),
            linkage_basis("Okafro", dt.date(1980, 1, 2), "BS5 4AA"),  # a swapped pair of letters, a move
            linkage_basis("Nowak", dt.date(1980, 1, 2), "BS1 4AA"),  # the same birth date and district only
            linkage_basis("Smith", dt.date(1990, 5, 6), "M1 1AA"),
        ]
    )
    keyed = pl.concat([pl.DataFrame({UNIT_ID: ["z", "b", "c", "d"]}), keyed_components(KEY, bases)], how="horizontal")
    found = link_clusters(keyed)
    assert found.rows() == [("z", "b"), ("b", "b"), ("c", "c"), ("d", "d")]


# What docs/privacy.md and privacy.clustering state: at a link threshold of at least this, blocking loses no link.
LOWEST_THRESHOLD_BLOCKING_KEEPS = 0.16


def test_every_pair_the_fixed_model_links_shares_a_blocking_key() -> None:
    """Blocking must not cost a link: Splink only scores pairs agreeing on a blocking key, so every combination of
    comparison levels the fixed weights put at 0.16 or more (the default threshold included) must imply one of
    those agreements.
    Levels per comparison, most specific first (``clustering._settings``). No null level: a unit is made only from a
    complete linkage basis (surname, birth date and district, ``standards.extract.linkage_basis``), so every
    component of every unit is set."""
    levels = {
        "surname": ("surname", "surname_variants", "surname_sound", "else"),
        "birth": ("birth_date", "birth_month", "else"),
        "place": ("district", "postcode_area", "else"),
    }
    # What agreeing at a level implies: a more specific level implies the coarser components it refines.
    implies = {
        "surname": {"surname", "surname_sound"},
        "surname_sound": {"surname_sound"},
        "birth_date": {"birth_date", "birth_month"},
        "birth_month": {"birth_month"},
        "district": {"district", "postcode_area"},
        "postcode_area": {"postcode_area"},
    }

    def bayes_factor(comparison: str, level: str) -> float:
        weights = clustering._FIXED_LEVELS[comparison]
        if level == "else":
            return (1 - sum(m for m, _ in weights)) / (1 - sum(u for _, u in weights))
        m, u = weights[levels[comparison].index(level)]
        return m / u

    prior = clustering._FIXED_PRIOR
    linked_uncompared = []
    for combination in itertools.product(*levels.values()):
        factor = math.prod(bayes_factor(c, level) for c, level in zip(levels, combination, strict=True))
        probability = prior * factor / (prior * factor + 1 - prior)
        agreed = set().union(*(implies.get(level, set()) for level in combination))
        compared = any(set(key) <= agreed for key in clustering.BLOCKING_KEYS)
        if probability >= LOWEST_THRESHOLD_BLOCKING_KEEPS and not compared:
            linked_uncompared.append((combination, probability))
    assert linked_uncompared == []
    assert DEFAULT_THRESHOLD >= LOWEST_THRESHOLD_BLOCKING_KEEPS
    # The strongest pair compared: same surname, birth date and district (a check that the arithmetic is live).
    assert bayes_factor("surname", "surname") * bayes_factor("birth", "birth_date") > 1 / prior


def test_twins_sharing_a_surname_birth_date_and_district_are_one_cluster() -> None:
    # What docs/privacy.md and the methodology say: nothing keyed tells them apart, so linkage takes them for one
    # person, and removing either changes the other's privacy unit (``privacy.linked_units_per_person``).
    twins = linkage_basis("Okafor", dt.date(2001, 7, 9), "BS1 4AA")
    keyed = pl.concat(
        [pl.DataFrame({UNIT_ID: ["twin-a", "twin-b"]}), keyed_components(KEY, pl.Series([twins, twins]))],
        how="horizontal",
    )
    assert link_clusters(keyed).get_column("cluster_id").to_list() == ["twin-a", "twin-a"]

import pickle

import pyarrow as pa
import pytest

from vlforge.filters import run_filters
from vlforge.filters.dedup import DuplicateFilter, hash_values


def rows(uids, urls):
    return pa.table({"uid": pa.array(uids, pa.string()), "url": pa.array(urls, pa.string())})


def test_first_occurrence_in_input_order_wins_within_a_batch():
    result = DuplicateFilter("url").apply(rows(list("abcde"), ["u1", "u2", "u1", "u3", "u2"]))
    assert result.reasons == [None, None, "duplicate_url", None, "duplicate_url"]


def test_duplicates_are_found_across_batches():
    flt = DuplicateFilter("url")
    first = flt.apply(rows(["a", "b"], ["u1", "u2"]))
    second = flt.apply(rows(["c", "d", "e"], ["u2", "u3", "u1"]))
    assert first.keep.tolist() == [True, True]
    assert second.reasons == ["duplicate_url", None, "duplicate_url"]


def test_duplicate_uids_drop_the_later_rows():
    batch = rows(["x", "y", "x", "x"], ["u1", "u2", "u3", "u4"])
    kept, dropped, stats = run_filters(batch, [DuplicateFilter("uid")])
    assert kept["url"].to_pylist() == ["u1", "u2"]
    assert dropped["url"].to_pylist() == ["u3", "u4"]
    assert set(dropped["reason"].to_pylist()) == {"duplicate_uid"}
    assert stats.stages["dedup_uid"].reasons == {"duplicate_uid": 2}


def test_missing_values_are_dropped_or_kept_but_never_count_as_seen():
    batch = rows(["a", "b", "c", "d"], [None, "", None, "u1"])
    assert DuplicateFilter("url").apply(batch).reasons == ["url_missing", "url_missing", "url_missing", None]
    assert DuplicateFilter("url", missing="keep").apply(batch).keep.tolist() == [True] * 4
    assert DuplicateFilter("sha256", missing="keep").apply(batch).keep.tolist() == [True] * 4  # no column


def test_non_string_values_hash_by_their_text():
    batch = pa.table({"uid": pa.array([7, 8, 7], pa.int64())})
    assert DuplicateFilter("uid").apply(batch).reasons == [None, None, "duplicate_uid"]
    assert hash_values([7, "7", None, ""])[0] == hash_values(["7"])[0]
    assert hash_values([None, "", b""]) == [None, None, None]


def test_state_survives_pickling_into_a_worker():
    flt = DuplicateFilter("sha256")
    flt.apply(pa.table({"sha256": ["h1"]}))
    clone = pickle.loads(pickle.dumps(flt))
    assert clone.apply(pa.table({"sha256": ["h1", "h2"]})).reasons == ["duplicate_sha256", None]


def test_bad_missing_policy_is_named():
    with pytest.raises(ValueError, match="missing"):
        DuplicateFilter("url", missing="skip")


def test_arrow_column_hashes_match_python_value_hashes():
    from vlforge.filters.dedup import hash_column

    for column in [pa.array(["a", None, "", "ü"]), pa.array(["a", None, "", "ü"], pa.large_string()),
                   pa.array([b"a", None, b"", "ü".encode()], pa.binary()),
                   pa.chunked_array([["a"], [None, "", "ü"]])]:
        hashes, missing = hash_column(column)
        assert missing.tolist() == [False, True, True, False]
        expected = hash_values(["a", None, "", "ü"])
        assert [int(h) for h, m in zip(hashes, missing, strict=True) if not m] == [expected[0], expected[3]]
    hashes, _ = hash_column(pa.array([7], pa.int64()))
    assert int(hashes[0]) == hash_values([7])[0]

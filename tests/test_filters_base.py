import numpy as np
import pyarrow as pa
import pytest

from vlforge.filters.base import Filter, FilterResult, run_filters, split_rows


class Parity(Filter):
    """Drops odd values, measures value * 10."""

    name = "parity"

    def apply(self, batch: pa.Table) -> FilterResult:
        v = batch["v"].to_numpy()
        out = batch.append_column("tenfold", pa.array(v * 10))
        return FilterResult.from_reasons(out, np.where(v % 2 == 1, "odd", None))


class Big(Filter):
    """Drops values above 4; records which rows it saw."""

    name = "big"

    def __init__(self) -> None:
        self.seen: list[int] = []

    def apply(self, batch: pa.Table) -> FilterResult:
        v = batch["v"].to_numpy()
        self.seen.extend(v.tolist())
        out = batch.append_column("half", pa.array(v / 2))
        return FilterResult.from_reasons(out, np.where(v > 4, "v>4", None))


def table(values):
    return pa.table({"v": pa.array(values, pa.int64()), "uid": [f"u{x}" for x in values]})


def test_chain_runs_later_filters_on_survivors_only():
    big = Big()
    kept, dropped = run_filters(table(range(10)), [Parity(), big])
    assert big.seen == [0, 2, 4, 6, 8]
    assert kept["v"].to_pylist() == [0, 2, 4]
    assert kept["tenfold"].to_pylist() == [0, 20, 40]
    assert kept["half"].to_pylist() == [0.0, 1.0, 2.0]
    assert kept.num_rows == 3 and dropped.num_rows == 7


def test_dropped_rows_carry_reason_stage_and_measures_known_then():
    _, dropped = run_filters(table(range(10)), [Parity(), Big()])
    rows = {r["v"]: r for r in dropped.to_pylist()}
    assert sorted(rows) == [1, 3, 5, 6, 7, 8, 9]
    assert rows[3]["reason"] == "odd" and rows[3]["stage"] == "parity"
    assert rows[3]["tenfold"] == 30 and rows[3]["half"] is None  # "big" never saw row 3
    assert rows[6]["reason"] == "v>4" and rows[6]["stage"] == "big"
    assert rows[6]["half"] == 3.0 and rows[6]["uid"] == "u6"


def test_first_reason_wins_each_row_dropped_once():
    big = Big()
    _, dropped = run_filters(table([5, 7, 8]), [Parity(), big])
    assert sorted(dropped["v"].to_pylist()) == [5, 7, 8]
    assert dict(zip(dropped["v"].to_pylist(), dropped["reason"].to_pylist(), strict=True)) == {
        5: "odd", 7: "odd", 8: "v>4"}
    assert big.seen == [8]


def test_empty_batch_keeps_schema_and_counts_zero():
    big = Big()
    kept, dropped = run_filters(table([]), [Parity(), big])
    assert kept.num_rows == 0 and set(kept.column_names) == {"v", "uid", "tenfold", "half"}
    assert dropped.num_rows == 0 and {"reason", "stage"} <= set(dropped.column_names)
    assert big.seen == []


def test_result_must_cover_every_row():
    with pytest.raises(ValueError, match="one entry per row"):
        FilterResult(table([1, 2]), np.array([True]), [None])


def test_split_rows_by_reasons_or_by_a_keep_mask():
    table = pa.table({"row": [0, 1, 2, 3]})
    kept, dropped = split_rows(table, [None, "bad", None, "worse"], "read")
    assert kept["row"].to_pylist() == [0, 2]
    assert dropped.to_pylist() == [{"row": 1, "reason": "bad", "stage": "read"},
                                   {"row": 3, "reason": "worse", "stage": "read"}]
    kept, dropped = split_rows(table, [None, None, "odd", None], "probe", np.array([True, False, False, True]))
    assert kept["row"].to_pylist() == [0, 3]
    assert dropped["reason"].to_pylist() == ["probe", "odd"]  # a drop without a reason is named by its stage
    kept, dropped = split_rows(table.slice(0, 0), [], "read")
    assert kept.num_rows == 0 and dropped.column_names == ["row", "reason", "stage"]

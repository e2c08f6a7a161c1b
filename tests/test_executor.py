"""The executor's typed results: UnitStats from a unit task's mapping, and the one end-of-run summary."""

from vlforge.pipelines.runner import RunReport, UnitStats


def test_unit_stats_keeps_known_fields_and_puts_the_rest_in_extra() -> None:
    stats = UnitStats.of({"read": 5, "kept": 3, "dropped": 2, "reasons": {"too_small": 2}, "lang": "en"}, "u-1")
    assert stats == UnitStats(unit="u-1", read=5, kept=3, dropped=2, reasons={"too_small": 2}, extra={"lang": "en"})
    assert UnitStats.of(stats, "other") is stats


def test_summary_totals_units_and_orders_reasons_by_count() -> None:
    report = RunReport(stats=[UnitStats("a", 4, 1, 3, {"x": 1, "y": 2}), UnitStats("b", 4, 3, 1, {"y": 1})],
                       skipped=["c"], removed=[], elapsed_s=2.0)
    assert (report.read, report.kept, report.dropped) == (8, 4, 4)
    assert report.reasons() == {"y": 3, "x": 1}
    lines = report.summary("OUT").splitlines()
    assert lines[0] == "units run 2, skipped (already committed) 1, debris removed 0, 2.0 s"
    assert lines[1] == "read 8, kept 4 (50.0%), dropped 4  ->  OUT"
    assert [line.split() for line in lines[2:]] == [["3", "y"], ["1", "x"]]


def test_summary_of_a_run_with_nothing_to_do() -> None:
    assert RunReport(skipped=["a"]).summary("OUT").splitlines()[1] == "read 0, kept 0, dropped 0  ->  OUT"

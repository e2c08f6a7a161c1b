"""The one JSON line every benchmark prints per figure."""

import json


def report(bench: str, metric: str, value: float, unit: str, baseline: float | None) -> None:
    ratio = round(value / baseline, 3) if baseline else None
    print(json.dumps({"bench": bench, "metric": metric, "value": round(value, 3), "unit": unit,
                      "baseline": None if baseline is None else round(baseline, 3), "ratio": ratio}), flush=True)

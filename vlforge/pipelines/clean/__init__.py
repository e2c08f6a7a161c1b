"""`vlforge clean`: a recipe (`recipe`) planned into work units with run-wide duplicates and top-fraction
thresholds (`plan`, `keys`), each unit read, filtered, downloaded and written (`unit`), image-hash duplicates
removed after all units (`dedup`), model steps served by Ray actor pools (`pools`), driven by `run`."""

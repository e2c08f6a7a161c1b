"""Convert RefCOCO's `refs(unc).p` (RefCOCO+, RefCOCOg alike) to the JSON that `vlforge mix` reads.

The pickle is read by an unpickler that refuses every class and function, so a file that is not plain
lists, dicts, strings and numbers is rejected, never executed:
    python scripts/refcoco_refs_to_json.py data/refcoco/refs\\(unc\\).p data/refcoco/refs\\(unc\\).json
"""

import sys
from pathlib import Path

from vlforge.sources.annotations import SourceError
from vlforge.sources.annotations.refcoco import refs_pickle_to_json

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} REFS.p REFS.json")
    try:
        count = refs_pickle_to_json(Path(sys.argv[1]), Path(sys.argv[2]))
    except (SourceError, OSError) as exc:
        sys.exit(f"refcoco_refs_to_json: error: {exc}")
    print(f"wrote {count} refs to {sys.argv[2]}")

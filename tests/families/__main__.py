"""python -m tests.families DIR [NAME ...]: build the family matrix's tiny models into DIR."""

import sys
from pathlib import Path

from tests.families import FAMILIES, build_family

target = Path(sys.argv[1])
for name in sys.argv[2:] or list(FAMILIES):
    print(build_family(name, target))

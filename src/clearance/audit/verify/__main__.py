"""``python -m clearance.audit.verify``: see ``clearance.audit.verify.verify.main``."""

from __future__ import annotations

import sys

from clearance.audit.verify.verify import main

if __name__ == "__main__":
    sys.exit(main())

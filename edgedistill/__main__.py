"""Allow ``python -m edgedistill``."""

from edgedistill.cli import main

raise SystemExit(main())

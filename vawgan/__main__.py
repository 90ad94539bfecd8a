"""Allow ``python -m vawgan``."""

from vawgan.cli import main

raise SystemExit(main())

"""``python -m analytics SUBCOMMAND``: see :mod:`analytics.cli`."""

import sys

from analytics.cli import main

sys.exit(main())

"""``python -m convdot``: the same as the ``convdot`` command."""

import sys

from convdot.cli import main

sys.exit(main())

"""``python -m flows.cli``: the ``asd`` command."""

import sys

from flows.cli import main

sys.exit(main())

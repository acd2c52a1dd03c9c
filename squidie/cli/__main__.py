"""``python -m squidie.cli``: the same as the ``squidie`` command."""

import sys

from squidie.cli import main

sys.exit(main())

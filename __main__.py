"""``python -m almarules``: the same as the ``almarules`` command."""

import sys

from almarules.engine.cli import main

sys.exit(main())

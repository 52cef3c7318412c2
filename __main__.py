"""``python -m almarules``: the same as the ``almarules`` command."""

import sys

from almarules.engine.cli.app import main

sys.exit(main())

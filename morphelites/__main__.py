"""``python -m morphelites`` is the ``morphelites`` command."""

import sys

from morphelites.cli import main

sys.exit(main())

"""``python -m morphelites`` is the ``morphelites`` command."""

import sys

from morphelites.console import console_main

sys.exit(console_main())

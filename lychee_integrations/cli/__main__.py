"""``python -m lychee_integrations.cli``: the ``lychee`` command."""

import sys

from lychee_integrations.cli import main

sys.exit(main())

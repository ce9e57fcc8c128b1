"""Allow ``python -m rythmiq``."""

import sys

from rythmiq._cli import main

sys.exit(main())

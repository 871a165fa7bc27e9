"""`python -m conf_profile.cli` (used by `accelerate launch -m conf_profile.cli ...` in GPU pods)."""

import sys

from conf_profile.cli import main

sys.exit(main())

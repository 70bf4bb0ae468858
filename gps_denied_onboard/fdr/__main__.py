"""``python -m gps_denied_onboard.fdr``: the operator tool (see :mod:`.tools`)."""

from gps_denied_onboard.fdr.tools import main

raise SystemExit(main())

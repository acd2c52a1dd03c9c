"""Version 2 of the workflow the resilience scenario deploys mid-run.

The workers started at the deploy import this module beside
:mod:`harness.resilience_workflows` (version 1, unchanged), as a real deploy
keeps the old version defined while its runs finish: version 1 runs go on on
version 1, runs started after the deploy run version 2, which hands the parcel
to a courier and notifies instead of delivering.
"""

from __future__ import annotations

from harness.resilience_workflows import DEPLOYED, RETRY, SETTLE_SECONDS, work
from squidie import Workflow, field, manual, step, wait


class ParcelV2(Workflow):
    """label -> settle (a wait) -> courier -> notify."""

    name = DEPLOYED
    version = "2"
    trigger = manual("go", payload={"parcel": field(int)})
    steps = [
        step("label", work, retry=RETRY),
        wait("settle", SETTLE_SECONDS),
        step("courier", work, retry=RETRY),
        step("notify", work, retry=RETRY),
    ]

"""Whether a cron expression can drive a schedule: valid syntax *and* it fires.

croniter accepts expressions that name impossible dates (``0 0 30 2 *``: 30
February) and only fails when asked for the next fire; a scheduler would then
fail on every tick. Definitions are checked here instead, once.
"""

from __future__ import annotations

from datetime import datetime

from croniter import croniter

from squidie.workflow.quoting import brief

MAX_CRON_LENGTH = 200
# A fixed reference keeps the check deterministic (a definition is valid or not,
# whatever the date); a leap year, so 29 February is found within a year.
_REFERENCE = datetime(2000, 1, 1)


def cron_problem(expression: object) -> str | None:
    """Why ``expression`` cannot serve as a schedule, or None when it can.

    It must be a short string croniter parses, and fire at least twice (a
    window runs from one fire to the next), e.g. not on 30 February.
    """
    if (
        not isinstance(expression, str)
        or not expression.strip()
        or len(expression) > MAX_CRON_LENGTH
    ):
        return f"invalid cron expression {brief(expression)}"
    try:
        valid = croniter.is_valid(expression)
    except Exception:  # croniter raises odd types on odd text; any is "invalid"
        valid = False
    if not valid:
        return f"invalid cron expression {brief(expression)}"
    try:
        it = croniter(expression, _REFERENCE)
        it.get_next(datetime)
        it.get_next(datetime)
    except Exception:  # CroniterBadDateError, OverflowError near year 9999, ...
        return (
            f"cron expression {brief(expression)} never fires (it names no date that "
            "exists, e.g. 30 February, or fires only once)"
        )
    return None

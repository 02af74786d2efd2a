"""The session settings a source read pins, and the target statements that match them."""

from __future__ import annotations

# --------------------------------------------------------------------------- sessions

#: Output-only settings every PostgreSQL source read pins (the query's own literals are read
#: as before): ISO dates (the day/month order of date input is kept), floats to their last
#: exact digit, bytea as hex. A database or role may set other styles; text read under them
#: would be parsed wrongly by a target with the defaults.
PG_PINNED: tuple[tuple[str, str], ...] = (
    ("DateStyle", "ISO"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
)


def pg_source_session(local: bool = False) -> str:
    """One statement (connectorx runs a single pre-execution query) that pins
    :data:`PG_PINNED` for the session (or, ``local``, the transaction)."""
    scope = "true" if local else "false"
    order = "COALESCE(NULLIF(split_part(current_setting('DateStyle'), ', ', 2), ''), 'MDY')"
    return (
        f"SELECT set_config('DateStyle', 'ISO, ' || {order}, {scope}), "
        f"set_config('extra_float_digits', '1', {scope}), "
        f"set_config('bytea_output', 'hex', {scope})"
    )


def session_statements(session: tuple[tuple[str, str], ...]) -> list[str]:
    """``SET LOCAL`` statements for a target transaction that parses or reads back text the
    source rendered under ``session``."""
    return [
        f"SET LOCAL {name} = '{value.replace(chr(39), chr(39) * 2)}'" for name, value in session
    ]

"""What every ``wan-analyze`` sub-command shares: one-line failures and ``--storage-option``."""

from __future__ import annotations

import click

from analyzer.text import printable
from shared.locations import LocationError, parse_storage_options


def fail(exc: Exception | str) -> click.ClickException:
    """One line, and anything the store put in the message (a word, an error text) shown, never obeyed."""
    return click.ClickException(printable(exc))


def _parse(ctx, param, pairs):
    try:
        return parse_storage_options(pairs)
    except LocationError as exc:
        raise click.BadParameter(str(exc)) from None


storage_options = click.option(
    "--storage-option", "storage_options", multiple=True, metavar="KEY=VALUE", callback=_parse,
    help="For a URL: an fsspec option such as endpoint_url=http://host:9000 or anon=true (repeatable). "
         "Credentials also come from the environment (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...).")

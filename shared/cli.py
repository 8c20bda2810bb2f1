"""Click plumbing both command-line tools use (no torch, no store layout).

Both binaries and every sub-command take ``-h``/``--help`` and ``--version``: the group made by
:func:`default_group` gives them to itself and to every command added to it.
"""

from __future__ import annotations

import logging
from importlib import metadata

import click

DISTRIBUTION = "wan-attention"
HELP_OPTION_NAMES = ["-h", "--help"]
CONTEXT_SETTINGS = {"help_option_names": HELP_OPTION_NAMES}
VERSION_MESSAGE = "%(prog)s %(version)s"


def package_version() -> str:
    """The installed version of wan-attention ("unknown" when run from a source tree that is not installed)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def _verbosity(ctx: click.Context, param: click.Parameter, count: int) -> None:
    """``-v``: INFO (what is loaded, read and written); ``-vv``: DEBUG (per layer, per step, per write)."""
    if count and not ctx.resilient_parsing:
        logging.basicConfig(level=logging.INFO if count == 1 else logging.DEBUG,
                            format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger().setLevel(logging.INFO if count == 1 else logging.DEBUG)


def with_conventions(command: click.Command) -> click.Command:
    """Give ``command`` ``-h`` beside ``--help``, ``--version`` and ``-v/--verbose`` (once; it may be added twice)."""
    command.context_settings.setdefault("help_option_names", list(HELP_OPTION_NAMES))
    names = {getattr(p, "name", None) for p in command.params}
    if "version" not in names:
        click.version_option(package_version(), "--version", package_name=DISTRIBUTION,
                             message=VERSION_MESSAGE)(command)
    if "verbose" not in names and not isinstance(command, click.Group):
        verbose = click.option("-v", "--verbose", count=True, expose_value=False, is_eager=True, callback=_verbosity,
                               help="Log on stderr: -v what is loaded, read and written; -vv every detail.")
        verbose(command)
    return command


class DefaultCommandGroup(click.Group):
    """A group whose main job needs no sub-command name.

    ``wan-record --prompt ... OUT`` runs the default command; ``wan-record tiny-model DIR``
    runs the named one. Anything that is not a sub-command name is handed to the default.
    """

    default_command: str = ""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] in (*HELP_OPTION_NAMES, "--version"):
            return super().parse_args(ctx, args)
        if not args or args[0] not in self.commands:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        super().add_command(with_conventions(cmd), name)

    def format_usage(self, ctx, formatter):
        formatter.write_usage(ctx.command_path, f"[{self.default_command.upper()} OPTIONS] | COMMAND [ARGS]...")

    def format_help(self, ctx, formatter):
        """The group's help, then the default command's arguments and options: what most runs need."""
        super().format_help(ctx, formatter)
        command = self.commands.get(self.default_command)
        if command is None:
            return
        with click.Context(command, info_name=ctx.info_name, parent=ctx.parent) as sub:
            rows = [row for row in (p.get_help_record(sub) for p in command.get_params(sub)) if row]
        if rows:
            with formatter.section(f"Options of '{ctx.info_name} [{self.default_command}]' (the default command)"):
                formatter.write_dl(rows)


def default_group(default_command: str, **attrs):
    """Decorator like ``click.group`` whose ``default_command`` runs when no sub-command is named; the group and
    every command added to it take ``-h``/``--help`` and ``--version``."""

    def decorator(func):
        cls = type("Group", (DefaultCommandGroup,), {"default_command": default_command})
        attrs.setdefault("context_settings", dict(CONTEXT_SETTINGS))
        return with_conventions(click.group(cls=cls, **attrs)(func))

    return decorator

"""Click plumbing both command-line tools use (no torch, no store layout)."""

from __future__ import annotations

import click


class DefaultCommandGroup(click.Group):
    """A group whose main job needs no sub-command name.

    ``wan-record --prompt ... OUT`` runs the default command; ``wan-record tiny-model DIR``
    runs the named one. Anything that is not a sub-command name is handed to the default.
    """

    default_command: str = ""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] in ("--help", "-h", "--version"):
            return super().parse_args(ctx, args)
        if not args or args[0] not in self.commands:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx, formatter):
        formatter.write_usage(ctx.command_path, f"[{self.default_command.upper()} OPTIONS] | COMMAND [ARGS]...")


def default_group(default_command: str, **attrs):
    """Decorator like ``click.group`` whose ``default_command`` runs when no sub-command is named."""

    def decorator(func):
        cls = type("Group", (DefaultCommandGroup,), {"default_command": default_command})
        return click.group(cls=cls, **attrs)(func)

    return decorator

"""``--version`` and ``-h`` (beside ``--help``) on both binaries and on every sub-command."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from analyzer.cli import main as analyze_main
from recorder.cli import main as record_main
from shared.cli import package_version

BINARIES = {"wan-analyze": analyze_main, "wan-record": record_main}
CASES = [(binary, ()) for binary in BINARIES] + [(binary, (name,)) for binary, group in BINARIES.items()
                                                 for name in group.commands]


def invoke(binary: str, *args: str):
    return CliRunner().invoke(BINARIES[binary], list(args), prog_name=binary)


@pytest.mark.parametrize(("binary", "command"), CASES, ids=lambda v: " ".join(v) if isinstance(v, tuple) else v)
def test_version(binary, command):
    result = invoke(binary, *command, "--version")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{binary} {package_version()}"


@pytest.mark.parametrize(("binary", "command"), CASES, ids=lambda v: " ".join(v) if isinstance(v, tuple) else v)
def test_short_and_long_help_are_the_same(binary, command):
    short, long = invoke(binary, *command, "-h"), invoke(binary, *command, "--help")
    assert short.exit_code == 0 and long.exit_code == 0, short.output + long.output
    assert short.output == long.output and short.output.startswith("Usage: ")
    assert "-h, --help" in short.output and "--version" in short.output


def test_every_sub_command_is_covered():
    assert {"analyze", "info", "pack", "export", "subset", "validate"} <= set(analyze_main.commands)
    assert {"record", "tiny-model"} <= set(record_main.commands)
    assert package_version() != ""


def test_wan_record_help_shows_the_recording_options():
    result = invoke("wan-record", "--help")
    assert result.exit_code == 0, result.output
    for option in ("--prompt", "--model", "--frames", "--layer-mean", "--mantissa-bits", "--quiet", "--verbose"):
        assert option in result.output, option


@pytest.mark.parametrize("binary, command", [("wan-analyze", ("info",)), ("wan-analyze", ("validate",)),
                                             ("wan-analyze", ()), ("wan-record", ("record",))])
def test_every_command_takes_verbose(binary, command):
    result = invoke(binary, *command, "--help")
    assert "-v, --verbose" in result.output, result.output

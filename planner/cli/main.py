"""The ``ctus`` command line (contract: DESIGN.md section 6).

Each subcommand lives in its own module ``planner/cli/cmd_<name>.py`` exposing
``add_parser(subparsers)`` (returning the sub-parser) and ``run(args) -> int``.
Exit codes: 0 done, 2 bad input (one clear line on stderr), 1 unexpected.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import List, Optional

from registration.spatial.errors import CancelledError, InputError, ProjectError

# Order = order in --help. Every name here must have a planner/cli/cmd_<name>.py.
COMMANDS = ["info", "register", "align", "replay", "reconstruct", "segment", "plan", "guide", "sample", "pacs"]

log = logging.getLogger("ctus")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors are bad input too: exit 2
        self.print_usage(sys.stderr)
        self.exit(2, f"ctus: error: {message}\n")


def build_parser(commands: Optional[List[str]] = None) -> argparse.ArgumentParser:
    """The ``ctus`` parser with the sub-commands ``commands`` (default: all of them).

    Each sub-command's module is imported here: :func:`main` asks only for the one on its
    command line, so ``ctus register`` does not pay for importing the planner."""
    parser = _Parser(prog="ctus", description="CT-ultrasound fusion planner for liver biopsy")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS if commands is None else commands:
        module = importlib.import_module(f"planner.cli.cmd_{name}")
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def _command_of(argv: List[str]) -> Optional[str]:
    """The sub-command named on the command line (the first word that is not an option), if known."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_of(argv)
    # Only the named command's module is imported (process start); help and errors list them all.
    parser = build_parser(None if command is None else [command])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args._run(args) or 0)
    except InputError as exc:
        print(f"ctus {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except CancelledError as exc:
        print(f"ctus {args.command}: cancelled: {exc}", file=sys.stderr)
        return 1
    except ProjectError as exc:
        print(f"ctus {args.command}: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ctus {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

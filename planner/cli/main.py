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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ctus", description="CT-ultrasound fusion planner for liver biopsy")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"planner.cli.cmd_{name}")
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
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

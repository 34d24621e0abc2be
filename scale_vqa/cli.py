"""The one ``scale-vqa`` command.

Each subcommand lives in its own module under :mod:`scale_vqa.commands` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a function
``run(args) -> int``. Errors of the project's family print ``error: ...`` and exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from curation.errors import ScaleVQAError
from scale_vqa import __version__

COMMANDS: tuple[str, ...] = (
    # one module name per subcommand, in the order --help lists them
    "audit",
    "build",
    "demo",
    "evaluate",
    "evidence",
    "export",
    "extract",
    "generate",
    "import_release",
    "organs",
    "publish",
    "review",
    "review_report",
    "reword",
    "screen",
    "simulate",
    "tiny_model",
    "train",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="scale-vqa",
        description="Build, audit and publish cross-scale pathology VQA benchmarks.",
    )
    parser.add_argument("--version", action="version", version=f"scale-vqa {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"scale_vqa.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ScaleVQAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except UnicodeDecodeError as exc:  # a reader without its own check met a binary file
        print(
            f"error: an input is not UTF-8 text ({exc.reason} at byte {exc.start}); check that "
            "each file given is the text file the command expects",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:  # a file system refusal (read-only folder, disk full, ...)
        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return 1


def describe_os_error(exc: OSError) -> str:
    """One line for an operating-system error: the file, the reason, what to check."""
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    why = exc.strerror or str(exc) or type(exc).__name__
    return (
        f"{where + ': ' if where else ''}{why}; check that the path exists, is writable and "
        "that the disk has room"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

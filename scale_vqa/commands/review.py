"""``scale-vqa review`` and ``scale-vqa review-users``: the expert review web app."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``review`` and ``review-users`` subcommands."""
    p = subparsers.add_parser(
        "review",
        help="serve the expert review web app over a questions file or a build",
        description=(
            "Serve a local web app where pathologists answer each question blind from its "
            "images, then see the key and accept, reject (with a reason) or edit it. "
            "Decisions go to an append-only SQLite database (--db)."
        ),
    )
    p.add_argument("path", type=Path, help="questions JSONL (with --zoom) or a built dataset")
    p.add_argument("--db", type=Path, required=True, help="review database (SQLite; created)")
    p.add_argument(
        "--zoom",
        type=Path,
        help="zoom folder (zoom_paths.jsonl + images); default: "
        "the zoom/ folder next to a questions file",
    )
    p.add_argument(
        "--annotations",
        type=Path,
        help="canonical annotations (for the checkers); "
        "default: annotations.jsonl next to a questions file",
    )
    p.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any free)")
    p.add_argument("--token", help="server token; required for a non-loopback --host")
    p.add_argument(
        "--add-reviewer",
        metavar="NAME",
        action="append",
        default=[],
        help="create a reviewer, print their token (repeatable), then serve",
    )
    p.add_argument("--verbose", action="store_true", help="log every request")
    p.set_defaults(func=run)

    u = subparsers.add_parser(
        "review-users",
        help="add, list or re-token reviewers of a review database",
        description="Manage reviewers: each has a name, a role and an access token.",
    )
    u.add_argument("--db", type=Path, required=True, help="review database")
    u.add_argument("--add", metavar="NAME", action="append", default=[], help="add a reviewer")
    u.add_argument("--adjudicator", action="store_true", help="added reviewers adjudicate")
    u.add_argument(
        "--reset-token",
        metavar="NAME",
        action="append",
        default=[],
        help="give a reviewer a new token",
    )
    u.set_defaults(func=run_users)


def _print_token(name: str, token: str) -> None:
    print(f"reviewer {name}: token {token}")


def run(args: argparse.Namespace) -> int:
    """Load the items, start the server and serve until interrupted."""
    from scale_vqa.review.items import load_items
    from scale_vqa.review.server import ReviewApp, is_loopback, make_server
    from scale_vqa.review.store import ReviewStore

    if not is_loopback(args.host) and not args.token:
        from curation.errors import ConfigError

        raise ConfigError(
            f"--host {args.host} is not a loopback address; pass --token SECRET as well "
            "(reviewers then open http://HOST:PORT/?token=SECRET once)"
        )
    source = load_items(args.path, zoom=args.zoom, annotations=args.annotations)
    store = ReviewStore(args.db)
    for name in args.add_reviewer:
        _print_token(name, store.add_reviewer(name))
    bad = sum(1 for it in source.items if it.error)
    print(
        f"{len(source.items)} item(s) from {source.description}"
        + (f"; {bad} with a problem (shown in the page)" if bad else ""),
        file=sys.stderr,
    )
    if not store.reviewers():
        print("warning: no reviewer yet; add one with --add-reviewer NAME", file=sys.stderr)
    app = ReviewApp(source, store, server_token=args.token)
    server = make_server(app, args.host, args.port, verbose=args.verbose)
    host, port = server.server_address[:2]
    print(f"review app on http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def run_users(args: argparse.Namespace) -> int:
    """Add or re-token reviewers; list them."""
    from scale_vqa.review.store import ReviewStore

    store = ReviewStore(args.db)
    for name in args.add:
        _print_token(
            name, store.add_reviewer(name, "adjudicator" if args.adjudicator else "reviewer")
        )
    for name in args.reset_token:
        _print_token(name, store.reset_token(name))
    if not args.add and not args.reset_token:
        for r in store.reviewers():
            print(f"{r.name}\t{r.role}")
    return 0

"""``capplan target serve``: run the demo target in the foreground."""

from __future__ import annotations

import argparse

from loadprobe import demo_target

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    target = subparsers.add_parser("target", help="the bundled demo HTTP target")
    target_sub = target.add_subparsers(dest="target_command", metavar="ACTION")
    target_sub.required = True
    serve = target_sub.add_parser(
        "serve",
        parents=[common],
        help="serve the demo target until Ctrl-C",
        description="Serve an HTTP service with a fixed worker pool and a bounded queue; "
        "its capacity is workers / mean service time.",
    )
    demo_target.add_arguments(serve)
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    config = demo_target.config_from_args(args)
    demo_target.serve(config, host=args.host, port=args.port)
    return 0

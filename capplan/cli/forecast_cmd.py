"""Placeholder for the forecast command; replaced by its real module."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("forecast", parents=[common], help="(not built yet)")
    parser.set_defaults(handler=lambda args: 1)

"""What the `reposearcher models` sub-commands share: their error handling and their common options."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from reposearcher_plugin.cli.errors import CommandError, reports_errors
from reposearcher_plugin.models.cache import ModelCache
from reposearcher_plugin.models.registry import ModelError, ModelSpec, load_registry, resolve

Handler = Callable[[argparse.Namespace], int]


def handles_model_errors(handler: Handler) -> Handler:
    """A ModelError as the CLI's one-line error (plus a log tail when it carries one), status 2."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ModelError as error:
            raise CommandError(str(error)) from None

    return reports_errors(run)


def model_cache(args: argparse.Namespace) -> ModelCache:
    return ModelCache.at(args.models_dir)


def model_specs(args: argparse.Namespace, names: list[str]) -> list[ModelSpec]:
    registry = load_registry(args.registry)
    return [resolve(name, registry) for name in names]


def say(message: str) -> None:
    print(message, file=sys.stderr)

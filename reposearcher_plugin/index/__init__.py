"""Layer 1: a repository tree -> an index of its files, definitions and imports (tree-sitter)."""

from reposearcher_plugin.index.build import build_index, parse_floor
from reposearcher_plugin.index.cache import ParseCache
from reposearcher_plugin.index.model import (
    CLASS,
    DEFINITION_KINDS,
    FUNCTION,
    METHOD,
    Entity,
    FileParse,
    Import,
    Variable,
)
from reposearcher_plugin.index.repo_index import BuildStats, IndexedFile, RepoIndex, entity_id, innermost
from reposearcher_plugin.index.roles import DOCS, LIBRARY, STUB, TEST, VENDORED, path_role
from reposearcher_plugin.index.walk import IndexInputError

__all__ = [
    "CLASS",
    "DEFINITION_KINDS",
    "DOCS",
    "FUNCTION",
    "LIBRARY",
    "METHOD",
    "STUB",
    "TEST",
    "VENDORED",
    "BuildStats",
    "Entity",
    "FileParse",
    "Import",
    "IndexInputError",
    "IndexedFile",
    "ParseCache",
    "RepoIndex",
    "Variable",
    "build_index",
    "entity_id",
    "innermost",
    "parse_floor",
    "path_role",
]

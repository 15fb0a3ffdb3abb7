"""The repository overview ``get_repo_structure`` shows: an indented tree, cut at a depth."""

from __future__ import annotations


def render_structure(sources: list[str], others: list[str], cut: int, depth: int) -> list[str]:
    """The indented tree of ``sources`` and ``others`` (paths with their first ``cut`` characters dropped),
    directories expanded ``depth`` levels deep and counted below that: subdirectories first, then source
    files, then a count of the other files, each sorted.

    Nothing recurses: a repository can hold a directory chain deeper than Python's recursion limit.
    """
    # directories are dicts, built only down to `depth` levels; files are None where they are shown
    tree: dict[str, dict | None] = {}
    direct_others: dict[str, int] = {}  # shown directory -> other files directly in it
    below: dict[str, list[int]] = {}  # directory at the cut -> [source files, other files] under it
    for files, column in ((sources, 0), (others, 1)):
        for file in files:
            *directories, name = file[cut:].split("/")
            node = tree
            for part in directories[:depth]:
                node = node.setdefault(part, {})  # type: ignore[assignment]
            if len(directories) >= depth:
                below.setdefault("/".join(directories[:depth]), [0, 0])[column] += 1
            elif column == 0:
                node[name] = None
            else:
                parent = "/".join(directories)
                direct_others[parent] = direct_others.get(parent, 0) + 1
    out: list[str] = []
    # lines still to print, and (directory node, its path, its level) still to expand, in reverse order
    pending: list[str | tuple[dict, str, int]] = [(tree, "", 1)]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        node, relative, level = item
        indent = "  " * level
        here: list[str | tuple[dict, str, int]] = []
        for name in sorted(name for name, child in node.items() if child is not None):
            child_path = f"{relative}/{name}" if relative else name
            if level < depth:
                here += [f"{indent}{name}/", (node[name], child_path, level + 1)]
            else:
                source_count, other_count = below[child_path]
                counts = [plural(source_count, "source file")] if source_count else []
                counts += [plural(other_count, "other file")] if other_count else []
                here.append(f"{indent}{name}/ ({', '.join(counts)})")
        here += [f"{indent}{name}" for name in sorted(name for name, child in node.items() if child is None)]
        extra = direct_others.get(relative, 0)
        if extra:
            here.append(f"{indent}(+{plural(extra, 'other file')})")
        pending.extend(reversed(here))
    return out


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"

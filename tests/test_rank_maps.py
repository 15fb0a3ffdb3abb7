"""RepoMaps works its lookups out lazily, file by file (rank/maps.py): the answers are those of building
every map up front over the list of documents, as it did before."""

from __future__ import annotations

from reposearcher_plugin.index import CLASS, METHOD, build_index
from reposearcher_plugin.rank.maps import RepoMaps
from reposearcher_plugin.tools.repo_tools import RepoTools
from tests.conftest import write_tree

TREE = {
    "pkg/shapes.py": '''
        class Shape:
            """Something with an area."""

            def area(self):
                raise ValueError("area is not known for this shape")

            @property
            def label(self):
                return "shape"

            @label.setter
            def label(self, value):
                pass


        class Square(Shape):
            def area(self):
                return self.side**2

            class Meta:
                def area(self):
                    return "area is not known for this shape"


        def area(shapes):
            return sum(shape.area() for shape in shapes)
        ''',
    "pkg/util.py": """
        MESSAGE = "area is not known"  # module level: no definition holds it


        def total_area(shapes):
            def one(shape):
                return shape.area()

            return sum(one(shape) for shape in shapes)
        """,
    "pkg/crlf.py": b'def crlf_one():\r\n    return "caf\xc3\xa9 au lait"\r\n\r\n\r\ndef crlf_two():\r\n    return 1\r\n',
    "pkg/latin.py": b'def latin():\n    return "caf\xe9 au lait"  # not UTF-8: searched as its text\n',
    "pkg/empty.py": "",
}


def _maps(tmp_path) -> RepoMaps:
    index = build_index(write_tree(tmp_path / "repo", TREE), use_cache=False, workers=1)
    tools = RepoTools(index)
    return RepoMaps(index, tools.search.documents, tools.lines)


def test_names_files_and_class_edges_are_those_of_the_eager_maps(tmp_path):
    maps = _maps(tmp_path)
    documents = list(maps.documents)
    by_name: dict[str, list[int]] = {}
    by_file: dict[str, list[int]] = {}
    for doc, (path, entity) in enumerate(documents):
        by_name.setdefault(entity.name, []).append(doc)
        by_file.setdefault(path, []).append(doc)
    owner: dict[int, int] = {}
    members: dict[int, list[int]] = {}
    for docs in by_file.values():
        classes = {documents[doc][1].qualname: doc for doc in docs if documents[doc][1].kind == CLASS}
        for doc in docs:
            entity = documents[doc][1]
            if entity.kind == METHOD and entity.parent in classes:
                owner[doc] = classes[entity.parent]
                members.setdefault(owner[doc], []).append(doc)
    for name, docs in by_name.items():
        assert maps.docs_named(name) == docs
        for path in by_file:
            assert maps.docs_named(name, path) == [doc for doc in docs if documents[doc][0] == path]
    assert maps.docs_named("Square.area") == [
        doc for doc in by_name["area"] if documents[doc][1].qualname.endswith("Square.area")
    ]
    assert maps.docs_named("nothing") == [] and maps.docs_in_file("pkg/empty.py") == []
    for path, docs in by_file.items():
        assert maps.docs_in_file(path) == docs
    for doc in range(len(documents)):
        assert maps.owner(doc) == owner.get(doc)
        assert maps.members(doc) == members.get(doc, [])
        assert maps.ids[doc] == f"{documents[doc][0]}::{documents[doc][1].qualname}"


def test_literal_search_in_bytes_finds_what_the_texts_hold(tmp_path):
    maps = _maps(tmp_path)

    def in_texts(fragment: str) -> list[int]:  # the search as it was: every file's lines joined
        found: list[int] = []
        for path in maps.documents.paths:
            text = "\n".join(maps.lines(path))
            start = text.find(fragment)
            while start >= 0:
                entity = maps.index.enclosing(path, text.count("\n", 0, start) + 1)
                if entity is not None:
                    doc = next(d for d in maps.docs_in_file(path) if maps.documents[d][1] == entity)
                    if doc not in found:
                        found.append(doc)
                start = text.find(fragment, start + 1)
        return found

    for fragment in [
        "area is not known for this shape",
        "area is not known",
        "café au lait",  # UTF-8 bytes in a CRLF file
        "caf\ufffd au lait",  # the text of a file that is not UTF-8 holds a replacement character
        "return 1",
        "ss",
        "\udcff",
        "return\n",
    ]:
        assert maps.docs_containing(fragment) == in_texts(fragment), fragment
    assert [maps.ids[doc] for doc in maps.docs_containing("café au lait")] == ["pkg/crlf.py::crlf_one"]
    assert [maps.ids[doc] for doc in maps.docs_containing("caf\ufffd au lait")] == ["pkg/latin.py::latin"]
    assert maps.docs_containing("return", limit=2) == []  # found everywhere: says nothing

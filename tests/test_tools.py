"""The tool set: golden observations, refusals, recovery hints, profiles and schema renderings."""

from __future__ import annotations

import json
import os

import pytest

from reposearcher_plugin.index import build_index
from reposearcher_plugin.tools import (
    DEFAULT_TOOLS,
    TOOLTRAIN_TOOLS,
    ToolBox,
    hermes_tools_prompt,
    openai_tools,
    split_identifier,
)
from tests.conftest import write_tree

SHOP = {
    "shop/__init__.py": "",
    "shop/cart.py": '''
        """Shopping cart."""
        from decimal import Decimal

        from .payments.gateway import charge
        from . import pricing


        class Cart:
            """A customer's cart."""

            def __init__(self, owner):
                self.owner = owner
                self.items = []

            def add(self, item, quantity=1):
                """Add an item."""
                self.items.append((item, quantity))

            @property
            def total(self):
                return sum(pricing.price_of(i) * q for i, q in self.items)

            @total.setter
            def total(self, value):
                raise AttributeError("read only")

            def checkout(self):
                return charge(self.owner, self.total)


        def empty_cart(owner):
            return Cart(owner)
        ''',
    "shop/pricing.py": '''
        TAX = 0.2


        def price_of(item):
            """Price of an item, tax included."""
            return item.price * (1 + TAX)


        class Cart:
            """A pricing-only cart, not the shop's."""

            def add(self, item):
                pass
        ''',
    "shop/payments/__init__.py": "",
    "shop/payments/gateway.py": '''
        import requests


        def charge(owner, amount):
            """Charge the owner's card."""
            response = requests.post("https://pay.example/charge", json={"owner": owner, "amount": amount})
            return response.ok
        ''',
    "docs/index.md": "# Docs\n",
    "setup.cfg": "x\n",
}


@pytest.fixture
def shop(tmp_path, cache):
    root = write_tree(tmp_path / "shop-repo", SHOP)
    return build_index(root, cache=cache, workers=1)


@pytest.fixture
def box(shop):
    return ToolBox(shop)


def text(box: ToolBox, tool: str, **arguments) -> str:
    observation = box.call(tool, arguments)
    return observation.text


def test_repo_structure(box):
    assert text(box, "get_repo_structure") == (
        "./\n"
        "  docs/\n"
        "    (+1 other file)\n"
        "  shop/\n"
        "    payments/ (2 source files)\n"
        "    __init__.py\n"
        "    cart.py\n"
        "    pricing.py\n"
        "  (+1 other file)"
    )
    assert text(box, "get_repo_structure", path="shop/payments", depth=3) == (
        "shop/payments/\n  __init__.py\n  gateway.py"
    )


def test_search_class_lists_every_same_named_class_and_file_narrows(box):
    both = text(box, "search_class", class_name="Cart")
    assert both.startswith(
        "Found 2 classes named 'Cart':\n\nshop/cart.py::Cart (class, lines 8-28)\n 8 | class Cart:"
    )
    assert "\n\nshop/pricing.py::Cart (class, lines 9-13)\n" in both
    assert text(box, "search_class", class_name="Cart", file="shop/pricing.py") == (
        "shop/pricing.py::Cart (class, lines 9-13)\n"
        " 9 | class Cart:\n"
        '10 |     """A pricing-only cart, not the shop\'s."""\n'
        "11 | \n"
        "12 |     def add(self, item):\n"
        "13 |         pass"
    )


def test_property_getter_and_setter_are_both_found(box):
    assert text(box, "search_class_method", class_name="Cart", method_name="total", file="shop/cart.py") == (
        "Found 2 methods Cart.total:\n\n"
        "shop/cart.py::Cart.total (method, lines 19-21)\n"
        "19 |     @property\n"
        "20 |     def total(self):\n"
        "21 |         return sum(pricing.price_of(i) * q for i, q in self.items)\n\n"
        "shop/cart.py::Cart.total (method, lines 23-25)\n"
        "23 |     @total.setter\n"
        "24 |     def total(self, value):\n"
        '25 |         raise AttributeError("read only")'
    )


def test_imports_resolve_to_repository_files(box):
    assert text(box, "get_imports_of_file", file="./shop/cart.py") == (
        "Imports of shop/cart.py:\n"
        "  2: from decimal import Decimal\n"
        "  4: from .payments.gateway import charge  -> shop/payments/gateway.py\n"
        "  5: from . import pricing  -> shop/pricing.py"
    )


def test_find_references_names_the_enclosing_definition(box):
    assert text(box, "find_references", name="price_of") == (
        "2 references to 'price_of' in 2 files:\n"
        "  shop/cart.py:21 [Cart.total]: return sum(pricing.price_of(i) * q for i, q in self.items)\n"
        "  shop/pricing.py:4 [price_of]: def price_of(item):"
    )
    assert text(box, "find_references", name="nowhere_used") == (
        "No references to 'nowhere_used' in the repository's source files."
    )


def test_search_code_ranks_by_names_docstrings_and_identifiers(box):
    result = text(box, "search_code", query="charge the card", k=3)
    lines = result.splitlines()
    assert lines[0] == "Top matches for 'charge the card':"
    assert lines[1].startswith(" 1. shop/payments/gateway.py::charge (function, lines 4-7) score=")
    assert lines[1].endswith(" — Charge the owner's card.")
    assert len(lines) <= 4
    assert text(box, "search_code", query="zzzqqq") == "No definition matches 'zzzqqq'."


def test_show_code_numbers_lines(box):
    assert text(box, "show_code", file="shop/pricing.py", start_line=3, end_line=6) == (
        "shop/pricing.py (lines 3-6 of 13)\n"
        "3 | \n"
        "4 | def price_of(item):\n"
        '5 |     """Price of an item, tax included."""\n'
        "6 |     return item.price * (1 + TAX)"
    )
    assert box.call("show_code", {"file": "shop/pricing.py", "start_line": 99, "end_line": 100}).text == (
        "Error: shop/pricing.py has only 13 lines; start_line 99 is past its end"
    )


def test_not_found_names_suggest_the_closest(box):
    assert text(box, "search_class", class_name="Crt") == (
        "No class named 'Crt'. Closest names:\n  shop/cart.py::Cart (class)\n  shop/pricing.py::Cart (class)"
    )
    assert text(box, "search_function", function_name="Cart") == (
        "No function named 'Cart'. 'Cart' exists as:\n  shop/cart.py::Cart (class)\n  shop/pricing.py::Cart (class)"
    )
    assert text(box, "search_class_method", class_name="Cart", method_name="remove", file="shop/cart.py") == (
        "Class 'Cart' has no method 'remove'.\nIts methods: __init__, add, checkout, total"
    )
    assert text(box, "show_code", file="shop/carts.py", start_line=1, end_line=2) == (
        "Error: No file 'shop/carts.py' in the repository. "
        "Did you mean: shop/cart.py, shop/pricing.py, shop/__init__.py?"
    )


def test_paths_cannot_escape_the_repository(tmp_path, shop, box):
    outside = tmp_path / "secret.py"
    outside.write_text("PASSWORD = 1\n")
    os.symlink(outside, shop.root / "shop" / "leak.py")
    for bad in ("../secret.py", "shop/../../secret.py", str(outside), "/etc/passwd", "shop/leak.py"):
        observation = box.call("show_code", {"file": bad, "start_line": 1, "end_line": 5})
        assert not observation.ok, bad
        assert observation.text.startswith("Error: refused:"), observation.text
        assert "PASSWORD" not in observation.text
    assert not box.call("get_repo_structure", {"path": "../"}).ok
    assert not box.call("search_class", {"class_name": "Cart", "file": "../x.py"}).ok


def test_long_code_is_cut_with_a_marker_that_says_how_to_see_the_rest(make_index):
    body = "".join(f"    x{i} = {i}\n" for i in range(300))
    methods = "".join(f"    def m{i}(self):\n        return {i}\n\n" for i in range(80))
    index = make_index({"big.py": f"def long():\n{body}\n\nclass Big:\n    '''Doc.'''\n\n{methods}"})
    box = ToolBox(index)
    long_function = text(box, "search_function", function_name="long")
    assert long_function.splitlines()[-1] == (
        "... [cut: 151 more lines; see them with show_code('big.py', 151, 301)]"
    )
    assert len(long_function.splitlines()) == 1 + 150 + 1
    outline = text(box, "search_class", class_name="Big").splitlines()
    assert outline[0] == "big.py::Big (class, lines 304-545)"
    assert outline[4].startswith("... [class body is 242 lines; its 80 members are listed below.")
    assert outline[5] == "  307-308: def m0(self):"
    assert len(outline) == 5 + 80
    view = text(box, "show_code", file="big.py", start_line=1, end_line=400).splitlines()
    assert view[0] == "big.py (lines 1-200 of 546)"
    assert view[-1] == "... [cut: 200 more lines; see them with show_code('big.py', 201, 400)]"


def test_bad_calls_get_errors_the_model_can_act_on(box):
    assert box.call("nope", {}).text == (
        "Unknown tool 'nope'. Available tools: get_repo_structure, get_imports_of_file, search_class, "
        "search_function, search_class_method, show_code, search_code, find_references, submit."
    )
    assert box.call("search_class", {"klass": "x"}).text == (
        "Error: search_class() got unexpected argument(s) klass; it takes: search_class(class_name, file=null)"
    )
    assert box.call("search_class", {}).text.startswith("Error: search_class() is missing the argument")
    # the schema copied into a call (small models do) is ignored; an unknown argument still is not
    echoed = box.call("search_class", {"class_name": "Cart", "required": ["class_name"], "type": "object"})
    assert echoed.ok and echoed.text == box.call("search_class", {"class_name": "Cart"}).text
    wrong = box.call("show_code", {"file": "shop/cart.py", "start_line": "one", "end_line": 2})
    assert wrong.text == "Error: show_code(): argument 'start_line' must be integer, got str 'one'"
    coerced = box.call("show_code", {"file": "shop/cart.py", "start_line": "1", "end_line": 1.0})
    assert coerced.ok and coerced.text.endswith('1 | """Shopping cart."""')


HOSTILE_PATHS = ["a\0b.py", "x" * 300 + ".py", "shop/" + "y" * 256, "z/" * 5000, "/" + "a" * 10**6]
HOSTILE_VALUES = ["²", "--5", "+-1", "9" * 4301, 10**4300, "١٢", float("inf"), float("nan"), [], {}, True]


def test_no_json_a_model_can_send_makes_a_tool_raise(box, shop):
    root = str(shop.root)
    lines = {"start_line": 1, "end_line": 5}
    calls = [("show_code", {"file": path, **lines}) for path in HOSTILE_PATHS]
    calls += [("get_repo_structure", {"path": path}) for path in HOSTILE_PATHS]
    calls += [("get_imports_of_file", {"file": path}) for path in HOSTILE_PATHS]
    calls += [("search_class", {"class_name": "Cart", "file": path}) for path in HOSTILE_PATHS]
    calls += [("show_code", {"file": "shop/cart.py", "start_line": v, "end_line": 5}) for v in HOSTILE_VALUES]
    calls += [("show_code", arguments) for arguments in (["shop/cart.py"], "shop/cart.py", 7, True)]
    for name, arguments in calls:
        observation = box.call(name, arguments)
        assert not observation.ok and observation.text.startswith("Error"), name
        assert root not in observation.text  # no server path reaches the model
        assert len(observation.text) < 2_000  # a megabyte argument is not echoed back
    for value in HOSTILE_VALUES:  # a huge depth is just "everything": no error needed, but no raise
        observation = box.call("get_repo_structure", {"depth": value})
        assert observation.ok == (type(value) is int), type(value)
    assert box.call("show_code", {"file": "a\0b.py", **lines}).text.endswith("contains a NUL character")
    assert "must be a JSON object, not list" in box.call("show_code", ["x"]).text
    assert (
        "got str '²'"
        in box.call("show_code", {"file": "shop/cart.py", "start_line": "²", "end_line": 5}).text
    )
    coerced = box.call("show_code", {"file": "shop/cart.py", "start_line": " +1 ", "end_line": "-0"})
    assert coerced.ok or "end_line" in coerced.text  # a signed ASCII integer is still read


def test_submit_reports_unknown_locations(box):
    assert (
        text(box, "submit", locations=["shop/cart.py::Cart.add", "shop/pricing.py"])
        == "Submitted 2 locations."
    )
    assert text(box, "submit", locations=["shop/cart.py::Cart.nope"]) == (
        "Submitted 1 location. Not found in the index (kept as given): shop/cart.py::Cart.nope"
    )
    assert not box.call("submit", {"locations": []}).ok


def test_output_is_deterministic(shop):
    calls = [
        ("get_repo_structure", {"depth": 3}),
        ("search_class", {"class_name": "Cart"}),
        ("search_code", {"query": "price item tax"}),
        ("find_references", {"name": "Cart"}),
    ]
    first = [ToolBox(shop).call(name, args).text for name, args in calls]
    second = [ToolBox(shop).call(name, args).text for name, args in calls]
    assert first == second


def test_tooltrain_profile_returns_raw_code_like_the_official_tools(shop):
    box = ToolBox(shop, "tooltrain")
    assert list(box.specs) == [
        "get_code_of_class",
        "get_code_of_file_function",
        "get_code_of_class_function",
        "exit",
    ]
    assert box.call(
        "get_code_of_class_function", {"file_name": "shop/cart.py", "class_name": "Cart", "func_name": "add"}
    ).text == (
        '    def add(self, item, quantity=1):\n        """Add an item."""\n        self.items.append((item, quantity))'
    )
    assert box.call(
        "get_code_of_file_function", {"file_name": "shop/pricing.py", "func_name": "price_of"}
    ).text == (
        'def price_of(item):\n    """Price of an item, tax included."""\n    return item.price * (1 + TAX)'
    )
    assert box.call(
        "get_code_of_class", {"file_name": "shop/pricing.py", "class_name": "Cart"}
    ).text.startswith("class Cart:\n")
    assert box.call("exit", {}).text == "exit"
    assert not box.call("search_class", {"class_name": "Cart"}).ok  # not in this profile


def test_tooltrain_schemas_match_the_official_names_and_arguments():
    schemas = {
        tool["function"]["name"]: tool["function"]["parameters"] for tool in openai_tools(TOOLTRAIN_TOOLS)
    }
    assert {name: (sorted(p["properties"]), sorted(p["required"])) for name, p in schemas.items()} == {
        "get_code_of_class": (["class_name", "file_name"], ["class_name", "file_name"]),
        "get_code_of_file_function": (["file_name", "func_name"], ["file_name", "func_name"]),
        "get_code_of_class_function": (
            ["class_name", "file_name", "func_name"],
            ["class_name", "file_name", "func_name"],
        ),
        "exit": ([], []),
    }


def test_one_schema_renders_to_every_format():
    search = next(spec for spec in DEFAULT_TOOLS if spec.name == "search_class")
    assert search.openai() == {
        "type": "function",
        "function": {
            "name": "search_class",
            "description": search.description,
            "parameters": {
                "type": "object",
                "properties": {
                    "class_name": {
                        "type": "string",
                        "description": "Class name, e.g. QuerySet or Outer.Inner.",
                    },
                    "file": {
                        "type": "string",
                        "description": "Only look in this file (path relative to the repository root).",
                    },
                },
                "required": ["class_name"],
            },
        },
    }
    assert search.mcp_input_schema() == search.openai()["function"]["parameters"]
    swe = search.swe_agent()
    assert swe["signature"] == "search_class <class_name> [<file>]"
    assert [(a["name"], a["required"]) for a in swe["arguments"]] == [("class_name", True), ("file", False)]
    # required arguments positional, optional ones as flags: an omitted optional cannot shift the others
    assert "argument_format" not in swe["arguments"][0]
    assert swe["arguments"][1]["argument_format"] == "--file {{value}}"
    submit = next(spec for spec in DEFAULT_TOOLS if spec.name == "submit")
    assert submit.openai()["function"]["parameters"]["properties"]["locations"]["items"] == {"type": "string"}
    prompt = hermes_tools_prompt(DEFAULT_TOOLS)
    assert prompt.startswith("# Tools\n\nYou may call one or more functions")
    tool_lines = prompt.split("<tools>\n", 1)[1].split("\n</tools>", 1)[0].splitlines()
    assert [json.loads(line) for line in tool_lines] == openai_tools(DEFAULT_TOOLS)
    assert prompt.endswith(
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    )


def test_identifier_splitting():
    assert split_identifier("get_queryset") == ["get", "queryset"]
    assert split_identifier("HTTPResponseRedirect") == ["http", "response", "redirect"]
    assert split_identifier("parse2Html") == ["parse", "2", "html"]


def test_names_with_a_colon_are_repository_paths_not_drive_letters(make_index):
    index = make_index(
        {"c:colon.py": "def colon():\n    pass\n", "C:/inside.py": "def inside():\n    pass\n", "ok.py": ""}
    )
    box = ToolBox(index)
    assert box.call("show_code", {"file": "c:colon.py", "start_line": 1, "end_line": 9}).text == (
        "c:colon.py (lines 1-2 of 2)\n1 | def colon():\n2 |     pass"
    )
    assert box.call("get_imports_of_file", {"file": "c:colon.py"}).ok
    assert box.call("search_function", {"function_name": "inside", "file": "C:/inside.py"}).ok
    assert box.call("show_code", {"file": "C:\\inside.py", "start_line": 1, "end_line": 9}).ok
    assert box.call("get_repo_structure", {"path": "C:"}).text == "C:/\n  inside.py"
    assert box.call("show_code", {"file": "c:nope.py", "start_line": 1, "end_line": 9}).text.startswith(
        "Error: No file 'c:nope.py'"
    )
    # a Windows absolute path still reads as one when the repository has no such directory
    for absolute in ("D:\\Windows\\win.ini", "d:/etc/passwd", "e:"):
        observation = box.call("show_code", {"file": absolute, "start_line": 1, "end_line": 9})
        assert observation.text.startswith("Error: refused:") and "absolute path" in observation.text

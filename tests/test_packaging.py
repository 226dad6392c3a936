"""Packaging: the installed package keeps the Python floor that requires-python promises, ships PEP 561's
py.typed, and requires-python, pyproject.toml and README.md state the same floor.

The floor is checked on the sources, so it fails on any interpreter, not only the oldest. `ast.parse(...,
feature_version=floor)` checks grammar only (match, except*, PEP 695 generics ...); code that parses on the
oldest Python can still fail there when it runs, so the source is also searched for what does: `X | Y`
between types evaluated at run time (an annotation is not, in a module with `from __future__ import
annotations`), zip(strict=), dataclass(slots=/kw_only=), and standard-library names newer than the floor
used outside a `try` that catches their absence or an `if sys.version_info ...` block. The suite run on the
oldest interpreter (.ci/run runs all of it there but three files of kernel sweeps, whose Python wrappers the
other files reach too) is the complete check.
"""
from __future__ import annotations

import ast
import builtins
import importlib.metadata
import importlib.resources
import re
import sys
from pathlib import Path

import pytest

import cnn_core

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11: tomli, the same parser (pytest >= 7 depends on it there)
    import tomli as tomllib

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
PACKAGE = Path(cnn_core.__file__).resolve().parent  # the installed package, not the source tree


def floor_of(requires_python: str) -> tuple[int, int]:
    """(3, 9) from ">=3.9": the only form this project uses (a floor, no cap)."""
    m = re.fullmatch(r"\s*>=\s*(\d+)\.(\d+)\s*", requires_python)
    assert m, f"requires-python: expected '>=X.Y', got {requires_python!r}"
    return int(m[1]), int(m[2])


METADATA = importlib.metadata.metadata("cnn_core")
FLOOR = floor_of(METADATA["Requires-Python"])

# Standard-library names newer than 3.9, by the version that added them: a module imported whole, a name
# imported from a module or read as its attribute, or a builtin.
NEW_MODULES = {"tomllib": (3, 11)}
NEW_NAMES = {
    "itertools": {"pairwise": (3, 10), "batched": (3, 12)},
    "typing": {name: (3, 10) for name in ("TypeAlias", "ParamSpec", "Concatenate", "TypeGuard", "is_typeddict")}
    | {name: (3, 11) for name in ("Self", "Never", "LiteralString", "assert_never", "assert_type", "reveal_type",
                                  "Required", "NotRequired", "TypeVarTuple", "Unpack", "dataclass_transform")}
    | {"override": (3, 12), "TypeAliasType": (3, 12), "TypeIs": (3, 13), "ReadOnly": (3, 13)},
    "types": {"NoneType": (3, 10), "EllipsisType": (3, 10), "UnionType": (3, 10)},
    "contextlib": {"chdir": (3, 11), "aclosing": (3, 10)},
    "datetime": {"UTC": (3, 11)},
    "enum": {"StrEnum": (3, 11), "verify": (3, 11)},
    "inspect": {"get_annotations": (3, 10)},
    "math": {"cbrt": (3, 11), "exp2": (3, 11), "sumprod": (3, 12), "fma": (3, 13)},
    "operator": {"call": (3, 11)},
    "hashlib": {"file_digest": (3, 11)},
    "sys": {"stdlib_module_names": (3, 10), "orig_argv": (3, 10), "exception": (3, 11)},
    "os": {"process_cpu_count": (3, 13)},
    "warnings": {"deprecated": (3, 13)},
}
NEW_BUILTINS = {"aiter": (3, 10), "anext": (3, 10), "EncodingWarning": (3, 10), "ExceptionGroup": (3, 11),
                "BaseExceptionGroup": (3, 11)}
NEW_METHODS = {"bit_count": (3, 10), "add_note": (3, 11)}  # int.bit_count(), BaseException.add_note()
NEW_KEYWORDS = {("zip", "strict"): (3, 10), ("dataclass", "slots"): (3, 10), ("dataclass", "kw_only"): (3, 10),
                ("bisect", "key"): (3, 10), ("bisect_left", "key"): (3, 10), ("bisect_right", "key"): (3, 10),
                ("insort", "key"): (3, 10), ("insort_left", "key"): (3, 10), ("insort_right", "key"): (3, 10)}
GUARDS = {"ImportError", "ModuleNotFoundError", "AttributeError", "NameError", "TypeError", "Exception"}

TYPE_NAMES = {name for name, value in vars(builtins).items() if isinstance(value, type)} | {
    "Any", "Optional", "Union", "Callable", "Sequence", "Mapping", "Iterable", "Iterator", "Literal", "ndarray",
    "dtype", "Path"}


def _looks_like_type(node: ast.AST) -> bool:
    """A None, a builtin or typing name, a CamelCase class name, a subscripted generic, or another union."""
    if isinstance(node, ast.Constant):
        return node.value is None
    if isinstance(node, ast.BinOp):
        return isinstance(node.op, ast.BitOr) and (_looks_like_type(node.left) or _looks_like_type(node.right))
    if isinstance(node, ast.Subscript):
        return _looks_like_type(node.value)
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
    return name is not None and (name in TYPE_NAMES or re.fullmatch(r"_?[A-Z][a-z0-9]+[A-Za-z0-9]*", name) is not None)


def _guarded(parents: list[ast.AST]) -> bool:
    """Inside a try that catches the name's absence, or a branch on sys.version_info."""
    for node in parents:
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                caught = handler.type
                names = [] if caught is None else caught.elts if isinstance(caught, ast.Tuple) else [caught]
                if caught is None or any(isinstance(n, ast.Name) and n.id in GUARDS for n in names):
                    return True
        if isinstance(node, ast.If) and "version_info" in ast.unparse(node.test):
            return True
    return False


def newer_than(source: str, floor: tuple[int, int], filename: str = "<source>") -> list[str]:
    """What in `source` needs a Python newer than `floor` (grammar, then the run-time checks above);
    one "file:line: what" string per finding."""
    found = []
    try:
        tree = ast.parse(source, filename, feature_version=floor)
    except SyntaxError as exc:
        return [f"{filename}:{exc.lineno}: syntax newer than Python {floor[0]}.{floor[1]}: {exc.msg}"]
    lazy_annotations = any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
                           and any(alias.name == "annotations" for alias in node.names) for node in tree.body)

    def report(node: ast.AST, what: str, version: tuple[int, int]) -> None:
        if version > floor:
            found.append(f"{filename}:{node.lineno}: {what} needs Python {version[0]}.{version[1]}")

    def visit(node: ast.AST, parents: list[ast.AST], in_annotation: bool) -> None:
        guarded = _guarded(parents)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and not (in_annotation and lazy_annotations):
            if _looks_like_type(node.left) or _looks_like_type(node.right):
                report(node, f"`{ast.unparse(node)}` evaluated at run time", (3, 10))
                return  # one finding per union
        elif isinstance(node, ast.Import) and not guarded:
            for alias in node.names:
                if alias.name in NEW_MODULES:
                    report(node, f"import {alias.name}", NEW_MODULES[alias.name])
        elif isinstance(node, ast.ImportFrom) and not guarded:
            if node.module in NEW_MODULES:
                report(node, f"from {node.module} import", NEW_MODULES[node.module])
            for alias in node.names:
                if alias.name in NEW_NAMES.get(node.module, {}):
                    report(node, f"{node.module}.{alias.name}", NEW_NAMES[node.module][alias.name])
        elif isinstance(node, ast.Attribute) and not guarded:
            if isinstance(node.value, ast.Name) and node.attr in NEW_NAMES.get(node.value.id, {}):
                report(node, f"{node.value.id}.{node.attr}", NEW_NAMES[node.value.id][node.attr])
            elif node.attr in NEW_METHODS:
                report(node, f".{node.attr}()", NEW_METHODS[node.attr])
        elif isinstance(node, ast.Name) and node.id in NEW_BUILTINS and not guarded:
            report(node, node.id, NEW_BUILTINS[node.id])
        elif isinstance(node, ast.Call):
            func = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            for keyword in node.keywords:
                if (func, keyword.arg) in NEW_KEYWORDS:
                    report(node, f"{func}({keyword.arg}=...)", NEW_KEYWORDS[func, keyword.arg])
        annotations = set()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
            annotations = {id(a.annotation) for a in every if a is not None and a.annotation is not None}
            if node.returns is not None:
                annotations.add(id(node.returns))
        elif isinstance(node, (ast.AnnAssign, ast.arg)) and node.annotation is not None:
            annotations = {id(node.annotation)}
        for child in ast.iter_child_nodes(node):
            visit(child, [*parents, node], in_annotation or id(child) in annotations)

    visit(tree, [], False)
    return found


def python_sources() -> list[Path]:
    """Every .py of the installed package and of the tests; setup.py, benchmarks/ and examples/ when the
    tests sit in a source tree or an unpacked sdist."""
    files = sorted(PACKAGE.rglob("*.py")) + sorted(TESTS.rglob("*.py"))
    if (ROOT / "setup.py").is_file():
        files.append(ROOT / "setup.py")
    for extra in ("benchmarks", "examples"):
        files += sorted((ROOT / extra).rglob("*.py"))
    return files


def test_nothing_needs_a_python_newer_than_requires_python():
    files = python_sources()
    assert any(path.name == "__init__.py" and path.parent == PACKAGE for path in files)
    found = [f for path in files for f in newer_than(path.read_text(encoding="utf-8"), FLOOR, str(path))]
    assert found == []


@pytest.mark.parametrize("source, what, needs", [
    ("match x:\n    case 1:\n        pass\n", "syntax newer", (3, 10)),
    ("try:\n    pass\nexcept* ValueError:\n    pass\n", "syntax newer", (3, 11)),
    ("Pair = int | tuple[int, int]\n", "`int | tuple[int, int]` evaluated", (3, 10)),
    ("Opt = Pair | None\n", "`Pair | None` evaluated", (3, 10)),
    ("ok = isinstance(x, (int, float | complex))\n", "`float | complex` evaluated", (3, 10)),
    ("def f(x: int | None): pass\n", "`int | None` evaluated", (3, 10)),  # no __future__ import: evaluated
    ("import tomllib\n", "import tomllib needs Python 3.11", (3, 11)),
    ("from itertools import pairwise\n", "itertools.pairwise needs Python 3.10", (3, 10)),
    ("import typing\nT = typing.TypeAlias\n", "typing.TypeAlias needs", (3, 10)),
    ("pairs = list(zip(a, b, strict=True))\n", "zip(strict=...) needs Python 3.10", (3, 10)),
    ("from dataclasses import dataclass\n@dataclass(slots=True)\nclass A:\n    x: int\n", "dataclass(slots=...)",
     (3, 10)),
    ("n = (5).bit_count()\n", ".bit_count()", (3, 10)),
    ("raise ExceptionGroup('e', [ValueError()])\n", "ExceptionGroup needs Python 3.11", (3, 11)),
])
def test_floor_check_finds_what_python_3_9_cannot_run(source, what, needs):
    found = newer_than(source, (3, 9))
    assert len(found) == 1 and what in found[0], found
    if sys.version_info[:2] >= needs:  # the running parser reads the grammar of its own version at most
        assert newer_than(source, needs) == []  # fine from the version that brought it


@pytest.mark.parametrize("source", [
    "from __future__ import annotations\nPair = 'int | tuple[int, int]'\ndef f(x: int | None) -> Pair | None: pass\n",
    "from __future__ import annotations\nclass A:\n    x: list[int] | None = None\n",
    "import os\nflags = os.O_WRONLY | os.O_CREAT | os.O_EXCL\n",
    "import doctest\nflags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE\n",
    "mask = a | b\nbits = 1 | 2\n",
    "try:\n    import tomllib\nexcept ModuleNotFoundError:\n    import tomli as tomllib\n",
    "import sys\nif sys.version_info >= (3, 10):\n    from itertools import pairwise\n",
    "with (open('a') as f, open('b') as g):\n    pass\n",  # 3.9's parser takes parenthesized context managers
    "from typing import Optional, Union\nPair = Union[int, tuple[int, int]]\nx: Optional[Pair] = None\n",
])
def test_floor_check_accepts_what_python_3_9_runs(source):
    assert newer_than(source, (3, 9)) == []


def test_wheel_ships_py_typed():
    """PEP 561: the marker sits in the installed package (so the wheel carried it) and is empty (not
    'partial\\n': every module is typed inline)."""
    marker = importlib.resources.files("cnn_core").joinpath("py.typed")
    assert marker.is_file()
    assert marker.read_text() == ""


def _stated_floor(readme: str) -> tuple[int, int]:
    m = re.search(r"Supported Pythons: CPython (\d+)\.(\d+) and newer", readme)
    assert m, "README.md: expected 'Supported Pythons: CPython X.Y and newer' in the install section"
    return int(m[1]), int(m[2])


def test_readme_states_the_floor_of_requires_python():
    """The installed metadata's long description is README.md at build time."""
    assert _stated_floor(METADATA.get("Description") or METADATA.get_payload()) == FLOOR


def test_source_tree_requires_python_matches_installed_and_readme():
    pyproject = ROOT / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("no pyproject.toml next to the tests (tests copied away from the sources)")
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    assert project["name"] == "cnn_core"
    assert floor_of(project["requires-python"]) == FLOOR
    assert project["requires-python"] == METADATA["Requires-Python"]
    assert _stated_floor((ROOT / "README.md").read_text(encoding="utf-8")) == FLOOR
    assert f'requires-python = "{project["requires-python"]}"' in (ROOT / "README.md").read_text(encoding="utf-8")

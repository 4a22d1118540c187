"""Static checks of the code that ships (the top-level .py files, dps/, nodes/): none of what the Comfy
Registry's scanner flags and none of what would let a measurement file or a prompt run code.

No process or network modules, no pickle-like deserialisers, no eval/exec/compile/__import__,
no os.system/os.popen/exec*/spawn*, no reading of environment variables, no torch.load at all, and
no np.load that allows pickle. Names are resolved through the imports (`import numpy as np`,
`from os import environ`). The checker is tested on bad snippets too, so it is known to fail.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

FORBIDDEN_MODULES = {
    "subprocess", "socket", "pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "marshal", "shelve",
    "urllib", "urllib2", "urllib3", "http.client", "httplib", "requests", "httpx", "aiohttp", "ftplib", "smtplib",
    "telnetlib", "pty", "ctypes",
}
FORBIDDEN_BUILTINS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_NAMES = {
    "os.system", "os.popen", "os.environ", "os.environb", "os.getenv", "os.getenvb", "os.putenv", "os.unsetenv",
    "os.fork", "os.forkpty", "os.posix_spawn", "os.posix_spawnp", "torch.load", "torch.serialization.load",
    "builtins.eval", "builtins.exec", "builtins.compile", "builtins.__import__",
    "importlib.import_module", "importlib.__import__",
}
FORBIDDEN_PREFIXES = ("os.exec", "os.spawn")


def shipped_files() -> list[pathlib.Path]:
    files = sorted(ROOT.glob("*.py"))
    for folder in ("dps", "nodes"):
        files += sorted(path for path in (ROOT / folder).rglob("*.py") if "__pycache__" not in path.parts)
    return files


def forbidden_module(name: str) -> bool:
    return any(name == module or name.startswith(module + ".") for module in FORBIDDEN_MODULES)


class Checker(ast.NodeVisitor):
    """Collects problems in one module: (line, message)."""

    def __init__(self):
        self.aliases: dict[str, str] = {}  # local name -> dotted origin, from the imports
        self.problems: list[tuple[int, str]] = []

    def flag(self, node: ast.AST, message: str) -> None:
        self.problems.append((getattr(node, "lineno", 0), message))

    # -- imports --------------------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if forbidden_module(alias.name):
                self.flag(node, f"imports {alias.name}")
            local = alias.asname or alias.name.split(".")[0]
            self.aliases[local] = alias.name if alias.asname else local
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level == 0:
            if forbidden_module(module):
                self.flag(node, f"imports from {module}")
            for alias in node.names:
                origin = f"{module}.{alias.name}"
                if forbidden_module(origin):
                    self.flag(node, f"imports {origin}")
                self.check_name(node, origin)
                self.aliases[alias.asname or alias.name] = origin
        self.generic_visit(node)

    # -- names ----------------------------------------------------------------------------------
    def dotted(self, node: ast.AST) -> str | None:
        """'numpy.load' for `np.load` after `import numpy as np`; None for anything not a plain name chain."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.dotted(node.value)
            return None if base is None else f"{base}.{node.attr}"
        return None

    def check_name(self, node: ast.AST, name: str) -> None:
        if name in FORBIDDEN_NAMES or name.startswith(FORBIDDEN_PREFIXES):
            self.flag(node, f"uses {name}")

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in FORBIDDEN_BUILTINS and node.id not in self.aliases:
            self.flag(node, f"uses the builtin {node.id}")
        name = self.aliases.get(node.id)
        if name is not None:
            self.check_name(node, name)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = self.dotted(node)
        if name is not None:
            self.check_name(node, name)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = self.dotted(node.func)
        if name in ("numpy.load", "numpy.lib.npyio.load"):
            for keyword in node.keywords:
                if keyword.arg is None:
                    self.flag(node, f"{name} with **kwargs (allow_pickle cannot be checked)")
                elif keyword.arg == "allow_pickle" and not (
                        isinstance(keyword.value, ast.Constant) and keyword.value.value is False):
                    self.flag(node, f"{name} with allow_pickle other than False")
        if isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr") and len(node.args) >= 2:
            target, attribute = node.args[0], node.args[1]
            if isinstance(attribute, ast.Constant) and isinstance(attribute.value, str):
                base = self.dotted(target)
                if base is not None:
                    self.check_name(node, f"{base}.{attribute.value}")
                if attribute.value in FORBIDDEN_BUILTINS:
                    self.flag(node, f"reaches {attribute.value} through getattr")
        self.generic_visit(node)


def problems_in(source: str, filename: str = "<snippet>") -> list[tuple[int, str]]:
    checker = Checker()
    checker.visit(ast.parse(source, filename=filename))
    return checker.problems


def test_the_shipped_files_are_found():
    names = {path.relative_to(ROOT).as_posix() for path in shipped_files()}
    assert {"__init__.py", "dps/io/loader.py", "dps/io/sandbox.py", "dps/guidance/registry.py", "nodes/sampling_nodes.py",
            "nodes/load_measurement_node.py"} <= names, sorted(names)
    assert not [name for name in names if name.startswith(("tests/", "scripts/", "bench/"))]


@pytest.mark.parametrize("path", shipped_files(), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_shipped_code_has_no_unsafe_calls_or_imports(path):
    problems = problems_in(path.read_text(encoding="utf-8"), str(path))
    assert not problems, "\n".join(f"{path.relative_to(ROOT)}:{line}: {message}" for line, message in problems)


BAD_SNIPPETS = {
    "import subprocess": "imports subprocess",
    "import socket as s": "imports socket",
    "import pickle": "imports pickle",
    "from pickle import loads": "imports from pickle",
    "import urllib.request": "imports urllib.request",
    "from urllib import request": "imports from urllib",
    "import http.client": "imports http.client",
    "from http import client": "imports http.client",
    "import requests": "imports requests",
    "import marshal": "imports marshal",
    "import shelve": "imports shelve",
    "eval('1')": "uses the builtin eval",
    "exec('x = 1')": "uses the builtin exec",
    "code = compile('1', 'f', 'eval')": "uses the builtin compile",
    "m = __import__('os')": "uses the builtin __import__",
    "f = getattr(__builtins__, 'eval')": "reaches eval through getattr",
    "import os\nos.system('ls')": "uses os.system",
    "import os as o\no.popen('ls')": "uses os.popen",
    "from os import system\nsystem('ls')": "uses os.system",
    "import os\nos.execv('/bin/sh', [])": "uses os.execv",
    "import os\nkey = os.environ['HOME']": "uses os.environ",
    "import os\nkey = os.environ.get('HOME')": "uses os.environ",
    "from os import environ": "uses os.environ",
    "import os\nkey = os.getenv('HOME')": "uses os.getenv",
    "import os\nget = getattr(os, 'getenv')": "uses os.getenv",
    "import torch\nx = torch.load('f.pt', weights_only=True)": "uses torch.load",
    "import torch as t\nx = t.load('f.pt')": "uses torch.load",
    "from torch import load\nx = load('f.pt')": "uses torch.load",
    "import numpy as np\nx = np.load('f.npy', allow_pickle=True)": "numpy.load with allow_pickle other than False",
    "import numpy\nflag = True\nx = numpy.load('f.npy', allow_pickle=flag)": "with allow_pickle other than False",
    "import numpy as np\nx = np.load('f.npy', **options)": "with **kwargs",
}


@pytest.mark.parametrize("source, expected", list(BAD_SNIPPETS.items()), ids=list(BAD_SNIPPETS))
def test_the_checker_flags_each_bad_snippet(source, expected):
    problems = problems_in(source)
    assert any(expected in message for _, message in problems), (source, problems)


def test_the_checker_passes_clean_code():
    source = "\n".join([
        "import os, re, json, hashlib, zlib",
        "import numpy as np",
        "import torch",
        "from safetensors import safe_open",
        "pattern = re.compile('x')",
        "model = torch.compile",
        "x = np.load('f.npy', allow_pickle=False)",
        "y = np.load('f.npy')",
        "path = os.path.join('a', 'b')",
        "def evaluate(model): return model.eval()",
    ])
    assert problems_in(source) == []

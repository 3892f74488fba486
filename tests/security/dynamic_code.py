"""A static check of Python source for code execution and injection sinks, by ``ast``.

``findings(source, module)`` lists, as ``"module:line: what"``, every use of:

- ``eval``, ``exec``, ``compile``, ``__import__`` or ``importlib.import_module``
  with an argument that is not a constant;
- a deserializer that can run code: pickle, marshal, shelve, dill,
  cloudpickle, joblib, ``torch.load`` without ``weights_only=True``,
  ``numpy.load`` with ``allow_pickle`` other than ``False``;
- ``subprocess``, ``os.system``/``popen``/``exec*``/``spawn*``, ``pty`` and
  asyncio's subprocesses, outside ``SUBPROCESS_ALLOWED``;
- ``yaml.load`` without a safe loader, ``yaml.unsafe_load``/``full_load``;
- jinja2 templates without autoescaping;
- SQL as a string that is not constant: ``text()``, ``literal_column()``,
  ``exec_driver_sql``, ``executescript`` and alembic's ``op.execute`` take only
  a constant string or a module-level name bound to one; any ``execute`` call
  is refused a string built by f-string, ``%``, ``+``, ``format`` or ``join``;
- Redis Lua (``eval``, ``evalsha``, ``register_script``) that is not a
  constant script.

Names are resolved through the module's imports, so ``import pickle as p``
and ``from yaml import load`` are caught as well.
"""

from __future__ import annotations

import ast
import builtins

# modules that may start processes, and why
SUBPROCESS_ALLOWED = {
    "modelyard.governance.prices": (
        "runs `python -m modelyard.governance.prices_resolve` with this interpreter at start: "
        "a fixed argv, no shell; the model names it prices go in as JSON on stdin"
    ),
}

# (module, function) whose SQL text is a variable that the tests verify holds no request data
VERIFIED_SQL = {
    ("modelyard.storage.request_log", "_insert"): (
        "its sql is _positional_sql's: SQLAlchemy's compilation of the ledger tables' INSERT, "
        "every value a ? placeholder (test_no_dynamic_code checks the compiled text)"
    ),
}

DYNAMIC = {"eval", "exec", "compile", "__import__", "importlib.import_module"}
UNPICKLERS = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve"}
UNPICKLE_CALLS = {"load", "loads", "Unpickler", "open"}
SUBPROCESS_MODULES = {"subprocess", "pty", "commands"}
OS_PROCESS = ("os.system", "os.popen", "os.exec", "os.spawn", "os.posix_spawn", "os.fork")
ASYNC_PROCESS = {"asyncio.create_subprocess_exec", "asyncio.create_subprocess_shell"}
SAFE_YAML_LOADERS = {"yaml.SafeLoader", "yaml.CSafeLoader", "yaml.BaseLoader", "yaml.CBaseLoader"}
UNSAFE_YAML = {"yaml.unsafe_load", "yaml.unsafe_load_all", "yaml.full_load", "yaml.full_load_all"}
SQL_TEXT = {
    "sqlalchemy.text",
    "sqlalchemy.sql.text",
    "sqlalchemy.sql.expression.text",
    "sqlalchemy.literal_column",
    "sqlalchemy.sql.literal_column",
    "alembic.op.execute",
}
SQL_TEXT_METHODS = {"exec_driver_sql", "executescript"}
SQL_EXECUTE_METHODS = {"execute", "executemany"}
LUA_METHODS = {"eval", "evalsha", "register_script"}


class _Checker(ast.NodeVisitor):
    def __init__(self, module: str):
        self.module = module
        self.aliases: dict[str, str] = {}
        self.constants: set[str] = set()  # module-level names bound to a constant SQL or script
        self.built: set[str] = set()  # names bound anywhere to a string built at run time
        self.out: list[str] = []
        self.functions: list[str] = []

    # ------------------------------------------------------------ bookkeeping

    def report(self, node: ast.AST, what: str) -> None:
        self.out.append(f"{self.module}:{getattr(node, 'lineno', 0)}: {what}")

    def prepare(self, tree: ast.Module) -> None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.aliases[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0]
                    )
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name) and _stringy(node.value):
                        self.built.add(target.id)
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if self._constant_sql(node.value):
                    self.constants |= {t.id for t in targets if isinstance(t, ast.Name)}

    def qualified(self, node: ast.expr) -> str | None:
        """``a.b.c`` with ``a`` resolved through the imports; None for calls on other values."""
        if isinstance(node, ast.Name):
            if node.id in self.aliases:
                return self.aliases[node.id]
            return node.id if hasattr(builtins, node.id) else f"<local>.{node.id}"
        if isinstance(node, ast.Attribute):
            base = self.qualified(node.value)
            return None if base is None else f"{base}.{node.attr}"
        return None

    def _constant_sql(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return True
        if isinstance(node, ast.IfExp):
            return self._constant_sql(node.body) and self._constant_sql(node.orelse)
        if isinstance(node, ast.Call) and node.args and self.qualified(node.func) in SQL_TEXT:
            return isinstance(node.args[0], ast.Constant)
        return False

    def _constant_arg(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            where = (self.module, self.functions[-1] if self.functions else "")
            return node.id in self.constants or where in VERIFIED_SQL
        return self._constant_sql(node)

    # ------------------------------------------------------------ the rules

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._import(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.level == 0:
            self._import(node, node.module)

    def _import(self, node: ast.AST, name: str) -> None:
        root = name.split(".")[0]
        if root in SUBPROCESS_MODULES and self.module not in SUBPROCESS_ALLOWED:
            self.report(node, f"imports {name}: processes are started only in SUBPROCESS_ALLOWED")

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        name = self.qualified(node.func)
        method = node.func.attr if isinstance(node.func, ast.Attribute) else None
        args = [*node.args, *(k.value for k in node.keywords)]
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        if name in DYNAMIC and not all(isinstance(a, ast.Constant) for a in args):
            self.report(node, f"{name}() with an argument that is not a constant")
        if name is not None:
            self._deserializer(node, name, kw)
            self._process(node, name)
            self._yaml(node, name, kw)
            self._jinja(node, name, kw)
        first = node.args[0] if node.args else None
        if (name in SQL_TEXT or method in SQL_TEXT_METHODS) and (
            first is None or not self._constant_arg(first)
        ):
            self.report(node, f"{name or method}() with SQL that is not a constant string")
        elif method in SQL_EXECUTE_METHODS and first is not None and self._built(first):
            self.report(node, f"{method}() with SQL built from strings at run time")
        lua = method in LUA_METHODS and name not in DYNAMIC
        if lua and first is not None and not self._constant_arg(first):
            self.report(node, f"{method}() with a Lua script that is not a constant")

    def _built(self, node: ast.expr) -> bool:
        return _stringy(node) or (isinstance(node, ast.Name) and node.id in self.built)

    def _deserializer(self, node: ast.Call, name: str, kw: dict[str, ast.expr]) -> None:
        root, _, call = name.rpartition(".")
        unpickles = root in UNPICKLERS and call in UNPICKLE_CALLS
        if unpickles or name in ("joblib.load", "pandas.read_pickle", "jsonpickle.decode"):
            self.report(node, f"{name}(): deserializing this format can run code")
        elif name == "torch.load" and not _is(kw.get("weights_only"), True):
            self.report(node, "torch.load() without weights_only=True can run code")
        elif name == "numpy.load" and "allow_pickle" in kw and not _is(kw["allow_pickle"], False):
            self.report(node, "numpy.load() with allow_pickle can run code")

    def _process(self, node: ast.Call, name: str) -> None:
        starts = (
            name.split(".")[0] in SUBPROCESS_MODULES
            or name.startswith(OS_PROCESS)
            or name in ASYNC_PROCESS
        )
        if starts and self.module not in SUBPROCESS_ALLOWED:
            self.report(node, f"{name}() starts a process outside SUBPROCESS_ALLOWED")

    def _yaml(self, node: ast.Call, name: str, kw: dict[str, ast.expr]) -> None:
        if name in UNSAFE_YAML:
            self.report(node, f"{name}() builds arbitrary Python objects")
        elif name in ("yaml.load", "yaml.load_all"):
            loader = kw.get("Loader") or (node.args[1] if len(node.args) > 1 else None)
            if loader is None or self.qualified(loader) not in SAFE_YAML_LOADERS:
                self.report(node, f"{name}() without a safe Loader")

    def _jinja(self, node: ast.Call, name: str, kw: dict[str, ast.expr]) -> None:
        if not name.startswith("jinja2.") or name.rpartition(".")[2] not in (
            "Environment",
            "Template",
            "SandboxedEnvironment",
        ):
            return
        escape = kw.get("autoescape")
        on = _is(escape, True) or (
            isinstance(escape, ast.Call)
            and self.qualified(escape.func) == "jinja2.select_autoescape"
        )
        if not on:
            self.report(node, f"{name}() without autoescape")


def _is(node: ast.expr | None, value: bool) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def _stringy(node: ast.expr) -> bool:
    """A string built at run time: f-string, ``%``, ``+``, ``str.format`` or ``str.join``."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        sides = (node.left, node.right)
        return any(
            _stringy(s) or (isinstance(s, ast.Constant) and isinstance(s.value, str)) for s in sides
        )
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in ("format", "join") and isinstance(node.func.value, ast.Constant)
    return False


def findings(source: str, module: str) -> list[str]:
    tree = ast.parse(source)
    checker = _Checker(module)
    checker.prepare(tree)
    checker.visit(tree)
    return checker.out

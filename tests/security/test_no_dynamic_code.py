"""No code execution or injection sinks in ``src/modelyard``: every module parsed and checked.

The checker is ``tests.security.dynamic_code``; the snippets below prove that
it catches each sink (a checker that never fails proves nothing), and that
what the gateway does on purpose (its one subprocess, its compiled INSERTs)
is allowed by name and verified.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from modelyard.storage.request_log import RequestRecord, _positional_sql
from modelyard.storage.schema import decisions_table, requests_table
from tests.security.dynamic_code import SUBPROCESS_ALLOWED, VERIFIED_SQL, findings

SRC = Path(__file__).resolve().parents[2] / "src"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "modelyard").rglob("*.py")):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        out[name] = path
    return out


def test_no_module_has_a_dynamic_code_or_injection_sink() -> None:
    modules = _modules()
    assert len(modules) > 50  # the walk found the package
    found = [f for name, path in modules.items() for f in findings(path.read_text(), name)]
    assert not found, "\n".join(found)


def test_the_allow_lists_name_live_code() -> None:
    """An allow-list entry whose module no longer does the thing would hide a new one."""
    modules = _modules()
    for module in SUBPROCESS_ALLOWED:
        assert "subprocess" in modules[module].read_text(), module
    for module, function in VERIFIED_SQL:
        tree = ast.parse(modules[module].read_text())
        names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert function in names, (module, function)


def test_the_compiled_inserts_hold_only_placeholders(tmp_path: Path) -> None:
    """What VERIFIED_SQL allows: the ledger's INSERT text, compiled once, values all bound.

    None means the dialect's order differs and the statement object is executed instead.
    """
    inserts = [
        (requests_table, RequestRecord._fields, "id"),
        (decisions_table, ("request_id", "ts", "route", "chosen", "body", "team"), None),
    ]
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        compiled = [(_positional_sql(engine, t, c, u), c) for t, c, u in inserts]
    finally:
        engine.dispose()
    names = r"[a-z_]+(?:, [a-z_]+)*"
    marks = r"\?(?:, \?)*"
    conflict = r"( ON CONFLICT \(id\) DO NOTHING)?"
    pattern = rf"INSERT INTO [a-z_]+ \({names}\) VALUES \({marks}\){conflict}"
    checked = 0
    for sql, columns in compiled:
        if sql is None:
            continue
        one_line = " ".join(sql.split())
        assert re.fullmatch(pattern, one_line), one_line
        assert one_line.count("?") == len(columns)
        checked += 1
    assert checked  # at least one INSERT takes the compiled path


BAD = {
    "eval of a variable": "def f(x):\n    return eval(x)\n",
    "exec of a variable": "exec(code)\n",
    "compile of a variable": "compile(src, 'x', 'exec')\n",
    "__import__ of a variable": "__import__(name)\n",
    "import_module of a variable": "import importlib\nimportlib.import_module(name)\n",
    "pickle.loads": "import pickle\npickle.loads(data)\n",
    "pickle under an alias": "import pickle as p\np.load(f)\n",
    "from pickle import loads": "from pickle import loads\nloads(b)\n",
    "marshal.loads": "import marshal\nmarshal.loads(b)\n",
    "shelve.open": "import shelve\nshelve.open(path)\n",
    "torch.load": "import torch\ntorch.load(path)\n",
    "numpy allow_pickle": "import numpy as np\nnp.load(path, allow_pickle=True)\n",
    "import subprocess": "import subprocess\n",
    "subprocess.run": "import subprocess\nsubprocess.run(['ls'])\n",
    "os.system": "import os\nos.system(cmd)\n",
    "os.popen": "import os\nos.popen(cmd)\n",
    "os.execv": "import os\nos.execv(p, a)\n",
    "asyncio subprocess": "import asyncio\nasyncio.create_subprocess_shell(cmd)\n",
    "yaml.load without a Loader": "import yaml\nyaml.load(text)\n",
    "yaml.load with an unsafe Loader": "import yaml\nyaml.load(text, Loader=yaml.Loader)\n",
    "from yaml import load": "from yaml import load, FullLoader\nload(text, FullLoader)\n",
    "yaml.unsafe_load": "import yaml\nyaml.unsafe_load(text)\n",
    "jinja2 Environment": "import jinja2\njinja2.Environment(loader=x)\n",
    "jinja2 Template": "from jinja2 import Template\nTemplate(src)\n",
    "jinja2 autoescape off": "import jinja2\njinja2.Environment(autoescape=False)\n",
    "text() of an f-string": "from sqlalchemy import text\ntext(f'SELECT * FROM t WHERE a={x}')\n",
    "text() of a variable": "import sqlalchemy as sa\ndef f(q):\n    sa.text(q)\n",
    "exec_driver_sql of %": "conn.exec_driver_sql('DELETE FROM t WHERE id = %s' % x)\n",
    "exec_driver_sql of a variable": "def f(conn, q):\n    conn.exec_driver_sql(q)\n",
    "execute of +": "cur.execute('SELECT * FROM t WHERE a = ' + a)\n",
    "execute of format": "cur.execute('SELECT {}'.format(a))\n",
    "execute of a built name": "q = f'SELECT {a}'\ncur.execute(q)\n",
    "alembic op.execute of a variable": "from alembic import op\nop.execute(sql)\n",
    "literal_column of a variable": "from sqlalchemy import literal_column\nliteral_column(c)\n",
    "redis eval of a built script": "async def f(r, s):\n    await r.eval('return ' + s, 0)\n",
}

GOOD = {
    "eval of a constant": "eval('1 + 1')\n",
    "re.compile": "import re\nre.compile(pattern)\n",
    "a method called compile": "engine.compile(x)\n",
    "json": "import json\njson.loads(b)\n",
    "numpy without pickle": "import numpy as np\nnp.load(p, allow_pickle=False)\n",
    "torch weights only": "import torch\ntorch.load(p, weights_only=True)\n",
    "yaml.safe_load": "import yaml\nyaml.safe_load(text)\n",
    "yaml.load with SafeLoader": "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)\n",
    "jinja2 autoescape": "import jinja2\njinja2.Environment(autoescape=True)\n",
    "jinja2 select_autoescape": (
        "from jinja2 import Environment, select_autoescape\n"
        "Environment(autoescape=select_autoescape())\n"
    ),
    "text() of a constant": "from sqlalchemy import text\ntext('SELECT 1')\n",
    "a module-level statement": (
        "from sqlalchemy import text\nQ = text('SELECT 1')\ndef f(c):\n    c.execute(Q)\n"
    ),
    "exec_driver_sql of constants": "c.exec_driver_sql('BEGIN IMMEDIATE' if i else 'BEGIN')\n",
    "execute of a statement object": "def f(conn, query):\n    conn.execute(query)\n",
    "execute with bound parameters": "c.execute('SELECT * FROM t WHERE a = ?', (a,))\n",
    "redis eval of a module constant": "LUA = 'return 1'\nasync def f(r):\n    await r.eval(LUA)\n",
}


@pytest.mark.parametrize("label", sorted(BAD))
def test_the_checker_catches(label: str) -> None:
    assert findings(BAD[label], "snippet"), label


@pytest.mark.parametrize("label", sorted(GOOD))
def test_the_checker_allows(label: str) -> None:
    assert findings(GOOD[label], "snippet") == [], label


def test_eval_added_to_a_gateway_module_fails_the_scan() -> None:
    """The scenario the check exists for: someone adds ``eval(x)`` to a real module."""
    path = _modules()["modelyard.api.openai_api"]
    source = path.read_text() + "\n\ndef _shortcut(x: str) -> object:\n    return eval(x)\n"
    found = findings(source, "modelyard.api.openai_api")
    assert len(found) == 1 and "eval() with an argument that is not a constant" in found[0]


def test_a_subprocess_outside_the_allow_list_fails_even_in_an_allowed_package() -> None:
    source = "import subprocess\nsubprocess.run(['true'])\n"
    assert findings(source, "modelyard.governance.prices") == []
    assert len(findings(source, "modelyard.governance.keys")) == 2

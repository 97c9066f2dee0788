"""The package's shape: imports go from modes down to the stages and common helpers, never up,
with no import cycles; modules and functions stay small enough to read."""
import ast
import os

from conftest import REPO

PACKAGE = os.path.join(REPO, "gait_jax")
# Lower numbers may be imported by higher ones (and a package by itself), never the reverse.
RANK = {"common": 0, "models": 1, "data": 1, "config": 2, "evaluation": 2, "synthetic": 2,
        "training": 3, "search": 3.2, "config_check": 3.5, "modes": 4, "interop": 4, "identify": 4, "main": 5, "benchmarks": 5, "__main__": 6}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
MAX_CLASS_LINES = 150


def _modules():
  for dirpath, _, files in os.walk(PACKAGE):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(dirpath, name)
        rel = os.path.relpath(path, PACKAGE)
        yield rel, ast.parse(open(path).read(), rel)


def _dotted(rel):
  parts = rel[:-3].split(os.sep)
  if parts[-1] == "__init__":
    parts = parts[:-1]
  return ".".join(["gait_jax"] + parts)


def _imports(tree):
  """gait_jax modules a module imports, at top level and inside functions (`from pkg import
  sub` counts as importing pkg.sub when that is a module)."""
  modules = {_dotted(rel) for rel, _ in _modules()} if not hasattr(_imports, "all") else (
      _imports.all)
  _imports.all = modules
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gait_jax"):
      for alias in node.names:
        sub = f"{node.module}.{alias.name}"
        yield sub if sub in modules else node.module
    elif isinstance(node, ast.Import):
      yield from (a.name for a in node.names if a.name.startswith("gait_jax"))


def _rank(dotted):
  top = dotted.split(".")[1] if dotted.count(".") else ""
  return top, RANK.get(top)


def test_every_package_has_a_rank():
  tops = {_rank(_dotted(rel))[0] for rel, _ in _modules()} - {""}
  assert tops <= set(RANK), sorted(tops - set(RANK))


def test_imports_only_go_down():
  wrong = []
  for rel, tree in _modules():
    source, rank = _rank(_dotted(rel))
    if not source:
      continue
    for target in _imports(tree):
      top, target_rank = _rank(target)
      if top != source and target_rank is not None and target_rank >= rank:
        wrong.append(f"{rel} imports {target} ({source} {rank} -> {top} {target_rank})")
  assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
  graph = {_dotted(rel): set(_imports(tree)) for rel, tree in _modules()}
  graph = {m: {t for t in deps if t in graph and t != m} for m, deps in graph.items()}
  state = {}

  def visit(node, stack):
    state[node] = "open"
    for dep in sorted(graph[node]):
      if state.get(dep) == "open":
        raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(dep):] + [dep]))
      if dep not in state:
        visit(dep, stack + [dep])
    state[node] = "done"

  for module in sorted(graph):
    if module not in state:
      visit(module, [module])


def test_modules_functions_and_classes_are_small():
  big = []
  for rel, tree in _modules():
    lines = tree.body[-1].end_lineno if tree.body else 0
    if lines > MAX_MODULE_LINES:
      big.append(f"{rel}: {lines} lines")
    for node in ast.walk(tree):
      length = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and length > MAX_FUNCTION_LINES:
        big.append(f"{rel}: function {node.name} is {length} lines (at most {MAX_FUNCTION_LINES})")
      if isinstance(node, ast.ClassDef) and length > MAX_CLASS_LINES:
        big.append(f"{rel}: class {node.name} is {length} lines (at most {MAX_CLASS_LINES})")
  assert not big, "\n".join(big)


def test_no_module_name_is_used_twice():
  """`from gait_jax.x import state` and `from gait_jax.y import state` read alike: every module
  name says what it is on its own."""
  seen = {}
  for rel, _ in _modules():
    name = os.path.basename(rel)
    if name != "__init__.py":
      seen.setdefault(name, []).append(rel)
  twice = {name: rels for name, rels in seen.items() if len(rels) > 1}
  assert not twice, twice


def test_no_test_imports_another_test_file():
  tests = os.path.join(REPO, "tests")
  names = {f[:-3] for _, _, fs in os.walk(tests) for f in fs if f.startswith("test_")}
  wrong = []
  for dirpath, _, files in os.walk(tests):
    for f in files:
      if f.endswith(".py"):
        tree = ast.parse(open(os.path.join(dirpath, f)).read())
        for node in ast.walk(tree):
          mods = ([node.module] if isinstance(node, ast.ImportFrom) and node.module else
                  [a.name for a in node.names] if isinstance(node, ast.Import) else [])
          wrong += [f"{f} imports {m}" for m in mods if m.split(".")[-1] in names]
  assert not wrong, wrong

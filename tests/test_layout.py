"""The package layout: one-way dependencies, no import circles, a core that needs only torch/numpy/safetensors."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

SRC = Path(__file__).resolve().parents[1] / "src"
# Each part of the package may import only parts of a lower rank (or itself).
RANK = {
    "errors": 0,
    "progress": 0,
    "runtime": 0,
    "atomic": 0,
    "layers": 1,
    "plotting": 1,  # on errors and atomic; below every part that draws
    "models": 2,
    "measure": 3,
    "io": 3,
    "factory": 4,
    "data": 4,
    "deploy": 5,
    "eval": 5,
    "train": 6,
    "experiment": 7,
    "bench": 7,
    "study": 8,
    "search": 8,
    "cli": 9,
    "__init__": 10,
}
# What a core install must never import.
HEAVY = [
    "matplotlib",
    "sklearn",
    "mlxtend",
    "tqdm",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "timm",
    "torchvision",
    "PIL",
    "yaml",
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "mixnet").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every mixnet module a file imports, anywhere (top level, functions, TYPE_CHECKING blocks)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "mixnet"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mixnet":
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in modules else node.module)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_belongs_to_a_ranked_part():
    assert {_part(m) for m in _modules()} <= set(RANK)


def test_dependencies_point_one_way():
    wrong = [
        f"{m} -> {t}"
        for m, targets in _graph().items()
        for t in targets
        if _part(t) != _part(m) and RANK[_part(t)] >= RANK[_part(m)]
    ]
    assert not wrong, "imports against the layering: " + ", ".join(sorted(wrong))


def test_no_import_circles():
    graph, state, cycles = _graph(), {}, []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import circles: " + "; ".join(cycles)


@pytest.mark.slow
def test_core_runs_with_only_torch_numpy_safetensors(tmp_path):
    """With every optional package made unimportable: create, run, save, load, optimize, count, `mixnet info`."""
    code = f"""
import sys
for name in {HEAVY + ["huggingface_hub"]!r}:
    sys.modules[name] = None  # any import of it raises ImportError
import torch, mixnet
model = mixnet.create_model("tf_mixnet_s", num_classes=3).eval()
x = torch.randn(1, 3, 64, 64)
path = mixnet.save_model({str(tmp_path / "m.safetensors")!r}, model)
loaded, spec = mixnet.load_model(path)
assert torch.equal(loaded(x), model(x)) and spec.architecture == "tf_mixnet_s"
assert (mixnet.optimize_for_inference(model)(x) - model(x)).abs().max() < 1e-4
assert mixnet.complexity("mixnet_s").params == 4_134_606
from mixnet.cli import main
assert main(["info"]) == 0
assert main(["eval"]) == 2  # a clear "pip install 'mixnet[train]'" instead of a traceback
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pip install 'mixnet[train]'" in proc.stderr


def test_import_mixnet_imports_nothing_optional():
    code = f"import sys, mixnet; print([m for m in {HEAVY!r} if m in sys.modules and m != 'tqdm'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    # tqdm is left out of this check: torch itself imports it when it is installed.
    assert out.stdout.strip() == "[]"


def test_complexity_is_the_function():
    import mixnet

    assert callable(mixnet.complexity) and mixnet.complexity("mixnet_s", img_size=224).params == 4_134_606


def test_pyproject_core_dependencies_and_license():
    project = tomllib.loads((SRC.parent / "pyproject.toml").read_text())["project"]
    core = {d.split(">")[0].split("=")[0].split("[")[0].strip() for d in project["dependencies"]}
    assert core == {"torch", "numpy", "safetensors"}
    assert isinstance(project["license"], str)  # an SPDX expression, not the deprecated table
    assert {"train", "export", "bench", "hub", "all"} <= set(project["optional-dependencies"])


@pytest.mark.parametrize("forbidden", ["/work/", "../shared", "shared/REFERENCE", "issue #", "issue 7"])
def test_docs_and_docstrings_name_nothing_outside_the_repository(forbidden):
    roots = [SRC / "mixnet", SRC.parent / "docs", SRC.parent / "README.md", SRC.parent / "benchmarks"]
    files = [p for r in roots for p in ([r] if r.is_file() else r.rglob("*")) if p.suffix in (".py", ".md")]
    hits = [str(p.relative_to(SRC.parent)) for p in files if forbidden in p.read_text()]
    assert not hits, f"{forbidden!r} in {hits}"

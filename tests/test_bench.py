"""``mixnet bench`` end to end at a tiny size: every contender runs and the outputs are written; exported files
timed beside their PyTorch model; the profiles; the scripts under benchmarks/."""

import ast
import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mixnet.bench.suite import INFERENCE_CONTENDERS, TRAINING_CONTENDERS, read_rows
from mixnet.cli import main


@pytest.mark.slow
def test_bench_cli_writes_csv_markdown_and_plot(tmp_path, capsys):
    # Two batch sizes: the second reuses the exports of the first, which must hold the same weights.
    args = ["bench", "--model", "mixnet_s", "--batch-size", "1,2", "--img-size", "32", "--rounds", "1"]
    args += ["--train", "--train-settings", "2x32", "--out", str(tmp_path)]
    assert main(args) == 0
    rows = list(csv.DictReader(open(tmp_path / "bench.csv")))
    again = read_rows(tmp_path / "bench.csv")  # the CSV reads back into rows that redraw the same table
    assert [r.images_per_s for r in again] == [float(r["images_per_s"]) for r in rows]
    inference = {r["contender"] for r in rows if r["kind"] == "inference"}
    assert inference == set(INFERENCE_CONTENDERS)
    assert {r["contender"] for r in rows if r["kind"] == "training"} == set(TRAINING_CONTENDERS)
    assert all(float(r["images_per_s"]) > 0 for r in rows)
    diffs = {r["contender"]: float(r["max_abs_diff"]) for r in rows if r["kind"] == "inference"}
    assert max(d for c, d in diffs.items() if "int8" not in c) <= 1e-3  # all compute the same logits
    md = (tmp_path / "bench.md").read_text()
    assert "threads" in md and "mixnet bench --model mixnet_s" in md and "| mixnet_s | 1 | 32 | ours ORT int8 |" in md
    assert "Intel" in md or "cores" in md
    assert (tmp_path / "bench.png").stat().st_size > 10_000


def test_bad_bench_arguments_are_named(capsys):

    for args in (["--threads", "0"], ["--train-settings", "2x32x4"], ["--batch-size", "1,x"], ["--profile", "gpu"]):
        with pytest.raises(SystemExit):
            main(["bench", *args])
        assert "error" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_peers_every_network_in_every_runtime(tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from mixnet.bench.peers import GEMM, PUBLISHED_TOP1, RUNTIMES, read_rows

    # A separate process: OpenVINO's native runtime stays out of the test worker.
    exe = shutil.which("mixnet", path=str(Path(sys.executable).parent))
    args = [exe, "bench", "--peers", "--peer-models", "mobilenetv2_100", "--batch-size", "1", "--img-size", "32"]
    args += ["--rounds", "1", "--threads", "1", "--no-progress", "--out", str(tmp_path)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_rows(tmp_path / "peers.csv")
    got = {(r.impl, r.model, r.runtime) for r in rows}
    for impl, model in (("ours", "mixnet_s"), ("timm", "mixnet_s"), ("timm", "mobilenetv2_100")):
        assert {(impl, model, rt) for rt in RUNTIMES} <= got
    assert all(r.images_per_s > 0 and 0 < r.pct_of_peak and r.peak_gflops > 0 for r in rows)
    assert all(r.max_abs_diff <= 1e-3 for r in rows)  # every runtime computes its network's logits
    assert {r.top1 for r in rows if r.model == "mobilenetv2_100"} == {PUBLISHED_TOP1["mobilenetv2_100"][0]}
    md = (tmp_path / "peers.md").read_text()
    assert "timm's mixnet_s in its best runtime" in md and "MobileNetV3" not in md.split("### The ratios")[1]
    assert GEMM not in {r.label for r in rows} and (tmp_path / "peers.png").stat().st_size > 10_000


@pytest.mark.slow
def test_gpu_script_runs_on_the_cpu_at_a_tiny_size(tmp_path, capsys, monkeypatch):
    """The prepared GPU measurement: its whole path (bf16 autocast, both kinds, the outputs) on the CPU."""
    import importlib.util
    from pathlib import Path

    import torch

    spec = importlib.util.spec_from_file_location("gpu_bench", Path(__file__).parents[1] / "benchmarks" / "gpu.py")
    gpu = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_bench", gpu)  # its dataclass looks its module up there
    spec.loader.exec_module(gpu)
    if not torch.cuda.is_available():
        assert gpu.main(["--out", str(tmp_path / "none")]) == 2
        assert "no CUDA GPU here" in capsys.readouterr().err
    small = ["--train-batch", "2", "--train-size", "32", "--infer-batch", "2", "--infer-size", "32", "--rounds", "1"]
    assert gpu.main(["--device", "cpu", "--models", "mixnet_s", *small, "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "gpu.csv")))
    assert {(r["kind"], r["contender"]) for r in rows} == {
        ("training", "timm"),
        ("training", "timm (A/A)"),
        ("training", "ours"),
        ("training", "ours fused"),
        ("inference", "timm"),
        ("inference", "ours"),
        ("inference", "ours optimized"),
    }
    assert all(float(r["images_per_s"]) > 0 and r["amp"] == "bf16" for r in rows)
    assert "| mixnet_s | inference | ours optimized |" in (tmp_path / "gpu.md").read_text()


def _mixnet(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """The CLI in its own process: OpenVINO's native runtime stays out of the test worker."""
    exe = shutil.which("mixnet", path=str(Path(sys.executable).parent))
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny model's weights and its exports: fp32 .onnx, int8 .onnx and OpenVINO .xml at 32 px."""
    import torch

    from mixnet import create_model
    from mixnet.deploy.export import to_onnx
    from mixnet.deploy.quantize import quantize_onnx
    from mixnet.io.save import save_model

    d = tmp_path_factory.mktemp("exported")
    torch.manual_seed(0)
    model = create_model("mixnet_s", num_classes=10).eval()
    save_model(d / "net.safetensors", model)
    to_onnx(model, d / "net.onnx", img_size=32)
    calib = [torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)).numpy()]
    quantize_onnx(d / "net.onnx", d / "net.int8.onnx", calibration=calib)
    code = "import openvino as ov, sys; ov.save_model(ov.convert_model(sys.argv[1]), sys.argv[2])"
    done = subprocess.run([sys.executable, "-c", code, str(d / "net.onnx"), str(d / "net.xml")], timeout=300)
    assert done.returncode == 0
    return d


@pytest.mark.slow
def test_bench_times_exported_files_beside_the_pytorch_model(exported, tmp_path):
    files = ",".join(str(exported / f) for f in ("net.onnx", "net.int8.onnx", "net.xml"))
    args = ["bench", "--model", files, "--weights", str(exported / "net.safetensors"), "--batch-size", "1,2"]
    proc = _mixnet(*args, "--rounds", "1", "--threads", "1", "--no-progress", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_rows(tmp_path / "bench.csv")
    want = {"PyTorch eager", "PyTorch optimized", "net.onnx (ORT)", "net.int8.onnx (ORT int8)", "net.xml (OpenVINO)"}
    assert {r.contender for r in rows if r.batch == 1} == want == {r.contender for r in rows if r.batch == 2}
    assert all(r.kind == "exported" and r.img_size == 32 and r.images_per_s > 0 for r in rows)
    # Every fp32 file computes the PyTorch model's logits (checked before timing); int8 is near them.
    assert all(r.max_abs_diff <= 1e-3 for r in rows if "int8" not in r.contender)
    assert all(0 < r.max_abs_diff < 0.5 for r in rows if "int8" in r.contender)
    assert {r.vs_timm_eager for r in rows if r.contender == "PyTorch eager"} == {1.0}
    assert "| mixnet_s | 1 | 32 | net.xml (OpenVINO) |" in (tmp_path / "bench.md").read_text()

    # Without weights the first fp32 file is the reference.
    proc = _mixnet(
        "bench", "--model", files, "--batch-size", "1", "--rounds", "1", "--no-progress", "--out", str(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_rows(tmp_path / "bench.csv")
    assert [r.contender for r in rows][0] == "net.onnx (ORT)" and rows[0].vs_timm_eager == 1.0
    assert all(r.max_abs_diff <= 1e-3 for r in rows if "int8" not in r.contender)


def test_bench_file_arguments_are_checked(tmp_path, capsys):
    for args, problem in (
        (["--model", f"{tmp_path}/a.onnx,mixnet_s"], "mixes exported files with models"),
        (["--model", f"{tmp_path}/missing.xml"], "not found"),
        (["--model", "mixnet_s", "--weights", f"{tmp_path}/w.safetensors"], "--weights goes with exported files"),
    ):
        assert main(["bench", *args, "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert problem in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_profiles_write_their_tables(tmp_path):
    """``--profile ort|openvino|train`` at a tiny size: each writes its markdown with every network."""
    tiny = ["--peer-models", "mobilenetv3_large_100", "--batch-size", "1", "--img-size", "32", "--threads", "1"]
    tiny += ["--train-settings", "2x32", "--profile-runs", "1", "--out", str(tmp_path)]
    for kind in ("ort", "openvino", "train"):
        proc = _mixnet("bench", "--profile", kind, *tiny)
        assert proc.returncode == 0, proc.stderr[-3000:]
    ort = (tmp_path / "ort_profile_b1.md").read_text()
    header = "| op | ours mixnet_s | ours mixnet_s int8 | timm mixnet_s | timm mobilenetv3_large_100 |"
    assert header in ort and "| **model_run (ms)** |" in ort and "mixnet bench --profile ort" in ort
    ov = (tmp_path / "ov_profile_b1.md").read_text()
    assert "| kind | ours mixnet_s | timm mixnet_s | timm mobilenetv3_large_100 |" in ov
    assert "| dense 1x1 |" in ov and "Best case for ours mixnet_s against timm mobilenetv3_large_100" in ov
    train = (tmp_path / "train_profile.md").read_text()
    assert "### batch 2, 32 px" in train and "| convolution backward |" in train and "| **total** |" in train


BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.mark.parametrize("script", sorted(BENCHMARKS.rglob("*.py")), ids=lambda p: p.name)
def test_benchmark_scripts_do_no_work_at_import(script):
    """Importing a script only defines things: the work runs under ``if __name__ == "__main__":``."""
    allowed = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)
    body = ast.parse(script.read_text()).body
    for node in body[1:] if isinstance(body[0], ast.Expr) else body:  # the docstring first
        if isinstance(node, ast.If):
            assert ast.unparse(node.test) == "__name__ == '__main__'", ast.unparse(node)
            continue
        assert isinstance(node, allowed), f"{script.name}:{node.lineno} runs at import: {ast.unparse(node)[:80]}"
        if isinstance(node, (ast.Assign, ast.AnnAssign)):  # constants, not calls that compute
            calls = [n for n in ast.walk(node) if isinstance(n, ast.Call)]
            assert all(ast.unparse(c.func) in ("Path", "Path(__file__).resolve") for c in calls), ast.unparse(node)


@pytest.mark.parametrize("script", sorted(BENCHMARKS.rglob("*.py")), ids=lambda p: p.name)
def test_benchmark_scripts_import_names_that_exist(script):
    """Every ``from mixnet... import name`` of a script, inside its functions too, names something mixnet has:
    a script runs its imports only when it runs, so a renamed function would otherwise go unnoticed."""
    import importlib

    def exists(module: str, name: str) -> bool:
        mod = importlib.import_module(module)
        submodule = hasattr(mod, "__path__") and importlib.util.find_spec(f"{module}.{name}") is not None
        return hasattr(mod, name) or submodule

    missing = [
        f"{node.module}.{a.name}"
        for node in ast.walk(ast.parse(script.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mixnet"
        for a in node.names
        if not exists(node.module, a.name)
    ]
    assert not missing, f"{script.name} imports what mixnet lacks: {missing}"

"""``signscope bench`` at a tiny size on the CPU, and the precision options of the training
loop (``--amp``) that the benchmark and ``signscope train`` share."""

import io
import json

import pytest
from conftest import tiny_mlp_train
from rich.console import Console

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from signscope.cli import main  # noqa: E402
from trainers.bench import EPOCH_IMAGES, BenchConfig, run_bench  # noqa: E402
from trainers.config import resolve_config  # noqa: E402
from trainers.loop import amp_label, make_optimizer, make_scaler, train_one_epoch  # noqa: E402
from trainers.progress import Reporter  # noqa: E402
from trainers.pruning import MaskEnforcer  # noqa: E402
from trainers.train import train  # noqa: E402

TINY = [
    "--device",
    "cpu",
    "--model",
    "mlp",
    "--batch-size",
    "32",
    "--steps",
    "3",
    "--warmup",
    "1",
    "--workers",
    "0",
]


@pytest.mark.slow  # a second of benchmark steps per loop
def test_bench_prints_both_loops_and_their_ratio_as_json(capsys):
    assert main(["bench", *TINY, "--density", "0.3", "--format", "json"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)["bench"]
    assert [r["loop"] for r in rows] == ["signscope", "reference"]
    ours, ref = rows
    for r in rows:
        assert r["device"].startswith("cpu (") and (r["model"], r["batch_size"], r["density"]) == (
            "mlp",
            32,
            0.3,
        )
        assert (r["timed_steps"], r["warmup_steps"]) == (3, 1)
        assert r["images_per_s"] == pytest.approx(3 * 32 / r["seconds"], rel=1e-3)
        assert r["s_per_epoch"] == pytest.approx(EPOCH_IMAGES / r["images_per_s"], rel=1e-3)
    assert (ours["amp"], ours["compile"], ours["workers"]) == (
        "off",
        False,
        None,
    )  # auto = fp32 on CPU
    assert (ref["amp"], ref["workers"], ref["speedup"]) == ("off", 0, 1.0)
    assert ours["speedup"] == pytest.approx(ours["images_per_s"] / ref["images_per_s"], rel=1e-2)
    assert "extrapolated" in captured.err and "x the reference loop" in captured.err


def test_bench_fp16_with_loss_scaling_and_a_profile_without_a_reference():
    tables = run_bench(
        BenchConfig(
            model="mlp",
            batch_size=16,
            steps=2,
            warmup=1,
            device="cpu",
            amp="fp16",
            density=0.5,
            reference=False,
            profile=True,
        )
    )
    (row,) = tables["bench"]
    assert (row["loop"], row["amp"], row["speedup"]) == ("signscope", "fp16", None)
    assert row["images_per_s"] > 0
    ops = tables["profile"]
    assert 0 < len(ops) <= 15 and {r["clock"] for r in ops} == {"cpu"}
    assert [r["self_ms_per_step"] for r in ops] == sorted(
        (r["self_ms_per_step"] for r in ops), reverse=True
    )
    assert 0 < sum(r["share"] for r in ops) <= 1.0 + 1e-6


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--density", "0"], 2, "--density 0.0: must lie in (0, 1]"),
        (["--amp", "fp8"], 2, "--amp 'fp8': unknown"),
        (["--steps", "0"], 2, "need steps >= 1"),
        (["--model", "nope"], 1, "unknown model 'nope'"),
    ],
)
def test_bench_refuses_bad_options_with_one_error_line(capsys, args, code, message):
    assert main(["bench", *TINY, *args]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_bench_on_cuda_without_a_gpu_says_what_to_do(capsys):
    assert main(["bench", "--steps", "1"]) == 1
    assert "--device cuda: no CUDA device is available" in capsys.readouterr().err


def _masked_mlp():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(), torch.nn.Linear(16, 3)
    )
    params = {"0.weight": model[0].weight, "3.weight": model[3].weight}
    masks = {n: torch.rand(p.shape) > 0.5 for n, p in params.items()}
    with torch.no_grad():
        for n, p in params.items():
            p.mul_(masks[n])
    data = [(torch.randn(8, 6), torch.randint(0, 3, (8,))) for _ in range(6)]
    return model, params, masks, data


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_autocast_modes_train_and_keep_pruned_weights_zero(amp):
    model, params, masks, data = _masked_mlp()
    device = torch.device("cpu")
    opt = make_optimizer(model, lr=0.1, momentum=0.9, weight_decay=1e-3, device=device)
    scaler = make_scaler(amp, device)
    assert (scaler is not None) == (amp == "fp16")  # fp16 needs loss scaling, bf16 does not
    stats = train_one_epoch(
        model, opt, data, [0.1] * 6, MaskEnforcer(params, masks), amp=amp, scaler=scaler
    )
    assert stats.examples == 48 and stats.loss == stats.loss  # finite, not NaN
    for n, p in params.items():
        assert p.dtype == torch.float32 and (p[~masks[n]] == 0).all() and (p[masks[n]] != 0).all()


def test_amp_auto_on_cpu_is_exactly_fp32():
    results = []
    for amp in ("auto", "off"):
        model, params, masks, data = _masked_mlp()
        opt = make_optimizer(
            model, lr=0.1, momentum=0.9, weight_decay=1e-3, device=torch.device("cpu")
        )
        train_one_epoch(model, opt, data, [0.1] * 6, MaskEnforcer(params, masks), amp=amp)
        results.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*results, strict=True))
    assert (
        amp_label("auto", torch.device("cpu")) == "off"
        and amp_label("auto", torch.device("cuda")) == "bf16"
    )


def test_reduce_combines_the_epoch_sums_once():
    model, params, masks, data = _masked_mlp()
    opt = make_optimizer(model, lr=0.1, momentum=0.9, weight_decay=0.0, device=torch.device("cpu"))
    calls = []

    def twice(t):  # what all_reduce returns with two ranks that saw the same numbers
        calls.append(t.clone())
        return t * 2

    stats = train_one_epoch(model, opt, data, [0.1] * 6, MaskEnforcer(params, masks), reduce=twice)
    assert len(calls) == 1 and calls[0][2].item() == 48
    assert stats.examples == 96 and stats.loss == pytest.approx(calls[0][0].item() / 48)


def test_train_records_how_it_ran_beside_the_config(tmp_path):
    cfg = resolve_config(
        "demo",
        {
            "model": "mlp",
            "levels": 1,
            "epochs": 1,
            "lr_warmup_epochs": 0,
            "rewind_epoch": 0,
            "device": "cpu",
        },
    )
    run = train(cfg, tmp_path / "bf16", amp="bf16", reporter=Reporter(Console(file=io.StringIO())))
    manifest = json.loads((run / "run.json").read_text())
    assert (manifest["amp"], manifest["compile"], manifest["world_size"]) == ("bf16", False, 1)
    assert "amp" not in manifest["config"]  # how a run executes is not what it computes
    assert manifest["levels"][0]["test_acc"] > 0.5


@pytest.mark.slow
def test_gpu_check_script_runs_without_the_inspection_stack(tmp_path):
    """examples/gpu_check.py is what a session with the GPU machine runs, once, in its few
    minutes: it must work on the first try there, where polars, Textual and Altair are missing.
    Here it runs at its smoke size on the CPU with those imports made to fail."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "examples" / "gpu_check.py"
    blocker = (
        "import sys, runpy\n"
        "for name in ('polars', 'textual', 'altair', 'vl_convert', 'typer'):\n"
        "    sys.modules[name] = None\n"
        f"sys.argv = ['gpu_check.py', '--smoke', '--device', 'cpu', '--skip-compile', "
        f"'--out', {str(tmp_path)!r}]\n"
        f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", blocker], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["env"]["device"] == "cpu"
    assert [r["loop"] for r in report["bench"]["bench"]] == ["signscope", "reference"]
    assert report["epochs"]["density_level1"] == pytest.approx(0.8, abs=1e-4)
    assert {"init.safetensors", "rewind.safetensors", "level_001.safetensors", "run.json"} <= set(
        report["epochs"]["files"]
    )
    assert len(report["epochs"]["epoch_seconds"]) == 4
    assert report["imagenet"]["images"] == 6 and report["imagenet"]["images_per_s"] > 0


def test_an_epoch_reads_nothing_back_to_the_host_per_step(monkeypatch):
    """No host synchronisation per step. On a GPU every .item(), float(), int(),
    bool() or .tolist() of a device tensor waits for the queue to drain. Counted here on the
    CPU: the number of such reads in one epoch of the real training path (device-resident
    data, augmentation, fused/foreach SGD, masks) must not grow with the number of steps."""
    from trainers.datasets import load_dataset
    from trainers.models import build_model, prunable_parameters

    reads = []
    for method in (
        "item",
        "tolist",
        "__float__",
        "__int__",
        "__bool__",
        "__index__",
        "cpu",
        "numpy",
    ):
        original = getattr(torch.Tensor, method)

        def counted(self, *args, _original=original, _name=method, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, method, counted)

    def epoch_reads(n_images: int) -> int:
        ds = load_dataset("synthetic", synthetic_shape=(3, 8, 8), synthetic_size=(n_images, 8))
        model = build_model("convnet", 10, (3, 8, 8), generator=torch.Generator().manual_seed(0))
        params = prunable_parameters(model)
        masks = {
            n: torch.rand(p.shape, generator=torch.Generator().manual_seed(1)) > 0.3
            for n, p in params.items()
        }
        opt = make_optimizer(model, 0.1, 0.9, 5e-4, torch.device("cpu"))
        steps = n_images // 16
        reads.clear()
        train_one_epoch(
            model,
            opt,
            ds.batches(16, torch.Generator().manual_seed(0), train=True),
            [0.1] * steps,
            MaskEnforcer(params, masks),
        )
        return len(reads)

    assert epoch_reads(16 * 3) == epoch_reads(16 * 12)


@pytest.mark.slow
def test_train_with_compile_writes_the_plain_state_dict_names(tmp_path, capsys):
    """--compile (torch.compile, the GPU path's option) on the CPU: training works through the
    compiled module, and the checkpoints keep the model's own names (no ``_orig_mod.``)."""
    from signscope.reader import read_header

    out = tmp_path / "run"
    rc = main(
        [
            *tiny_mlp_train(),
            "--compile",
            "--quiet",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    names = list(read_header(out / "level_001.safetensors").tensors)
    assert names and not any("_orig_mod" in n for n in names)
    assert json.loads((out / "run.json").read_text())["compile"] is True

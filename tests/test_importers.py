"""``signscope import``: each source layout is built here with torch, imported through the CLI,
and the result is read back with plain safetensors/numpy, never with the code under test."""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

from signscope.cli import main

torch = pytest.importorskip("torch")
nn = torch.nn
prune = pytest.importorskip("torch.nn.utils.prune")

pytestmark = pytest.mark.torch


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "signscope", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_inproc(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def meta(path: Path) -> dict:
    with safe_open(str(path), "np") as f:
        return f.metadata()


def manifest(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def np_state(state) -> dict:
    return {k: v.detach().numpy().copy() for k, v in state.items()}


def tiny_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))


# --------------------------------------------------------------------------- torch-prune


@pytest.fixture
def torch_prune_folder(tmp_path):
    """Eleven levels (so that natural order matters: level_10 after level_9), dense level 0
    saved before any pruning, 20% of each layer's remaining weights pruned per level."""
    torch.manual_seed(0)
    net = tiny_net()
    src = tmp_path / "tp"
    src.mkdir()
    init = np_state(net.state_dict())
    torch.save(net.state_dict(), src / "init.pt")
    saved = []
    for level in range(11):
        if level:
            for mod in (net[0], net[3]):
                prune.l1_unstructured(mod, "weight", amount=0.2)
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.3 * torch.randn_like(p))
        torch.save(net.state_dict(), src / f"level_{level}.pt")
        saved.append(np_state(net.state_dict()))
    return src, init, saved


@pytest.mark.slow
def test_torch_prune_import(torch_prune_folder, tmp_path):
    src, init, saved = torch_prune_folder
    out = tmp_path / "run"
    res = cli("import", "torch-prune", src, "--out", out, "--method", "lrr", "--seed", "3")
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.glob("level_*.safetensors")) == [
        f"level_{i:03d}.safetensors" for i in range(11)
    ]
    for level, raw in enumerate(saved):
        path = out / f"level_{level:03d}.safetensors"
        t = load_file(str(path))
        assert not any(k.endswith(("_orig", "_mask")) for k in t)
        assert set(t) == {
            "0.weight",
            "0.bias",
            "1.weight",
            "1.bias",
            "1.running_mean",
            "1.running_var",
            "1.num_batches_tracked",
            "3.weight",
            "3.bias",
            "mask/0.weight",
            "mask/3.weight",
        }
        alive = 0
        for name in ("0.weight", "3.weight"):
            mask = t[f"mask/{name}"]
            assert mask.dtype == np.uint8
            expected_mask = raw.get(name + "_mask", np.ones_like(t[name]))
            np.testing.assert_array_equal(mask, expected_mask.astype(np.uint8))
            orig = raw.get(name + "_orig", raw.get(name))
            np.testing.assert_array_equal(t[name], np.where(mask == 1, orig, 0))
            assert (t[name][mask == 0] == 0).all()
            alive += int(mask.sum())
        np.testing.assert_array_equal(t["1.running_var"], raw["1.running_var"])
        md = meta(path)
        assert md["format"] == "signscope/1" and md["level"] == str(level)
        assert md["method"] == "lrr" and md["source"] == f"level_{level}.pt"
        assert float(md["density"]) == pytest.approx(alive / 42)
    # l1_unstructured(amount=0.2) prunes round(20%) of what is left: 18 -> 14 -> 11.
    assert int(load_file(str(out / "level_002.safetensors"))["mask/0.weight"].sum()) == 11
    ref = load_file(str(out / "init.safetensors"))
    np.testing.assert_array_equal(ref["0.weight"], init["0.weight"])
    assert not (out / "rewind.safetensors").exists()
    m = manifest(out)
    assert m["config"]["method"] == "lrr" and m["config"]["seed"] == 3
    assert m["config"]["imported_from"]["kind"] == "torch-prune"
    assert m["config"]["imported_from"]["source"] == str(src.resolve())
    assert [lv["level"] for lv in m["levels"]] == list(range(11))
    assert m["levels"][10]["source"] == "level_10.pt"
    assert m["references"]["init"] == {"file": "init.safetensors", "source": "init.pt"}
    assert m["references"]["rewind"] is None and m["complete"] is True


def test_refuses_nonempty_out_unless_forced(torch_prune_folder, tmp_path, capsys):
    src, _, _ = torch_prune_folder
    out = tmp_path / "run"
    out.mkdir()
    (out / "level_000.safetensors").write_bytes(b"old")
    code, _, err = run_inproc(capsys, "import", "torch-prune", src, "--out", out)
    assert code == 2 and err.startswith("error: --out") and "--force" in err
    assert "--resume" not in err  # import has no --resume, so the hint must not offer it
    assert (out / "level_000.safetensors").read_bytes() == b"old"
    # --force replaces only what signscope wrote: another model beside it stops the import.
    (out / "my_finetuned_model.safetensors").write_bytes(b"precious")
    code, _, err = run_inproc(capsys, "import", "torch-prune", src, "--out", out, "--force")
    assert code == 2 and "my_finetuned_model.safetensors" in err and len(err.splitlines()) == 1
    assert (out / "level_000.safetensors").read_bytes() == b"old"
    (out / "my_finetuned_model.safetensors").unlink()
    code, _, err = run_inproc(capsys, "import", "torch-prune", src, "--out", out, "--force")
    assert code == 0, err
    assert len(load_file(str(out / "level_000.safetensors"))) > 0


def test_json_summary_and_no_init_note(torch_prune_folder, tmp_path, capsys):
    src, _, _ = torch_prune_folder
    (src / "init.pt").unlink()
    out = tmp_path / "run"
    code, stdout, err = run_inproc(capsys, "import", "torch-prune", src, "-o", out, "-f", "json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert [r["level"] for r in summary["levels"]] == list(range(11))
    assert summary["levels"][0]["density"] == 1.0
    assert any("init" in n["note"] for n in summary["notes"])
    assert not (out / "init.safetensors").exists()
    m = manifest(out)
    assert m["references"]["init"] is None and any("--init" in n for n in m["notes"])


def test_shape_change_between_levels_is_an_error_and_leaves_nothing(
    torch_prune_folder, tmp_path, capsys
):
    src, _, _ = torch_prune_folder
    bad = torch.load(src / "level_5.pt", weights_only=True)
    bad["3.bias"] = torch.zeros(4)
    torch.save(bad, src / "level_5.pt")
    out = tmp_path / "run"
    code, _, err = run_inproc(capsys, "import", "torch-prune", src, "--out", out)
    assert code == 1
    (line,) = err.strip().splitlines()
    assert line.startswith("error: ") and "level_5.pt" in line and "3.bias" in line
    assert not out.exists()


# --------------------------------------------------------------------------- error cases


class NotATensor:
    def __init__(self):
        self.payload = [1, 2, 3]


@pytest.mark.slow
def test_errors_are_one_line(tmp_path, capsys):
    code, _, err = run_inproc(
        capsys, "import", "torch-prune", tmp_path / "missing", "--out", tmp_path / "r"
    )
    assert code == 1 and err == f"error: {tmp_path / 'missing'}: no such folder\n"

    code, _, err = run_inproc(capsys, "import", "tensorflow", tmp_path, "--out", tmp_path / "r")
    assert code == 2 and err.startswith("error: ") and "tensorflow" in err

    evil = tmp_path / "evil"
    evil.mkdir()
    torch.save({"0.weight": torch.ones(2, 2), "extra": NotATensor()}, evil / "level_0.pt")
    res = cli("import", "torch-prune", evil, "--out", tmp_path / "r")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert str(evil / "level_0.pt") in line and "NotATensor" in line
    assert "weights_only=True" in line
    assert not (tmp_path / "r").exists()


def test_more_bad_input(tmp_path, capsys):
    folder = tmp_path / "src"
    folder.mkdir()
    code, _, err = run_inproc(capsys, "import", "torch-prune", folder, "--out", tmp_path / "r")
    assert code == 1 and "no checkpoints" in err

    (folder / "level_0.pt").write_bytes(b"not a checkpoint at all")
    code, _, err = run_inproc(capsys, "import", "torch-prune", folder, "--out", tmp_path / "r")
    assert code == 1 and "level_0.pt: not a PyTorch checkpoint that torch.load" in err

    (folder / "level_0.pt").write_bytes(pickle.dumps({"f": print}, protocol=4))
    code, _, err = run_inproc(capsys, "import", "torch-prune", folder, "--out", tmp_path / "r")
    assert code == 1 and len(err.splitlines()) == 1 and "weights_only=True" in err

    torch.save({"0.weight": torch.ones(3)}, folder / "level_0.pt")
    (folder / "level_0.pt").write_bytes((folder / "level_0.pt").read_bytes()[:100])
    code, _, err = run_inproc(capsys, "import", "torch-prune", folder, "--out", tmp_path / "r")
    assert code == 1 and "level_0.pt" in err and len(err.splitlines()) == 1

    torch.save(tiny_net().state_dict(), folder / "level_0.pt")
    code, _, err = run_inproc(capsys, "import", "torch-prune", folder, "--out", tmp_path / "r")
    assert code == 1 and "torch.nn.utils.prune" in err

    code, _, err = run_inproc(
        capsys, "import", "torch-prune", folder, "--out", tmp_path / "r", "--replicate", "2"
    )
    assert code == 2 and "--replicate applies to openlth" in err

    code, _, err = run_inproc(
        capsys, "import", "paper-code", folder, "--out", tmp_path / "r", "--method", "two words"
    )
    assert code == 2 and "--method" in err


def test_kinds_match_registry():
    from signscope.cli.importcmd import ImportKind
    from trainers.importers import IMPORTERS

    assert [k.value for k in ImportKind] == list(IMPORTERS)


@pytest.mark.slow
def test_cli_module_does_not_import_torch():
    code = "import sys, signscope.cli; assert 'torch' not in sys.modules, 'torch imported'"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


# --------------------------------------------------------------------------- openlth


HPARAMS_LOG = """Dataset Hyperparameters
    * dataset_name => cifar10
    * batch_size => 128
Model Hyperparameters
    * model_name => cifar_resnet_20
    * model_init => kaiming_normal
    * batchnorm_init => uniform
Pruning Hyperparameters
    * pruning_strategy => sparse_global
    * pruning_fraction => 0.2
Training Hyperparameters
    * optimizer_name => sgd
    * lr => 0.1
    * training_steps => 10ep
"""


def _openlth_state(net, mask):
    """What OpenLTH saves: the unwrapped model's state dict, pruned weights zero."""
    state = {k: v.clone() for k, v in net.state_dict().items()}
    for k, m in mask.items():
        state[k] = state[k] * m
    return state


def build_openlth(
    root: Path,
    replicate: int = 1,
    levels: int = 3,
    pretrain: bool = False,
    unfinished: bool = False,
    seed: int = 0,
):
    """``replicate_R/level_L/main/`` as lottery/runner.py writes it, training faked by noise.

    Returns per level (trained state, mask) as numpy, plus the init and the rewind point."""
    torch.manual_seed(seed)
    net = tiny_net()
    rep = root / f"replicate_{replicate}"
    prunable = ["0.weight", "3.weight"]
    mask = {k: torch.ones_like(net.state_dict()[k], dtype=torch.int32) for k in prunable}
    start = "model_ep0_it0.pth"
    init = np_state(net.state_dict())
    if pretrain:
        folder = rep / "level_pretrain" / "main"
        folder.mkdir(parents=True)
        torch.save(net.state_dict(), folder / "model_ep0_it0.pth")
        with torch.no_grad():
            net[0].weight.add_(1.0)
        torch.save(net.state_dict(), folder / "model_ep2_it0.pth")
        start = "model_ep2_it0.pth"
    rewind = {k: v.clone() for k, v in net.state_dict().items()}
    result = []
    for level in range(levels + int(unfinished)):
        folder = rep / f"level_{level}" / "main"
        folder.mkdir(parents=True)
        if level:
            # Global magnitude pruning of 20% of the remaining weights.
            trained = result[-1][0]
            alive = np.concatenate([np.abs(trained[k][mask[k].numpy() == 1]) for k in prunable])
            thresh = np.sort(alive)[int(0.2 * alive.size)]
            mask = {
                k: (torch.from_numpy(np.abs(trained[k])) >= thresh).int() * mask[k]
                for k in prunable
            }
            net.load_state_dict(rewind)
        torch.save({k: v.cpu().int() for k, v in mask.items()}, folder / "mask.pth")
        torch.save(_openlth_state(net, mask), folder / start)
        if level == levels:  # unfinished: pruned and rewound, never trained
            break
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.5 * torch.randn_like(p))
        # An intermediate save (epoch 5) must lose against the final one (epoch 10).
        torch.save({k: v * 0 for k, v in net.state_dict().items()}, folder / "model_ep5_it0.pth")
        torch.save(_openlth_state(net, mask), folder / "model_ep10_it0.pth")
        (folder / "logger").write_text(
            f"test_accuracy,0,0.1\ntest_loss,0,2.3\ntest_accuracy,500,{0.9 - 0.01 * level}\n"
            f"test_accuracy,250,0.5\n"
        )
        if level == 0:
            (folder / "hparams.log").write_text(HPARAMS_LOG)
        result.append(
            (np_state(_openlth_state(net, mask)), {k: v.numpy() for k, v in mask.items()})
        )
    return result, init, np_state(rewind)


@pytest.mark.slow
def test_openlth_import(tmp_path, capsys):
    src = tmp_path / "lottery_0123abcd"
    levels, init, _ = build_openlth(src)
    out = tmp_path / "run"
    res = cli("import", "openlth", src, "--out", out)
    assert res.returncode == 0, res.stderr
    for level, (state, mask) in enumerate(levels):
        path = out / f"level_{level:03d}.safetensors"
        t = load_file(str(path))
        for name in ("0.weight", "3.weight"):
            np.testing.assert_array_equal(t[f"mask/{name}"], mask[name].astype(np.uint8))
            np.testing.assert_array_equal(t[name], state[name])
        np.testing.assert_array_equal(t["0.bias"], state["0.bias"])
        md = meta(path)
        assert md["method"] == "imp"
        assert float(md["test_acc"]) == pytest.approx(0.9 - 0.01 * level)
        assert md["source"] == f"replicate_1/level_{level}/main/model_ep10_it0.pth"
    assert int(load_file(str(out / "level_002.safetensors"))["mask/0.weight"].sum()) < 18
    for ref in ("init", "rewind"):
        np.testing.assert_array_equal(
            load_file(str(out / f"{ref}.safetensors"))["0.weight"], init["0.weight"]
        )
    m = manifest(out)
    cfg = m["config"]
    assert cfg["method"] == "imp" and cfg["seed"] == 1
    assert cfg["model"] == "cifar_resnet_20" and cfg["dataset"] == "cifar10"
    assert cfg["source_config"]["pruning"] == {
        "pruning_strategy": "sparse_global",
        "pruning_fraction": 0.2,
    }
    assert cfg["source_config"]["training"]["training_steps"] == "10ep"
    assert cfg["imported_from"] == {
        "kind": "openlth",
        "source": str(src.resolve()),
        "replicate": 1,
        "experiment": "main",
    }
    assert [lv["test_acc"] for lv in m["levels"]] == pytest.approx([0.9, 0.89, 0.88])
    assert m["complete"] is True and m["notes"] == []

    # The imported run reads with `signscope flips`, and its counts match numpy on the source.
    code, stdout, err = run_inproc(capsys, "flips", out, "--format", "json")
    assert code == 0, err
    rows = json.loads(stdout)["levels"]

    def flips(a, b, alive):
        return sum(
            int(((np.sign(a[k]) * np.sign(b[k]) < 0) & alive[k]).sum())
            for k in ("0.weight", "3.weight")
        )

    for level, (state, mask) in enumerate(levels):
        alive = {k: mask[k] == 1 for k in mask}
        assert rows[level]["flips_init"] == flips(init, state, alive)
        assert rows[level]["alive"] == sum(int(a.sum()) for a in alive.values())
        if level:
            assert rows[level]["flips_prev"] == flips(levels[level - 1][0], state, alive)


def test_openlth_replicates_pretrain_and_unfinished_level(tmp_path, capsys):
    src = tmp_path / "lottery_x"
    build_openlth(src, replicate=1)
    levels, init, rewind = build_openlth(
        src, replicate=2, levels=2, pretrain=True, unfinished=True, seed=1
    )
    code, _, err = run_inproc(capsys, "import", "openlth", src, "--out", tmp_path / "r")
    assert code == 1 and "replicates 1, 2" in err and "--replicate" in err

    out = tmp_path / "r2"
    code, _, err = run_inproc(
        capsys, "import", "openlth", src, "--out", out, "--replicate", "2", "--method", "imp-rand"
    )
    assert code == 0, err
    assert sorted(p.name for p in out.glob("level_*")) == [
        "level_000.safetensors",
        "level_001.safetensors",
    ]
    np.testing.assert_array_equal(
        load_file(str(out / "init.safetensors"))["0.weight"], init["0.weight"]
    )
    np.testing.assert_array_equal(
        load_file(str(out / "rewind.safetensors"))["0.weight"], rewind["0.weight"]
    )
    assert not np.array_equal(init["0.weight"], rewind["0.weight"])
    m = manifest(out)
    assert m["complete"] is False and m["config"]["seed"] == 2
    assert m["config"]["method"] == "imp-rand"
    assert m["references"]["init"]["source"] == "replicate_2/level_pretrain/main/model_ep0_it0.pth"
    assert any("levels 2" in n for n in m["notes"])

    # A replicate folder given directly needs no --replicate.
    code, _, err = run_inproc(
        capsys, "import", "openlth", src / "replicate_1", "--out", tmp_path / "r3"
    )
    assert code == 0, err


def test_openlth_bad_masks(tmp_path, capsys):
    src = tmp_path / "lottery_y"
    build_openlth(src)
    mask_file = src / "replicate_1" / "level_1" / "main" / "mask.pth"
    mask = torch.load(mask_file, weights_only=True)
    torch.save({"0.weight": mask["0.weight"]}, mask_file)
    code, _, err = run_inproc(capsys, "import", "openlth", src, "--out", tmp_path / "r")
    assert code == 1 and f"{mask_file}: masks cover other tensors" in err

    torch.save({**mask, "0.weight": mask["0.weight"] * 2}, mask_file)
    code, _, err = run_inproc(capsys, "import", "openlth", src, "--out", tmp_path / "r")
    assert code == 1 and f"{mask_file}: mask of 0.weight holds values other than 0 and 1" in err
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- paper-code


class ConvMask(nn.Conv2d):
    """The paper code's masked convolution: the mask is a buffer applied in forward."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("mask", torch.ones_like(self.weight))


class PaperNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = ConvMask(1, 2, 3)
        self.bn1 = nn.BatchNorm2d(2)
        self.linear = ConvMask(2, 3, 1)  # the paper's classifier is a 1x1 ConvMask


def build_paper_runs(
    runs: Path,
    name: str,
    densities=(0.8, 0.64),
    per_level=3,
    warmup=2,
    final_epochs=4,
    settings=True,
    warm_up=False,
    threshold_list=None,
):
    """Mimic main.py: save checkpoints/initial.state (with ``warm_up``), warm up, save init;
    per level train, prune, save mask list and model; then the final training. Returns the
    trained states, the masks each level trained with, the init file's state and val_acc."""
    torch.manual_seed(0)
    net = nn.DataParallel(PaperNet())
    layers = [net.module.conv1, net.module.linear]
    runs.mkdir(parents=True, exist_ok=True)
    folder = runs / "resnet18-cifar" / name / "prune_rate=0.0"  # get_directories' run_base_dir
    if warm_up:
        (folder / "checkpoints").mkdir(parents=True)
        # save_checkpoint's dict; the optimizer's is what torch.optim.SGD.state_dict() gives
        # (built by hand: constructing an optimizer costs seconds of torch._dynamo import).
        sgd = {"lr": 0.1, "momentum": 0.9, "dampening": 0, "weight_decay": 1e-4}
        sgd |= {"nesterov": False, "maximize": False, "foreach": None, "differentiable": False}
        sgd |= {"fused": None, "params": list(range(len(list(net.parameters()))))}
        checkpoint = {"epoch": 0, "arch": "ResNet18", "state_dict": net.state_dict()}
        checkpoint |= {"best_acc1": 0.0, "best_acc5": 0.0, "best_train_acc1": 0.0}
        checkpoint |= {"best_train_acc5": 0.0, "curr_acc1": "Not evaluated"}
        checkpoint["optimizer"] = {"state": {}, "param_groups": [sgd]}
        torch.save(checkpoint, folder / "checkpoints" / "initial.state")
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.1 * torch.randn_like(p))
    val_acc = [10.0 + e for e in range(warmup)]
    torch.save(net.state_dict(), runs / f"model_{name}_init.pt")
    init = {k: v for k, v in np_state(net.state_dict()).items() if not k.endswith(".mask")}
    trained, masks_used = [], []

    def train(epochs):
        masks_used.append([m.mask.clone().numpy() for m in layers])
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.5 * torch.randn_like(p))
        val_acc.extend(50.0 + len(val_acc) + e for e in range(epochs))
        trained.append(np_state(net.state_dict()))

    for level, density in enumerate(densities):
        train(per_level)
        scores = torch.cat([(m.weight * m.mask).abs().flatten() for m in layers])
        k = int((1 - density) * scores.numel())
        threshold = torch.kthvalue(scores, k).values
        for m in layers:
            m.mask = torch.where((m.weight * m.mask).abs() <= threshold, 0.0, 1.0)
        torch.save([m.mask for m in layers], runs / f"mask_{name}_{level}.pt")
        torch.save(net.state_dict(), runs / f"model_{name}_{level}.pt")
        net.load_state_dict(
            {
                **net.state_dict(),
                **{
                    k: v
                    for k, v in torch.load(
                        runs / f"model_{name}_init.pt", weights_only=True
                    ).items()
                    if k.endswith(("weight", "bias"))
                },
            }
        )
    torch.save([m.mask for m in layers], runs / f"mask_{name}.pt")
    train(final_epochs)
    torch.save(net.state_dict(), runs / f"model_{name}_trained.pt")
    torch.save(val_acc, runs / f"val_acc_{name}.pt")
    if settings:
        args = argparse.Namespace(
            set="cifar10",
            seed=7,
            warmup=True,
            warmup_epochs=warmup,
            final_prune_epoch=per_level,
            threshold_list=list(threshold_list or densities),
            epochs=final_epochs,
            start_epoch=0,
            pruner="mag",
            reset_weights=True,
            reset_only_bn=False,
            load_before_prune=False,
            multigpu=[0],
            name=name,
            lr=0.1,
        )
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "settings.txt").write_text(str(args))
    return trained, masks_used, init, val_acc


@pytest.mark.slow
def test_paper_code_import(tmp_path, capsys):
    runs = tmp_path / "runs"
    name = "cifar-imp_seed_7"
    trained, masks_used, init, val_acc = build_paper_runs(runs, name)
    out = tmp_path / "run"
    res = cli("import", "paper-code", runs, "--out", out)
    assert res.returncode == 0, res.stderr
    assert len(trained) == 3
    expected_acc = [val_acc[2 + 3 - 1] / 100, val_acc[2 + 6 - 1] / 100, val_acc[-1] / 100]
    for level, (state, used) in enumerate(zip(trained, masks_used, strict=True)):
        path = out / f"level_{level:03d}.safetensors"
        t = load_file(str(path))
        assert set(t) == {
            "conv1.weight",
            "conv1.bias",
            "bn1.weight",
            "bn1.bias",
            "bn1.running_mean",
            "bn1.running_var",
            "bn1.num_batches_tracked",
            "linear.weight",
            "linear.bias",
            "mask/conv1.weight",
            "mask/linear.weight",
        }
        for name_, mask in zip(("conv1.weight", "linear.weight"), used, strict=True):
            np.testing.assert_array_equal(t[f"mask/{name_}"], mask.astype(np.uint8))
            np.testing.assert_array_equal(
                t[name_], np.where(mask == 1, state[f"module.{name_}"], 0)
            )
        md = meta(path)
        assert md["method"] == "imp"
        assert float(md["test_acc"]) == pytest.approx(expected_acc[level])
    assert load_file(str(out / "level_000.safetensors"))["mask/conv1.weight"].all()
    assert not load_file(str(out / "level_002.safetensors"))["mask/conv1.weight"].all()
    rewind = load_file(str(out / "rewind.safetensors"))
    np.testing.assert_array_equal(rewind["conv1.weight"], init["module.conv1.weight"])
    assert "conv1.mask" not in rewind
    assert not (out / "init.safetensors").exists()
    m = manifest(out)
    cfg = m["config"]
    assert cfg["method"] == "imp" and cfg["seed"] == 7 and cfg["dataset"] == "cifar10"
    assert cfg["pruner"] == "mag" and cfg["source_config"]["threshold_list"] == [0.8, 0.64]
    assert "seed" not in cfg["source_config"] and "name" not in cfg["source_config"]
    assert cfg["imported_from"]["name"] == name
    assert [lv["source"] for lv in m["levels"]] == [
        f"model_{name}_0.pt",
        f"model_{name}_1.pt",
        f"model_{name}_trained.pt",
    ]
    assert any("warm-up" in n for n in m["notes"]) and any("--init" in n for n in m["notes"])
    code, stdout, err = run_inproc(capsys, "flips", out, "--reference", "rewind", "-f", "json")
    assert code == 0, err
    assert [r["alive"] for r in json.loads(stdout)["levels"]] == [
        int(sum(m.sum() for m in used)) for used in masks_used
    ]


def test_paper_code_choose_name_and_init(tmp_path, capsys):
    runs = tmp_path / "runs"
    build_paper_runs(runs, "lrr-a", settings=False)
    build_paper_runs(runs, "lrr-b", densities=(0.8,), settings=False)
    code, _, err = run_inproc(capsys, "import", "paper-code", runs, "--out", tmp_path / "r")
    assert code == 1 and "lrr-a, lrr-b" in err and "--name" in err

    out = tmp_path / "r"
    code, _, err = run_inproc(
        capsys,
        "import",
        "paper-code",
        runs,
        "--out",
        out,
        "--name",
        "lrr-b",
        "--init",
        runs / "model_lrr-b_init.pt",
        "--method",
        "lrr",
    )
    assert code == 0, err
    assert len(list(out.glob("level_*.safetensors"))) == 2
    init = load_file(str(out / "init.safetensors"))
    np.testing.assert_array_equal(
        init["conv1.weight"], load_file(str(out / "rewind.safetensors"))["conv1.weight"]
    )
    m = manifest(out)
    assert m["config"]["method"] == "lrr" and m["config"]["seed"] is None
    assert m["levels"][0]["test_acc"] is None
    assert m["references"]["init"]["source"] == "model_lrr-b_init.pt"

    (runs / "mask_lrr-a_0.pt").unlink()
    code, _, err = run_inproc(
        capsys, "import", "paper-code", runs, "--out", tmp_path / "r4", "--name", "lrr-a"
    )
    assert code == 1 and "mask_lrr-a_0.pt: file not found" in err

    torch.save([torch.ones(2, 1, 3, 3)], runs / "mask_lrr-a_0.pt")
    code, _, err = run_inproc(
        capsys, "import", "paper-code", runs, "--out", tmp_path / "r4", "--name", "lrr-a"
    )
    assert code == 1 and "holds 1 masks" in err and not (tmp_path / "r4").exists()


# ---------------------------------------------------------------- unusual and hostile sources


class RunsACommand:
    """A pickle payload: unpickling it would run ``touch MARKER``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_an_unusable_source_is_exit_1_and_a_bad_option_exit_2(tmp_path, capsys):
    src = tmp_path / "lottery_z"
    build_openlth(src, replicate=1, levels=1)
    build_openlth(src, replicate=2, levels=1)
    (tmp_path / "file").write_text("x")
    for args in (
        ["openlth", tmp_path / "missing"],
        ["openlth", tmp_path / "file"],
        ["openlth", tmp_path],  # holds an experiment, is not one
        ["openlth", src],  # several replicates
        ["openlth", src, "--replicate", "3"],
        ["openlth", src / "replicate_1", "--replicate", "2"],
        ["paper-code", src],
        ["torch-prune", src],
    ):
        code, _, err = run_inproc(capsys, "import", *args, "--out", tmp_path / "r")
        assert code == 1 and len(err.splitlines()) == 1 and err.startswith("error: "), (args, err)
    for args in (["openlth", src, "--name", "x"], ["tensorflow", src]):
        code, _, err = run_inproc(capsys, "import", *args, "--out", tmp_path / "r")
        assert code == 2, (args, err)
    assert not (tmp_path / "r").exists()


def build_branch(src: Path, branch: str, levels, replicate: int = 1, seed: int = 5):
    """``level_L/lottery_branch_NAME_HASH/`` as lottery/branch/base.py lays it out for the
    levels the branch ran at: ``randomly_prune`` saves a shuffled mask (per layer, as its
    default ``layerwise`` strategy does) and trains from the rewind point; ``retrain`` saves no
    mask (it trains with the lottery's). Returns per level (trained state, mask)."""
    experiment = f"lottery_branch_{branch}_{'0123456789abcdef' * 2}"
    rep = src / f"replicate_{replicate}"
    rewind = torch.load(rep / "level_0" / "main" / "model_ep0_it0.pth", weights_only=True)
    gen = torch.Generator().manual_seed(seed)
    result = {}
    for level in levels:
        folder = rep / f"level_{level}" / experiment
        folder.mkdir(parents=True)
        mask = torch.load(rep / f"level_{level}" / "main" / "mask.pth", weights_only=True)
        if branch == "randomly_prune":
            mask = {
                k: v.flatten()[torch.randperm(v.numel(), generator=gen)].reshape(v.shape)
                for k, v in mask.items()
            }
            torch.save({k: v.int() for k, v in mask.items()}, folder / "mask.pth")
        start = {k: v * mask[k] if k in mask else v for k, v in rewind.items()}
        torch.save(start, folder / "model_ep0_it0.pth")
        trained = {
            k: (v + 0.5 * torch.randn(v.shape, generator=gen)) * mask[k] if k in mask else v
            for k, v in start.items()
        }
        torch.save(trained, folder / "model_ep10_it0.pth")
        (folder / "logger").write_text(f"test_accuracy,500,{0.5 + 0.01 * level}\n")
        result[level] = (np_state(trained), {k: v.numpy() for k, v in mask.items()})
    return experiment, result


@pytest.mark.parametrize(
    "branch, label", [("randomly_prune", "imp-rand"), ("retrain", "imp-retrain")]
)
def test_openlth_branch_run_at_some_levels(tmp_path, capsys, branch, label):
    src = tmp_path / "lottery_b"
    _, init, _ = build_openlth(src, levels=4)
    experiment, levels = build_branch(src, branch, levels=(1, 3))
    out = tmp_path / "branch"
    code, _, err = run_inproc(
        capsys, "import", "openlth", src, "-o", out, "--experiment", experiment
    )
    assert code == 0, err
    for number, (source_level, (state, mask)) in enumerate(sorted(levels.items())):
        t = load_file(str(out / f"level_{number:03d}.safetensors"))
        for name in ("0.weight", "3.weight"):
            np.testing.assert_array_equal(t[f"mask/{name}"], mask[name].astype(np.uint8))
            np.testing.assert_array_equal(t[name], state[name])
        md = meta(out / f"level_{number:03d}.safetensors")
        assert md["method"] == label and md["source_level"] == str(source_level)
    m = manifest(out)
    assert m["config"]["method"] == label and m["config"]["imported_from"]["branch"] == branch
    assert [(r["level"], r["source_level"]) for r in m["levels"]] == [(0, 1), (1, 3)]
    assert [r["test_acc"] for r in m["levels"]] == pytest.approx([0.51, 0.53])
    assert any("levels 1, 3" in n for n in m["notes"])
    assert m["config"]["model"] == "cifar_resnet_20"  # the lottery's hparams.log
    # The references are the lottery's, not the branch's (already masked) first model.
    np.testing.assert_array_equal(
        load_file(str(out / "init.safetensors"))["0.weight"], init["0.weight"]
    )
    # `acc` keeps the branch apart from the lottery it branched from.
    lottery = tmp_path / "lottery"
    assert run_inproc(capsys, "import", "openlth", src, "-o", lottery)[0] == 0
    code, stdout, err = run_inproc(capsys, "acc", lottery, out, "-f", "json")
    assert code == 0, err
    assert {r["method"] for r in json.loads(stdout)["accuracy"]} == {"imp", label}


def build_rerun(runs: Path, name: str, seed: int, config: str = "resnet18-cifar", rerun=None):
    """One more run of main.py under ``name``: get_directories puts its settings.txt (and
    checkpoints/initial.state) in ``prune_rate=0.0/<rerun>`` when the first folder exists."""
    folder = runs / config / name / "prune_rate=0.0"
    if rerun is not None:
        folder = folder / str(rerun)
    folder.mkdir(parents=True, exist_ok=True)
    text = (runs / "resnet18-cifar" / name / "prune_rate=0.0" / "settings.txt").read_text()
    (folder / "settings.txt").write_text(text.replace("seed=7", f"seed={seed}"))


def test_paper_code_initial_state_is_the_init(tmp_path, capsys):
    runs = tmp_path / "runs"
    name = "cifar-imp_seed_7"
    _, _, warmed, _ = build_paper_runs(runs, name, warm_up=True)
    initial = runs / "resnet18-cifar" / name / "prune_rate=0.0" / "checkpoints" / "initial.state"
    true_init = torch.load(initial, weights_only=True)["state_dict"]
    out = tmp_path / "run"
    code, _, err = run_inproc(capsys, "import", "paper-code", runs, "--out", out)
    assert code == 0, err
    init = load_file(str(out / "init.safetensors"))
    np.testing.assert_array_equal(init["conv1.weight"], true_init["module.conv1.weight"].numpy())
    assert "conv1.mask" not in init
    rewind = load_file(str(out / "rewind.safetensors"))
    np.testing.assert_array_equal(rewind["conv1.weight"], warmed["module.conv1.weight"])
    assert not np.array_equal(init["conv1.weight"], rewind["conv1.weight"])
    m = manifest(out)
    assert m["references"]["init"]["source"].endswith("checkpoints/initial.state")
    assert not any("--init" in n for n in m["notes"])
    code, stdout, err = run_inproc(capsys, "flips", out, "-f", "json")
    assert code == 0, err


def test_paper_code_without_init_points_flips_to_the_rewind_point(tmp_path, capsys):
    runs = tmp_path / "runs"
    build_paper_runs(runs, "lrr", settings=False)
    out = tmp_path / "run"
    assert run_inproc(capsys, "import", "paper-code", runs, "--out", out)[0] == 0
    assert any("--reference rewind" in n for n in manifest(out)["notes"])
    code, _, err = run_inproc(capsys, "flips", out)
    assert code == 1 and "no init reference" in err and "--reference rewind" in err
    assert run_inproc(capsys, "flips", out, "--reference", "rewind")[0] == 0


def test_paper_code_rerun_under_the_same_name(tmp_path, capsys):
    runs = tmp_path / "runs"
    name = "cifar-imp_seed_7"
    build_paper_runs(runs, name)
    build_rerun(runs, name, seed=8, rerun=0)
    build_rerun(runs, name, seed=9, rerun=1)
    out = tmp_path / "run"
    code, _, err = run_inproc(capsys, "import", "paper-code", runs, "--out", out)
    assert code == 0, err
    m = manifest(out)
    # The last re-run wrote the model files; its settings say what they are.
    assert m["config"]["seed"] == 9 and m["config"]["method"] == "imp"
    assert m["levels"][0]["test_acc"] is not None
    assert any("several settings.txt" in n and "--settings" in n for n in m["notes"])
    first = runs / "resnet18-cifar" / name / "prune_rate=0.0" / "settings.txt"
    out2 = tmp_path / "run2"
    code, _, err = run_inproc(capsys, "import", "paper-code", runs, "-o", out2, "--settings", first)
    assert code == 0, err
    assert manifest(out2)["config"]["seed"] == 7
    # Settings of unrelated configs are not a chain of re-runs: none is guessed.
    build_rerun(runs, name, seed=10, config="resnet50-cifar100")
    out3 = tmp_path / "run3"
    assert run_inproc(capsys, "import", "paper-code", runs, "--out", out3)[0] == 0
    m = manifest(out3)
    assert m["config"]["method"] == "unknown" and m["config"]["seed"] is None
    assert any("none was read" in n and "--settings FILE" in n for n in m["notes"])
    code, _, err = run_inproc(
        capsys, "import", "paper-code", runs, "-o", tmp_path / "r4", "--settings", runs / "nope"
    )
    assert code == 1 and "--settings" in err


def test_paper_code_incomplete_run(tmp_path, capsys):
    runs = tmp_path / "runs"
    name = "cifar-lrr"
    build_paper_runs(runs, name, densities=(0.8, 0.64), threshold_list=(0.8, 0.64, 0.5))
    (runs / f"model_{name}_trained.pt").unlink()
    out = tmp_path / "run"
    assert run_inproc(capsys, "import", "paper-code", runs, "--out", out)[0] == 0
    m = manifest(out)
    assert m["complete"] is False and len(m["levels"]) == 2
    (note,) = [n for n in m["notes"] if "did not finish" in n]
    assert "2 of the 3 levels" in note and f"model_{name}_trained.pt" in note


def test_a_malicious_pickle_is_refused_naming_what_torch_refused(tmp_path, capsys):
    marker = tmp_path / "pwned"
    src = tmp_path / "evil"
    src.mkdir()
    torch.save({"0.weight": torch.ones(2, 2), "x": RunsACommand(marker)}, src / "level_0.pt")
    code, _, err = run_inproc(capsys, "import", "torch-prune", src, "--out", tmp_path / "r")
    assert code == 1 and len(err.splitlines()) == 1
    assert "refuses to load GLOBAL posix.system" in err and str(src / "level_0.pt") in err
    assert err.rstrip().endswith("torch.save(model.state_dict(), path)")  # not cut mid-word
    assert not marker.exists()


def test_torch_prune_missing_mask_names_the_mask(torch_prune_folder, tmp_path, capsys):
    src, _, _ = torch_prune_folder
    state = torch.load(src / "level_4.pt", weights_only=True)
    del state["3.weight_mask"]
    torch.save(state, src / "level_4.pt")
    code, _, err = run_inproc(capsys, "import", "torch-prune", src, "--out", tmp_path / "r")
    assert code == 1 and len(err.splitlines()) == 1
    assert str(src / "level_4.pt") in err and "3.weight_orig but no 3.weight_mask" in err


def test_nan_weights_are_refused_at_import_naming_the_source(torch_prune_folder, tmp_path, capsys):
    src, _, _ = torch_prune_folder
    state = torch.load(src / "level_6.pt", weights_only=True)
    mask = state["0.weight_mask"]
    pruned = (mask == 0).nonzero()[0].tolist()
    state["0.weight_orig"][tuple(pruned)] = float("nan")  # pruned: written as 0, no harm
    torch.save(state, src / "level_6.pt")
    assert run_inproc(capsys, "import", "torch-prune", src, "--out", tmp_path / "ok")[0] == 0
    alive = (mask == 1).nonzero()[0].tolist()
    state["0.weight_orig"][tuple(alive)] = float("inf")
    torch.save(state, src / "level_6.pt")
    code, _, err = run_inproc(capsys, "import", "torch-prune", src, "--out", tmp_path / "r")
    assert code == 1 and len(err.splitlines()) == 1
    assert f"{src / 'level_6.pt'}: tensor 0.weight holds NaN or inf" in err
    assert not (tmp_path / "r").exists()


def test_an_unsafe_val_acc_file_is_noted_as_refused(tmp_path, capsys):
    runs = tmp_path / "runs"
    name = "cifar-imp_seed_7"
    build_paper_runs(runs, name)
    marker = tmp_path / "pwned"
    torch.save([50.0, RunsACommand(marker)], runs / f"val_acc_{name}.pt")
    out = tmp_path / "run"
    assert run_inproc(capsys, "import", "paper-code", runs, "--out", out)[0] == 0
    (note,) = [n for n in manifest(out)["notes"] if n.startswith(f"val_acc_{name}.pt")]
    assert "refused as unsafe" in note and "GLOBAL posix.system" in note
    assert "not a list of numbers" not in note and not marker.exists()

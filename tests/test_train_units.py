"""Pieces of the training core: LR schedules, presets and option precedence, pruning masks."""

import math

import pytest

from signscope.errors import SignscopeError, UsageError
from trainers.config import DEFAULTS, PRESETS, config_for_resume, resolve_config
from trainers.schedule import level_lrs, lr_at, step_milestones

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


# --------------------------------------------------------------------------- schedules


def test_step_warmup_milestones_follow_the_paper_and_scale():
    assert step_milestones(150, 10) == (70, 130)  # epochs 60 and 120 of the remaining 140
    assert step_milestones(80, 10) == (40, 70)


def test_warmup_is_linear_and_restarts_every_level():
    lrs = level_lrs("cosine-warmup", steps_per_epoch=4, epochs=5, warmup_epochs=2, peak=0.1)
    flat = [lr for epoch in lrs for lr in epoch]
    assert flat[:8] == pytest.approx([0.1 * (i + 1) / 8 for i in range(8)])
    assert flat[8] == pytest.approx(0.1)  # the cosine starts at the peak
    assert all(a > b for a, b in zip(flat[8:], flat[9:], strict=False))  # and decays monotonically
    assert flat[-1] < 0.01
    # Every level calls level_lrs afresh, so every level gets the same schedule.
    assert level_lrs("cosine-warmup", 4, 5, 2, 0.1) == lrs


def test_imagenet_step_schedule_follows_a3_iii():
    """Paper A.3 (iii): 0.01 during the warmup, then from 0.1 divided by 10 every 30 epochs."""
    spe = 4  # steps per epoch
    lrs = [lr_at("imagenet-step", e * spe, spe, 90, 10, 0.1) for e in range(90)]
    assert lrs[:10] == [0.01] * 10
    assert lrs[10] == lrs[39] == pytest.approx(0.1)
    assert lrs[40] == lrs[69] == pytest.approx(0.01)
    assert lrs[70] == lrs[89] == pytest.approx(0.001)
    assert (
        resolve_config("imagenet-resnet50", {"schedule": "imagenet-step"}).schedule
        == "imagenet-step"
    )


def test_step_and_constant_schedules():
    peak = 0.1
    assert lr_at("step-warmup", 10 * 3, 3, 150, 10, peak) == pytest.approx(peak)
    assert lr_at("step-warmup", 69 * 3 + 2, 3, 150, 10, peak) == pytest.approx(peak)
    assert lr_at("step-warmup", 70 * 3, 3, 150, 10, peak) == pytest.approx(peak * 0.1)
    assert lr_at("step-warmup", 130 * 3, 3, 150, 10, peak) == pytest.approx(peak * 0.01)
    assert lr_at("constant", 999, 10, 150, 0, peak) == peak
    assert lr_at("cosine-warmup", 0, 10, 5, 0, peak) == peak
    assert lr_at("cosine-warmup", 25, 10, 5, 0, peak) == pytest.approx(
        peak * 0.5 * (1 + math.cos(math.pi / 2))
    )


# --------------------------------------------------------------------------- config


def test_every_table1_row_has_a_preset():
    assert set(PRESETS) == {
        "demo",
        "mnist1d",
        "cifar10-resnet18",
        "cifar100-resnet50",
        "tinyimagenet-resnet50",
        "imagenet-resnet50",
        "cifar10-vgg16",
    }
    c = resolve_config("cifar100-resnet50")
    assert (c.model, c.dataset, c.epochs, c.lr, c.schedule, c.batch_size) == (
        "resnet50",
        "cifar100",
        150,
        0.1,
        "step-warmup",
        256,
    )
    assert (c.rewind_epoch, c.lr_warmup_epochs, c.weight_decay, c.momentum) == (10, 10, 1e-3, 0.9)
    assert resolve_config("tinyimagenet-resnet50").rewind_epoch == 50
    assert resolve_config("cifar10-resnet18").weight_decay == 1e-4
    c = resolve_config("imagenet-resnet50")
    assert (c.model, c.dataset, c.epochs, c.rewind_epoch, c.weight_decay, c.batch_size) == (
        "resnet50",
        "imagenet",
        90,
        10,
        1e-4,
        256,
    )


def test_explicit_options_override_a_preset_even_when_equal_to_the_default():
    # lr_warmup_epochs=1 is the global default; given explicitly it must beat the preset's 10.
    assert DEFAULTS.lr_warmup_epochs == 1
    c = resolve_config("cifar10-resnet18", {"lr_warmup_epochs": 1, "epochs": 60})
    assert (c.lr_warmup_epochs, c.epochs, c.rewind_epoch, c.preset) == (
        1,
        60,
        50,
        "cifar10-resnet18",
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"levels": 0}, "--levels"),
        ({"prune_fraction": 1.0}, "--prune-fraction"),
        ({"prune_fraction": 0.0}, "--prune-fraction"),
        ({"model": "resnet9"}, "resnet18"),
        ({"dataset": "mnist"}, "cifar10"),
        ({"schedule": "linear"}, "cosine-warmup"),
        ({"rewind_epoch": 7}, "--rewind-epoch"),
        ({"lr_warmup_epochs": 6}, "--lr-warmup-epochs"),
    ],
)
def test_impossible_settings_are_user_errors(overrides, message):
    with pytest.raises(SignscopeError, match=message):
        resolve_config("demo", overrides)


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(SignscopeError, match="cifar10-resnet18"):
        resolve_config("cifar10-resnet20")


def test_bn_rewind_needs_lrr():
    with pytest.raises(UsageError):
        resolve_config("demo", {"method": "imp", "bn_rewind": True})


def test_resume_accepts_more_levels_but_no_other_change():
    stored = resolve_config("demo").to_json()
    assert config_for_resume(stored, {"levels": 12, "lr": 0.1}, "r").levels == 12
    with pytest.raises(UsageError, match="--lr"):
        config_for_resume(stored, {"lr": 0.05}, "r")


def test_resume_allows_exactly_the_settings_marked_resumable():
    from trainers.config import RESUMABLE_CHANGES

    assert RESUMABLE_CHANGES == {"levels", "device", "threads", "eval_every", "data_workers"}
    stored = resolve_config("demo").to_json()
    changed = config_for_resume(stored, {"threads": 3, "data_workers": 0, "eval_every": 2}, "r")
    assert (changed.threads, changed.data_workers, changed.eval_every) == (3, 0, 2)


def test_every_setting_marked_as_an_option_is_a_train_option():
    import inspect

    from signscope.cli.train import train
    from trainers.config import FIELDS, OPTIONS

    parameters = set(inspect.signature(train).parameters)
    assert set(OPTIONS) <= parameters
    # The one setting that is a parameter but no option: --preset, which the command reads itself.
    assert parameters & (set(FIELDS) - set(OPTIONS)) == {"preset"}


# --------------------------------------------------------------------------- pruning


def test_target_alive_stays_within_one_weight_of_the_density():
    from trainers.pruning import target_alive

    for total in (1, 7, 93728, 11_173_962):
        for level in range(30):
            assert abs(target_alive(total, 0.2, level) - total * 0.8**level) <= 0.5


def test_global_magnitude_prunes_smallest_and_breaks_ties_by_position():
    from trainers.pruning import PruneContext
    from trainers.pruning_criteria import magnitude

    w = {
        "a.weight": torch.tensor([[1.0, -2.0], [0.5, 3.0]]),
        "b.weight": torch.tensor([[2.0, -0.5, 0.1]]),
    }
    masks = {n: torch.ones_like(t, dtype=torch.bool) for n, t in w.items()}
    masks["b.weight"][0, 2] = False  # already pruned: must stay pruned
    out = magnitude(PruneContext(level=1, weights=w, masks=masks, n_keep=4))
    # |values| alive: 1, 2, .5, 3, 2, .5 -> keep 3, 2, 2, 1; among the two 0.5s neither survives.
    assert out["a.weight"].tolist() == [[True, True], [False, True]]
    assert out["b.weight"].tolist() == [[True, False, False]]
    # With n_keep=5 the tie at 0.5 goes to the earlier position (a.weight before b.weight).
    out = magnitude(PruneContext(level=1, weights=w, masks=masks, n_keep=5))
    assert out["a.weight"].tolist() == [[True, True], [True, True]]
    assert out["b.weight"].tolist() == [[True, False, False]]


def test_level_start_rules():
    from trainers.pruning import level_start_state

    prev = {"w": torch.tensor([1.0, 2.0, 3.0]), "bn.weight": torch.tensor([5.0])}
    rewind = {"w": torch.tensor([-1.0, -2.0, -3.0]), "bn.weight": torch.tensor([1.0])}
    masks = {"w": torch.tensor([True, False, True])}
    kw = dict(prev_state=prev, rewind_state=rewind, masks=masks, bn_names=["bn.weight"])
    imp = level_start_state("imp", **kw)
    lrr = level_start_state("lrr", **kw)
    bnr = level_start_state("lrr", bn_rewind=True, **kw)
    assert imp["w"].tolist() == [-1.0, 0.0, -3.0] and imp["bn.weight"].item() == 1.0
    assert lrr["w"].tolist() == [1.0, 0.0, 3.0] and lrr["bn.weight"].item() == 5.0
    assert bnr["w"].tolist() == [1.0, 0.0, 3.0] and bnr["bn.weight"].item() == 1.0
    assert not torch.signbit(imp["w"][1])  # +0.0, as the level files store pruned weights


def test_pruned_weights_stay_exactly_zero_under_momentum_and_weight_decay():
    from trainers.loop import make_optimizer, train_one_epoch
    from trainers.pruning import MaskEnforcer

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    params = {"0.weight": model[0].weight, "2.weight": model[2].weight}
    masks = {n: torch.rand(p.shape) > 0.5 for n, p in params.items()}
    with torch.no_grad():
        for n, p in params.items():
            p.mul_(masks[n])
    opt = make_optimizer(model, lr=0.5, momentum=0.9, weight_decay=0.1, device=torch.device("cpu"))
    data = [(torch.randn(8, 6), torch.randint(0, 3, (8,))) for _ in range(5)]
    stats = train_one_epoch(model, opt, data, [0.5] * 5, MaskEnforcer(params, masks))
    assert stats.examples == 40
    for n, p in params.items():
        assert (p[~masks[n]] == 0).all()
        assert (p[masks[n]] != 0).all()


def test_foreach_sgd_matches_torch_sgd_exactly():
    from trainers.loop import ForeachSGD

    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    b = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    b.load_state_dict(a.state_dict())
    ours = ForeachSGD(a.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    ref = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    for step in range(4):
        x = torch.randn(8, 5)
        for model, opt in ((a, ours), (b, ref)):
            opt.param_groups[0]["lr"] = 0.1 / (step + 1)
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))

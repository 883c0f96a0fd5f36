"""training.recipes: recipe resolution, the learning-rate schedules and the optimiser groups."""

import pytest
import torch

from aicore.models import build_model
from training import recipes
from training.recipes import RECIPES, lr_factor, make_optimizer, make_scheduler, resolve


def config(**overrides: object) -> dict:
    return resolve({"recipe": "default", "epochs": 10, **overrides})


def test_resolve_fills_unset_options_from_the_recipe_and_keeps_given_ones() -> None:
    cfg = resolve({"recipe": "seed", "lr": None, "momentum": 0.5})
    assert cfg["lr"] == 0.08 and cfg["momentum"] == 0.5 and cfg["schedule"] == "step"


def test_resolve_treats_a_config_from_before_recipes_as_seed() -> None:
    cfg = resolve({"lr": 0.08, "momentum": 0.0, "step_size": 3, "gamma": 0.5})
    assert cfg["recipe"] == "seed" and cfg["augment"] == "affine" and cfg["patience"] == 0


def test_seed_recipe_is_the_original() -> None:
    seed = RECIPES["seed"]
    assert (seed["optimizer"], seed["lr"], seed["momentum"], seed["weight_decay"]) == \
        ("sgd", 0.08, 0.0, 0.0)
    assert (seed["schedule"], seed["step_size"], seed["gamma"], seed["warmup_epochs"]) == \
        ("step", 3, 0.5, 0)
    assert seed["label_smoothing"] == 0 and seed["patience"] == 0


def test_step_schedule_equals_steplr_at_every_epoch() -> None:
    cfg = resolve({"recipe": "seed", "epochs": 10})
    factor = lr_factor(cfg, steps_per_epoch=7)
    model = torch.nn.Linear(2, 2)
    reference = torch.optim.SGD(model.parameters(), lr=0.08)
    step_lr = torch.optim.lr_scheduler.StepLR(reference, step_size=3, gamma=0.5)
    for epoch in range(10):
        for step in range(epoch * 7, (epoch + 1) * 7):
            assert 0.08 * factor(step) == pytest.approx(reference.param_groups[0]["lr"])
        reference.step()
        step_lr.step()


def test_cosine_schedule_warms_up_then_decays_to_zero() -> None:
    factor = lr_factor(config(warmup_epochs=2), steps_per_epoch=10)
    assert factor(0) == pytest.approx(recipes.WARMUP_START)
    assert factor(10) == pytest.approx(0.55)  # halfway through the warm-up
    assert factor(20) == pytest.approx(1.0)
    values = [factor(s) for s in range(20, 100)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    assert factor(99) < 0.001


def test_scheduler_placed_at_a_step_continues_the_same_curve() -> None:
    cfg = config()
    model = torch.nn.Linear(2, 2)
    straight_opt = make_optimizer(model, cfg)
    straight = make_scheduler(straight_opt, cfg, steps_per_epoch=5)
    for _ in range(23):
        straight_opt.step()
        straight.step()
    resumed_opt = make_optimizer(model, cfg)
    make_scheduler(resumed_opt, cfg, steps_per_epoch=5, step=23)
    assert resumed_opt.param_groups[0]["lr"] == pytest.approx(straight_opt.param_groups[0]["lr"])
    assert resumed_opt.param_groups[0]["lr"] == pytest.approx(cfg["lr"] * lr_factor(cfg, 5)(23))


def test_weight_decay_skips_biases_and_norm_layers() -> None:
    model = build_model("resnet50", num_classes=3)
    decayed, plain = make_optimizer(model, config()).param_groups
    assert decayed["weight_decay"] == 0.05 and plain["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decayed["params"]) and all(p.ndim == 1 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))



def test_default_is_adamw_and_sgd_nesterov_is_built_when_asked() -> None:
    assert isinstance(make_optimizer(torch.nn.Linear(2, 2), config()), torch.optim.AdamW)
    optimizer = make_optimizer(torch.nn.Linear(2, 2), config(optimizer="sgd", nesterov=True))
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.param_groups[0]["nesterov"] and optimizer.param_groups[0]["momentum"] == 0.9


@pytest.mark.parametrize(("overrides", "message"), [
    ({"nesterov": True}, "--nesterov needs --optimizer sgd"),
    ({"optimizer": "sgd", "nesterov": True, "momentum": 0.0}, "--nesterov needs"),
    ({"label_smoothing": 1.0}, "--label-smoothing must be in"),
    ({"patience": -1}, "must be 0 or more"),
    ({"head_init": "probe"}, "--head-init probe needs --pretrained"),
    ({"wise_ft": True}, "--wise-ft needs --pretrained"),
    ({"freeze_blocks": 5}, "--freeze-blocks needs --pretrained"),
    ({"freeze_blocks": -1, "pretrained": True}, "--freeze-blocks must be 0 or more"),
    ({"mixup": 0.2, "model": "text"}, "--mixup blends pictures: --model text"),
])
def test_check_names_the_impossible_combination(overrides: dict, message: str) -> None:
    assert message in recipes.check(config(**overrides))

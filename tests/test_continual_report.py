"""benchmarks/continual.py's JSON report: ``--update`` adds rows without losing the ones already
there, every row names the command that made it, and a misspelt departure is refused; and
benchmarks/continual_tuning.py, which chooses the settings on seeds the report leaves out."""

import importlib.util
import json

import pytest
import torch

from nullspace.continual.models import model_for
from nullspace.paths import REPO_ROOT


def load_script(file_name: str):
    """A benchmark script as a module (it sets torch's thread count: the caller restores it)."""
    spec = importlib.util.spec_from_file_location(file_name.removesuffix(".py"), REPO_ROOT / "benchmarks" / file_name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def script():
    threads = torch.get_num_threads()
    yield load_script("continual.py")
    torch.set_num_threads(threads)


QUICK = ["--benchmarks", "digits", "--seeds", "0", "--epochs", "1", "--num-tasks", "2", "--no-step-time"]


def test_update_keeps_the_other_methods_rows_and_records_each_command(script, tmp_path):
    out = tmp_path / "continual.json"
    assert script.main([*QUICK, "--methods", "finetune-adam", "--no-variants", "--json", str(out)]) == 0
    first = json.loads(out.read_text())
    assert script.main([*QUICK, "--methods", "--variants", "adam-nscl-paper+official-eps", "--json", str(out),
                        "--update"]) == 0
    report = json.loads(out.read_text())
    rows = {row["method"]: row for row in report["rows"]}
    assert set(rows) == {"finetune-adam", "adam-nscl-paper+official-eps"}
    assert rows["finetune-adam"] == first["rows"][0]
    assert "--variants adam-nscl-paper+official-eps" in rows["adam-nscl-paper+official-eps"]["command"]
    assert "--methods finetune-adam" in rows["finetune-adam"]["command"]
    assert {run["method"] for run in report["runs"]} == set(rows)
    assert report["benchmarks"]["digits"] == first["benchmarks"]["digits"]   # no step time measured the second time


def test_without_update_the_file_is_replaced(script, tmp_path):
    out = tmp_path / "continual.json"
    assert script.main([*QUICK, "--methods", "finetune-adam", "--no-variants", "--json", str(out)]) == 0
    assert script.main([*QUICK, "--methods", "finetune-sgd", "--no-variants", "--json", str(out)]) == 0
    assert [row["method"] for row in json.loads(out.read_text())["rows"]] == ["finetune-sgd"]


def test_an_unknown_departure_is_refused_with_the_choices(script, tmp_path, capsys):
    with pytest.raises(SystemExit):
        script.main([*QUICK, "--methods", "--variants", "adam-nscl-paper+typo", "--json", str(tmp_path / "x.json")])
    err = capsys.readouterr().err
    assert "adam-nscl-paper+typo" in err and "adam-nscl-paper+official-eps" in err
    assert not (tmp_path / "x.json").exists()


@pytest.fixture
def tuning():
    threads = torch.get_num_threads()
    yield load_script("continual_tuning.py")
    torch.set_num_threads(threads)


def test_course_methods_take_a_tuned_value_by_method_key():
    from nullspace.continual import recipes

    assert recipes.course_methods("mixed", tuned={"ewc": 7.0})["ewc"]().strength == 7.0
    assert recipes.course_methods("mixed")["ewc"]().strength == recipes.EWC_STRENGTH["mixed"]


@pytest.mark.parametrize("name", ["digits", "gratings", "scrambled", "mixed", "cifar100"])
def test_where_baselines_meet_adam_nscl_every_adam_method_trains_the_head_at_its_rate(name):
    """A fair comparison: where the baselines are compared with Adam-NSCL, no Adam method's head
    learns faster than another's (a slower head costs a baseline plasticity that has nothing to do
    with forgetting); elsewhere the baselines train every parameter at one rate."""
    from nullspace.continual import recipes
    from nullspace.continual.benchmarks import Task

    shared_lr, nscl_head_lr = (1e-4, 1e-3) if name == "cifar100" else (1e-3, recipes.HEAD_LR)
    baseline_head_lr = nscl_head_lr if name in recipes.COMPARED_WITH_ADAM_NSCL else shared_lr
    model = model_for((1, 4, 4), 2, 3, "mlp")
    x = torch.zeros(6, 1, 4, 4)
    task = Task(index=0, classes=(0, 1, 2), train_x=x, train_y=torch.zeros(6, dtype=torch.long), test_x=x,
                test_y=torch.zeros(6, dtype=torch.long))
    shared = [p for p in model.shared_parameters() if p.requires_grad]
    head = list(model.heads[0].parameters())
    methods = recipes.course_methods(name)
    for key, expected_head_lr in (("finetune-adam", baseline_head_lr), ("ewc", baseline_head_lr),
                                  ("lwf", baseline_head_lr), ("adam-nscl-paper", nscl_head_lr),
                                  ("adam-nscl-course", nscl_head_lr)):
        groups = methods[key]().optimizer(model, task, shared, head).param_groups
        rate = {id(p): group["lr"] for group in groups for p in group["params"]}
        assert {rate[id(p)] for p in head} == {expected_head_lr}, key
        assert rate[id(shared[0])] == shared_lr, key
    assert set(recipes.COMPARED_WITH_ADAM_NSCL) == {"scrambled", "mixed", "cifar100"}


def test_tuning_records_each_value_and_names_the_best_mean_acc(tuning, tmp_path, capsys):
    out = tmp_path / "tuning.json"
    quick = ["--benchmark", "digits", "--method", "ewc", "--epochs", "1", "--num-tasks", "2", "--json", str(out)]
    assert tuning.main([*quick, "--values", "10", "--seeds", "100"]) == 0
    assert tuning.main([*quick, "--values", "1e4", "--seeds", "100", "101"]) == 0
    stored = json.loads(out.read_text())
    assert set(stored) == {"digits|ewc|10", "digits|ewc|10000"}
    assert [run["seed"] for run in stored["digits|ewc|10000"]] == [100, 101]
    table = tuning.summary(stored, "digits", "ewc")
    best = max(table, key=lambda entry: entry[1]["ACC"])[0]
    assert capsys.readouterr().out.rstrip().endswith(f"highest mean ACC: {best:g}")


def test_every_recorded_grid_chose_the_value_the_recipes_use(tuning):
    """The stored tuning record and the recipes agree: for every benchmark and method tuned on seeds
    100 and 101, the value with the highest mean ACC is the one ``recipes.TUNED`` runs."""
    from nullspace.continual import recipes

    stored = json.loads(tuning.RESULTS.read_text(encoding="utf-8"))
    grids = {tuple(key.split("|")[:2]) for key in stored}
    assert ("mixed", "ewc") in grids and ("scrambled", "ewc") in grids
    for benchmark, method in sorted(grids):
        table = tuning.summary(stored, benchmark, method)
        assert all(seeds == 2 for _, _, seeds in table), (benchmark, method)
        best = max(table, key=lambda entry: entry[1]["ACC"])[0]
        assert best == recipes.TUNED[method][benchmark], (benchmark, method, best)


def test_tuning_refuses_the_reported_seeds(tuning, tmp_path, capsys):
    with pytest.raises(SystemExit):
        tuning.main(["--benchmark", "digits", "--method", "ewc", "--values", "10", "--seeds", "1", "100",
                     "--json", str(tmp_path / "t.json")])
    assert "--seeds: [1] are the seeds benchmarks/continual.py reports" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()


def test_one_run_uses_the_recipes_settings_and_the_given_changes():
    from nullspace.continual import recipes

    make = recipes.course_methods("digits")["finetune-adam"]
    result = recipes.train_run("digits", make, seed=0, epochs=1, num_tasks=2)
    assert result.epochs == 1 and result.accuracy.shape == (2, 2) and result.seed == 0
    with pytest.raises(TypeError, match="batch_sise"):
        recipes.train_run("digits", make, seed=0, epochs=1, num_tasks=2, batch_sise=8)

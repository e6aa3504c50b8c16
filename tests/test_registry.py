from __future__ import annotations

import pytest

from regbench.benchmarks.taskspec import TASKS, get_task
from regbench.harness.core.errors import ConfigError
from regbench.harness.core.registry import Registry
from regbench.harness.run.method import METHODS, Method, get_method, register_method


def test_unknown_name_suggests_close_match():
    reg: Registry[int] = Registry("widget")
    reg.register("alpha", 1)
    reg.register("beta", 2)
    with pytest.raises(ConfigError, match=r"unknown widget 'alpah'; did you mean 'alpha'\?"):
        reg.get("alpah")


def test_unknown_name_without_close_match_lists_known():
    reg: Registry[int] = Registry("widget")
    reg.register("alpha", 1)
    with pytest.raises(ConfigError, match=r"\(known: alpha\)") as info:
        reg.get("zzz")
    assert "did you mean" not in str(info.value)


def test_names_are_case_and_dash_insensitive():
    reg: Registry[int] = Registry("widget")
    reg.register("repina_i", 3)
    assert reg.get("REPINA-I") == 3


def test_duplicate_registration_is_refused():
    reg: Registry[int] = Registry("widget")
    reg.register("a", 1)
    with pytest.raises(ConfigError, match="already registered"):
        reg.register("a", 2)


def test_lazy_loader_runs_once_on_first_lookup():
    calls = []
    reg: Registry[int] = Registry("widget", loader=lambda: (calls.append(1), reg.register("x", 1)))
    assert calls == []
    assert reg.get("x") == 1 and reg.names() == ["x"]
    assert calls == [1]


def test_builtin_methods_and_tasks_are_registered():
    assert {"std", "std++"} <= set(METHODS.names())
    assert {"sst2", "rte", "stsb", "conll2003"} <= set(TASKS.names())


def test_method_lookup_suggests():
    with pytest.raises(ConfigError, match="did you mean 'std'"):
        get_method("stdd")


def test_task_lookup_suggests():
    with pytest.raises(ConfigError, match="did you mean 'sst2'"):
        get_task("sst-22")


def test_method_params_are_checked_and_coerced():
    method = get_method("std++", {"epoch_multiplier": "3"})
    assert method.config.epoch_multiplier == 3 and method.num_epochs(2) == 6
    with pytest.raises(ConfigError, match="has no parameter 'bogus'"):
        get_method("std++", {"bogus": 1})
    with pytest.raises(ConfigError, match="expects a int"):
        get_method("std++", {"epoch_multiplier": "many"})


def test_register_requires_a_name():
    class Nameless(Method):
        pass

    with pytest.raises(ConfigError, match="must set a class attribute 'name'"):
        register_method(Nameless)


def test_search_spaces_start_with_lr():
    for _, cls in METHODS.items():
        assert "lr" in cls.search_space()
    assert get_method("std++").search_space()["lr"].high == pytest.approx(1e-4)

"""YAML numbers (harness/core/yamlio.py): every float spelling YAML 1.2 allows reads as a float in profiles and task
files (PyYAML alone reads ``1e-3`` as a string), and random bad values in either give one ConfigError line, never
another exception."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
import yaml
from grid_profiles import BASE
from optuna.distributions import FloatDistribution

pytest.importorskip("hypothesis", reason="the property tests need hypothesis (a dev dependency)")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from regbench.benchmarks.taskspec import TaskSpec, get_task, parse_task  # noqa: E402
from regbench.harness.cli import main  # noqa: E402
from regbench.harness.core import yamlio  # noqa: E402
from regbench.harness.core.errors import ConfigError  # noqa: E402
from regbench.harness.grid.profiles import KEYS, parse_profile  # noqa: E402


@st.composite
def float_text(draw) -> str:
    """A YAML 1.2 float from its grammar: signs, a leading or trailing dot, e or E, signed exponents."""
    whole = draw(st.integers(0, 999_999))
    frac = draw(st.one_of(st.none(), st.just(""), st.integers(0, 999_999).map(str)))
    exponent = draw(st.one_of(st.none(), st.integers(-12, 12)))
    if frac is None and exponent is None:
        exponent = 0  # neither a dot nor an exponent would be an integer
    leading_dot = bool(frac) and whole == 0 and draw(st.booleans())
    mantissa = ("" if leading_dot else str(whole)) + ("" if frac is None else f".{frac}")
    e = "" if exponent is None else draw(st.sampled_from("eE")) + draw(
        st.sampled_from(["+", ""] if exponent >= 0 else ["-"])) + str(abs(exponent))
    return draw(st.sampled_from(["", "+", "-"])) + mantissa + e


FORMS = {"repr": repr, "e": lambda x: f"{x:e}", "E": lambda x: f"{x:.2E}", "trap": lambda x: f"{x:.0e}",
         "plus": lambda x: "+" + f"{x:.3e}".replace("e-0", "e-").replace("e+0", "e"),
         "dot": lambda x: f"{x:.6f}".lstrip("0")}


@st.composite
def spelled(draw, low: float, high: float, forms: str = "repr e E trap plus") -> str:
    """A number in [low, high] as people write it: 1e-05 (the trap: no dot), 1.5E-03, +2.5e-3, .25, ..."""
    x = draw(st.floats(low, high))
    return FORMS[draw(st.sampled_from(forms.split()))](x)


@given(float_text())
def test_any_float_spelling_reads_as_a_float(text):
    value = yamlio.load_text(f"v: {text}\nw: [{text}]\n")
    assert value == {"v": float(text), "w": [float(text)]} and type(value["v"]) is float


@pytest.mark.parametrize(("text", "value"), [("1e-3", 1e-3), ("1.0e-3", 1e-3), ("1E5", 1e5), ("+1e+3", 1e3),
                                             (".5", 0.5), ("-2.", -2.0), ("1_000.5", 1000.5), (".inf", math.inf)])
def test_the_spellings_of_the_issue(text, value):
    assert yamlio.load_text(f"v: {text}")["v"] == value
    assert type(yaml.safe_load("v: 1e-3")["v"]) is str  # the trap: PyYAML's YAML 1.1 reading


@pytest.mark.parametrize(("text", "value"), [("12", 12), ("0x1f", 31), ("true", True), ("null", None), (".", "."),
                                             ("1e", "1e"), ("1.2.3", "1.2.3"), ("'1e-3'", "1e-3"), ("~", None)])
def test_everything_else_reads_as_before(text, value):
    assert yamlio.load_text(f"v: {text}")["v"] == value == yaml.safe_load(f"v: {text}")["v"]


def test_every_shipped_yaml_reads_the_same_as_before():
    root = Path(__file__).resolve().parents[1]
    files = [*root.glob("benchmarks/tasks/*.yaml"), *root.glob("benchmarks/profiles/*.yaml")]
    assert len(files) > 30
    for path in files:  # so no cell key or record changes
        assert repr(yamlio.load(path)) == repr(yaml.safe_load(path.read_text())), path


@settings(max_examples=60, deadline=None)
@given(low=spelled(1e-7, 1e-5), high=spelled(1e-4, 1.0), noise=spelled(0.0, 0.9, "repr e E trap plus dot"),
       decay=spelled(0.0, 10.0), dropout=spelled(0.0, 0.9, "repr e E trap dot"))
def test_profile_numbers_in_any_spelling(low, high, noise, decay, dropout):
    text = yaml.safe_dump({k: v for k, v in BASE.items() if k != "noise"}) + (
        f"noise: [0.0, {noise}]\ndropout: {dropout}\ntrain: {{weight_decay: {decay}}}\n"
        f"search_space: {{std: {{lr: {{low: {low}, high: {high}, log: true}}}}}}\n")
    data = yamlio.load_text(text)
    if float(noise) == 0.0:
        data["noise"] = [0.0]  # two equal rates are one block twice: not what this test is about
    profile = parse_profile(data, "grid")
    assert profile.noise[-1] == float(noise) and profile.run.dropout == float(dropout)
    assert profile.run.train.weight_decay == float(decay)
    from regbench.harness.run.method import METHODS

    assert profile.space(METHODS.get("std"))["lr"] == FloatDistribution(float(low), float(high), log=True)


def _resplit_task(fraction: str) -> str:
    data = {k: v for k, v in yaml.safe_load(Path(get_task("trec").path).read_text()).items() if k != "ood"}
    data["splits"] = {"train": {"split": "train", "part": "pool"}, "test": {"split": "train", "part": "test"}}
    return yaml.safe_dump({k: v for k, v in data.items() if k != "resplit"}) + (
        f"resplit: {{test_fraction: {fraction}, seed: 1}}\n")


@settings(max_examples=60, deadline=None)
@given(spelled(0.01, 0.9, "repr e E trap plus dot"))
def test_task_numbers_in_any_spelling(fraction):
    spec = parse_task(yamlio.load_text(_resplit_task(fraction)))
    assert isinstance(spec, TaskSpec) and spec.resplit["test_fraction"] == float(fraction)


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=8), st.sampled_from(["1e-3", "k16", "n0", "full", "std", "all", "sst2", "x.yaml"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=6)


def _one_config_error_or_nothing(parse) -> None:
    try:
        parse()
    except ConfigError as err:
        assert "\n" not in str(err)


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from(sorted(KEYS)), value=VALUES)
def test_a_bad_profile_value_is_one_config_error(key, value):
    text = yaml.safe_dump({**BASE, key: value})
    _one_config_error_or_nothing(lambda: parse_profile(yamlio.load_text(text), "grid"))


TASK_KEYS = sorted(set(TaskSpec.__dataclass_fields__) - {"path", "extra"} | {"resplit", "num_labels"})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(TASK_KEYS), value=VALUES)
@example(key="mark_spans", value={"\n": None})  # found in CI: a line break inside a quoted key made two lines
@example(key="mark_spans", value={"\r": None})
def test_a_bad_task_value_is_one_config_error_line(key, value, capsys):
    data = {**yaml.safe_load(Path(get_task("sst2").path).read_text()), "name": "mytask", key: value}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mytask.yaml"
        path.write_text(yaml.safe_dump(data))
        _one_config_error_or_nothing(lambda: parse_task(yamlio.load(path), str(path)))
        code = main(["validate", str(path), "--no-data"])
    err = capsys.readouterr().err
    assert code in (0, 2) and "Traceback" not in err
    assert code == 0 or (len(err.strip().splitlines()) == 1 and err.startswith("regbench: error: "))

"""rank/trees.py: LightGBM's text model evaluated with numpy gives LightGBM's own predictions, and a
damaged text is a clear error."""

from __future__ import annotations

import functools
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reposearcher_plugin.rank import trees as trees_module
from reposearcher_plugin.rank.learned import lightgbm_module
from reposearcher_plugin.rank.trees import TreeModel, TreeModelError


def trained(objective: str = "lambdarank", nan: bool = False, leaves: int = 7, rounds: int = 40):
    lightgbm = lightgbm_module()
    rng = np.random.default_rng(0)
    features = rng.random((600, 5)) * rng.integers(0, 2, (600, 5))  # many exact zeros, as the ranker's
    if nan:
        features[rng.random((600, 5)) < 0.1] = np.nan
    relevance = (features[:, 0] + 0.5 * np.nan_to_num(features[:, 2]) > 0.7).astype(int)
    params = {
        "objective": objective,
        "num_leaves": leaves,
        "min_data_in_leaf": 5,
        "verbose": -1,
        "num_threads": 1,
        "deterministic": True,
    }
    data = lightgbm.Dataset(features, relevance, group=[20] * 30 if objective == "lambdarank" else None)
    booster = lightgbm.train(params, data, num_boost_round=rounds)
    return booster, booster.model_to_string()


@functools.cache
def small_model():
    return trained(rounds=3)


@pytest.mark.parametrize("nan", [False, True])
def test_predictions_are_lightgbms_exactly(nan: bool) -> None:
    booster, text = trained(nan=nan)
    model = TreeModel.from_text(text)
    rng = np.random.default_rng(1)
    rows = rng.random((300, 5)) * rng.integers(0, 2, (300, 5))
    rows[:5] = np.nan
    assert model.num_feature() == booster.num_feature() and model.num_trees() == booster.num_trees()
    # trained without missing values the splits are plain comparisons: evaluated through the leaf table
    assert (model._table is not None) == (not nan)
    assert np.array_equal(model.predict(rows), booster.predict(rows, num_threads=1))
    assert np.array_equal(model.predict(rows, num_iteration=7), booster.predict(rows, num_iteration=7))


@pytest.mark.parametrize("leaves", [2, 7, 9, 16])
def test_the_leaf_table_reaches_the_leaves_the_walk_reaches(leaves: int, monkeypatch) -> None:
    _, text = trained(leaves=leaves, rounds=25)
    model = TreeModel.from_text(text)
    assert (model._table is not None) == (leaves - 1 <= trees_module.TABLE_SPLITS)
    rng = np.random.default_rng(3)
    rows = rng.random((700, 5)) * rng.integers(0, 2, (700, 5))
    rows[:7] = np.nan  # read as 0 by both
    rows[7:9] = np.inf
    if model._table is None:
        return
    monkeypatch.setattr(trees_module, "TABLE_ROWS", 128)  # several chunks, the last one short
    for trees in (1, 10, model.num_trees()):
        assert np.array_equal(model._table.leaves(rows, trees), model._walk(rows, trees))


def test_contributions_add_up_to_the_score_from_lightgbms_expected_value() -> None:
    booster, text = trained()
    model = TreeModel.from_text(text)
    rows = np.random.default_rng(2).random((10, 5))
    ours = model.predict(rows, pred_contrib=True)
    shap = booster.predict(rows, pred_contrib=True)
    assert np.allclose(ours.sum(axis=1), model.predict(rows), atol=1e-12)
    assert np.allclose(ours[:, -1], shap[:, -1], atol=1e-9)  # the same expected value
    assert np.corrcoef(ours[:, :-1].ravel(), shap[:, :-1].ravel())[0, 1] > 0.8  # credited alike
    # the feature the labels depend on most is credited more than one they ignore
    assert np.abs(ours[:, 0]).sum() > np.abs(ours[:, 4]).sum()


def test_a_model_without_splits_predicts_its_constant() -> None:
    booster, text = trained(objective="regression", leaves=2, rounds=3)
    constant = TreeModel.from_text(text).predict(np.zeros((3, 5)))
    assert np.array_equal(constant, booster.predict(np.zeros((3, 5))))


CONSTANT_TREE = (
    "num_leaves=1\nnum_cat=0\nsplit_feature=\nsplit_gain=\nthreshold=\ndecision_type=\nleft_child=\n"
    "right_child=\nleaf_value=0.25\nleaf_weight=\nleaf_count=\ninternal_value=\ninternal_weight=\n"
    "internal_count=\nis_linear=0\nshrinkage=1\n"
)


@pytest.mark.parametrize("nan", [False, True])
def test_a_constant_tree_among_split_trees_is_lightgbms_too(nan: bool) -> None:
    # the trees are read end to end: a tree without splits shifts every later tree's nodes and leaves
    lightgbm = lightgbm_module()
    _, text = trained(nan=nan, rounds=5)
    head, mark, rest = text.partition("\nTree=1\n")
    _, end, tail = rest.partition("\n\n\nTree=2")
    edited = re.sub(r"tree_sizes=.*\n", "", head + mark + CONSTANT_TREE + end + tail)
    booster = lightgbm.Booster(model_str=edited)
    model = TreeModel.from_text(edited)
    rows = np.random.default_rng(4).random((60, 5)) * np.random.default_rng(5).integers(0, 2, (60, 5))
    rows[:3] = np.nan
    assert (model._table is not None) == (not nan)
    assert np.array_equal(model.predict(rows), booster.predict(rows, num_threads=1))
    contributions = model.predict(rows, pred_contrib=True)
    assert np.allclose(contributions.sum(axis=1), model.predict(rows), atol=1e-12)


def test_rows_of_the_wrong_width_are_refused() -> None:
    _, text = trained(rounds=2)
    with pytest.raises(TreeModelError, match="5 features"):
        TreeModel.from_text(text).predict(np.zeros((2, 4)))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda t: t.replace("max_feature_idx=", "max_feature_id="), "no max_feature_idx"),
        (lambda t: t.replace("left_child=", "left_child=9 ", 1), "do not match|out of range"),
        (lambda t: t.replace("threshold=", "threshold=x", 1), "not a list of numbers"),
        (lambda t: t.replace("num_leaves=", "num_leaves=x", 1), "no num_leaves"),
        (lambda t: "", "no max_feature_idx"),
    ],
)
def test_damaged_text_is_a_clear_error(damage, message) -> None:
    _, text = trained(rounds=3)
    with pytest.raises(TreeModelError, match=message):
        TreeModel.from_text(damage(text))


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_any_edit_of_a_model_loads_and_predicts_or_is_refused(data) -> None:
    # a cycle or an index past the arrays must never hang or crash with an IndexError
    _, text = small_model()
    lines = text.splitlines()
    at = data.draw(st.integers(0, len(lines) - 1))
    key = lines[at].partition("=")[0]
    value = " ".join(
        data.draw(st.lists(st.sampled_from(["0", "1", "-1", "-2", "3", "7", "1e9", "nan"]), max_size=8))
    )
    lines[at] = f"{key}={value}"
    try:
        model = TreeModel.from_text("\n".join(lines))
    except TreeModelError:
        return
    result = model.predict(np.random.default_rng(3).random((4, model.num_feature())))
    assert result.shape == (4,)

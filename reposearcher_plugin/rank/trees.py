"""LightGBM's text model, read and evaluated with numpy: the learned ranker at inference without importing
lightgbm (which imports scipy and pandas: 0.6 s, more than a warm localization takes).

A tree is arrays in LightGBM's layout (``split_feature``, ``threshold``, ``decision_type``,
``left_child`` / ``right_child`` where a negative child ``~i`` is leaf ``i``, ``leaf_value``,
``internal_value``); a prediction is the sum of the leaf each row reaches in each tree, in tree order, as
LightGBM sums it. Numerical splits only (the ranker's features are numbers): a model with a categorical
split is refused. Contributions are path attributions (Saabas): each split a row passes credits its
feature with the change in the expected value (the node's mean output over its training rows) from the
node to the child taken; a row's contributions plus the sum of the roots' expected values are its score.
Training keeps using lightgbm itself (rank/training.py); ``tests/test_ranker_trees.py`` checks that
predictions agree with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np

_CATEGORICAL = 1
_DEFAULT_LEFT = 2
_MISSING_ZERO, _MISSING_NAN = 1, 2
_ZERO_THRESHOLD = 1e-35  # LightGBM's kZeroThreshold: what a "zero" missing value is
# Trees with at most this many splits are evaluated through a table of their leaves (``_Table``): one
# entry per combination of their splits' outcomes.
TABLE_SPLITS = 8
TABLE_ROWS = 4096  # rows looked up at a time: bounds the memory of their combinations (trees x rows)


class TreeModelError(ValueError):
    """Text that is not a LightGBM model this reader can evaluate."""


class TreeModel:
    """A LightGBM model (its ``Booster.model_to_string()`` text) that predicts as ``Booster.predict`` does.
    Its trees are laid end to end in flat arrays, so one pass per tree level moves every (row, tree) pair:
    an internal node is its global index, a leaf ``~`` its global leaf index."""

    def __init__(self, forest: _Forest, feature_count: int) -> None:
        self.feature_count = feature_count
        self.tree_count = len(forest.internal)
        self.starts = np.where(forest.internal > 0, forest.node_base, ~forest.leaf_base)
        self.split_feature = forest.split_feature
        self.threshold = forest.threshold
        self.decision_type = forest.decision_type
        self.left_child = forest.left_child
        self.right_child = forest.right_child
        self.node_mean = forest.node_means()
        self.leaf_value = forest.leaf_value
        roots = np.maximum(self.starts, 0)
        self.root_values = np.where(
            self.starts >= 0,
            self.node_mean[roots] if len(self.node_mean) else 0.0,
            self.leaf_value[np.maximum(~self.starts, 0)] if len(self.leaf_value) else 0.0,
        ).astype(np.float64)
        sizes = forest.internal.tolist()
        self._table = _Table.of(self, sizes) if self._tableable(sizes) else None

    def _tableable(self, sizes: list[int]) -> bool:
        """Whether every split is a plain ``value <= threshold`` once NaN reads as 0 (no missing-value
        handling: what a model trained on data without missing values has) and no tree is too big."""
        missing = (self.decision_type >> 2) & 3
        return bool(sizes) and max(sizes) <= TABLE_SPLITS and not np.any(missing)

    @classmethod
    def from_text(cls, text: str) -> TreeModel:
        header, _, rest = text.partition("\nTree=")
        fields = _fields(header)
        try:
            single = int(fields.get("num_class", "1")) == 1 and int(fields["max_feature_idx"]) >= 0
        except (KeyError, ValueError):
            single = False
        if not single:
            raise TreeModelError("not a single-output LightGBM text model (no max_feature_idx)")
        blocks: list[dict[str, str]] = []
        if rest:
            body = rest.split("\nend of trees", 1)[0]
            blocks = [_fields(block) for block in ("Tree=" + body).split("\nTree=")]
        feature_count = int(fields["max_feature_idx"]) + 1
        forest = _Forest.of(blocks)
        if np.any(forest.split_feature >= feature_count):
            raise TreeModelError("damaged tree: a split on a feature past max_feature_idx")
        return cls(forest, feature_count)

    def num_feature(self) -> int:
        return self.feature_count

    def num_trees(self) -> int:
        return self.tree_count

    def _go_left(self, node: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Whether rows at internal ``node`` with feature ``values`` go left (NumericalDecision)."""
        kind = self.decision_type[node]
        missing = (kind >> 2) & 3
        values = np.where(np.isnan(values) & (missing != _MISSING_NAN), 0.0, values)
        is_missing = ((missing == _MISSING_ZERO) & (np.abs(values) <= _ZERO_THRESHOLD)) | (
            (missing == _MISSING_NAN) & np.isnan(values)
        )
        return np.where(is_missing, (kind & _DEFAULT_LEFT) != 0, values <= self.threshold[node])

    def _walk(self, matrix: np.ndarray, trees: int, contributions: np.ndarray | None = None) -> np.ndarray:
        """The global leaf each row reaches in each of the first ``trees`` trees (rows x trees); with
        ``contributions``, each split's change of expected value added to its feature's slot."""
        node = np.repeat(self.starts[None, :trees], len(matrix), axis=0)
        while True:
            rows, columns = np.nonzero(node >= 0)
            if not len(rows):
                return ~node
            at = node[rows, columns]
            feature = self.split_feature[at]
            left = self._go_left(at, matrix[rows, feature])
            child = np.where(left, self.left_child[at], self.right_child[at])
            if contributions is not None:
                after = np.where(
                    child >= 0, self.node_mean[np.maximum(child, 0)], self.leaf_value[np.maximum(~child, 0)]
                )
                np.add.at(contributions, (rows, feature), after - self.node_mean[at])
            node[rows, columns] = child

    def predict(
        self,
        matrix: np.ndarray,
        num_iteration: int | None = None,
        pred_contrib: bool = False,
        num_threads: int = 1,
    ) -> np.ndarray:
        """Scores (the sum over the first ``num_iteration`` trees, all when None), or with
        ``pred_contrib`` one row per input row: each feature's contribution, then the expected value."""
        del num_threads  # the signature of lightgbm's Booster.predict: the ranker calls either
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != self.feature_count:
            raise TreeModelError(f"expected rows of {self.feature_count} features, got shape {matrix.shape}")
        trees = (
            self.tree_count
            if num_iteration is None or num_iteration <= 0
            else min(num_iteration, self.tree_count)
        )
        if pred_contrib:
            out = np.zeros((len(matrix), self.feature_count + 1))
            self._walk(matrix, trees, out)
            out[:, -1] = float(np.sum(self.root_values[:trees]))
            return out
        leaves = self._table.leaves(matrix, trees) if self._table is not None else self._walk(matrix, trees)
        values = self.leaf_value[leaves]
        total = np.zeros(len(matrix))
        for column in range(trees):  # tree by tree, in double, as LightGBM adds them
            total += values[:, column]
        return total


@dataclass(frozen=True)
class _Table:
    """Every tree's splits padded to ``width`` slots (a pad compares anything with +inf: never read), and
    per tree the global leaf each combination of its splits' outcomes reaches (bit ``j`` of a
    combination: the tree's ``j``-th split went left). A prediction then compares every row with every
    split at once and looks its leaves up: a few whole-matrix operations instead of one pass per level
    over the (row, tree) pairs still inside a tree. Only for splits without missing-value handling
    (``TreeModel._tableable``), where going left is exactly ``value <= threshold`` with NaN read as 0."""

    width: int
    feature: np.ndarray  # trees x width
    threshold: np.ndarray  # trees x width
    leaf: np.ndarray  # trees x 2**width

    @classmethod
    def of(cls, model: TreeModel, sizes: list[int]) -> _Table:
        trees, width = len(sizes), max(sizes)
        feature = np.zeros((trees, width), dtype=np.int64)
        threshold = np.full((trees, width), np.inf)
        bases = np.cumsum([0, *sizes[:-1]])
        for tree, (base, size) in enumerate(zip(bases, sizes, strict=True)):
            feature[tree, :size] = model.split_feature[base : base + size]
            threshold[tree, :size] = model.threshold[base : base + size]
        # walk every (tree, combination) pair down at once: at a split, bit (node - its tree's base)
        combination = np.arange(1 << width, dtype=np.int64)[None, :]
        node = np.repeat(model.starts[:, None], 1 << width, axis=1)
        base = bases[:, None].astype(np.int64)
        while np.any(node >= 0):
            inside = node >= 0
            at = np.where(inside, node, 0)
            left = ((combination >> np.where(inside, at - base, 0)) & 1) == 1
            child = np.where(left, model.left_child[at], model.right_child[at])
            node = np.where(inside, child, node)
        return cls(width=width, feature=feature, threshold=threshold, leaf=~node)

    def leaves(self, matrix: np.ndarray, trees: int) -> np.ndarray:
        """The global leaf each row reaches in each of the first ``trees`` trees (rows x trees)."""
        by_feature = np.ascontiguousarray(np.where(np.isnan(matrix), 0.0, matrix).T)  # a row per feature
        feature, threshold = self.feature[:trees], self.threshold[:trees]
        firsts = (np.arange(trees, dtype=np.intp) * self.leaf.shape[1])[:, None]
        flat = self.leaf.ravel()
        out = np.zeros((len(matrix), trees), dtype=np.int64)
        for start in range(0, len(matrix), TABLE_ROWS):  # trees x rows combinations at a time
            values = by_feature[:, start : start + TABLE_ROWS]
            combination = np.zeros((trees, values.shape[1]), dtype=np.uint8)  # width <= 8 bits
            for bit in range(self.width):
                goes_left = values[feature[:, bit]] <= threshold[:, bit, None]
                combination |= goes_left.view(np.uint8) << np.uint8(bit)
            out[start : start + TABLE_ROWS] = flat[combination.astype(np.intp) + firsts].T
        return out


def _fields(block: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in block.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


_INTEGER_FIELDS = ("split_feature", "decision_type", "left_child", "right_child")
_FLOAT_FIELDS = ("threshold", "leaf_value", "leaf_count", "internal_count")


@dataclass(frozen=True)
class _Forest:
    """Every tree's arrays laid end to end, read from the trees' text fields with one numpy parse per
    field (a model has hundreds of trees: per-tree arrays cost more than the trees' numbers). Children
    are global: an internal node is its index among all trees' nodes, a leaf ``~`` its index among all
    leaves."""

    internal: np.ndarray  # per tree: its splits (num_leaves - 1)
    node_base: np.ndarray  # per tree: the global index of its first split
    leaf_base: np.ndarray  # per tree: the global index of its first leaf
    split_feature: np.ndarray  # per split
    threshold: np.ndarray
    decision_type: np.ndarray
    left_child: np.ndarray
    right_child: np.ndarray
    leaf_value: np.ndarray  # per leaf
    leaf_count: np.ndarray  # per leaf: its training rows, the weights of the expected values

    @classmethod
    def of(cls, blocks: list[dict[str, str]]) -> _Forest:
        leaves = np.array([_leaf_total(fields) for fields in blocks], dtype=np.int64)
        if np.any(leaves < 1):
            raise TreeModelError("damaged tree: its arrays do not match num_leaves")
        internal = leaves - 1
        values, counts = {}, {}
        for key in (*_INTEGER_FIELDS, *_FLOAT_FIELDS):
            values[key], counts[key] = _field_numbers(blocks, key, integer=key in _INTEGER_FIELDS)
        sizes = [counts[key] for key in ("split_feature", "threshold", "decision_type", "left_child")]
        if np.any(counts["leaf_value"] != leaves) or any(np.any(size != internal) for size in sizes):
            raise TreeModelError("damaged tree: its arrays do not match num_leaves")
        if np.any(counts["right_child"] != internal):
            raise TreeModelError("damaged tree: its arrays do not match num_leaves")
        split = internal > 0
        if np.any(split & ((counts["leaf_count"] != leaves) | (counts["internal_count"] != internal))):
            raise TreeModelError("damaged tree: leaf_count or internal_count does not match num_leaves")
        node_base = np.concatenate([[0], np.cumsum(internal)[:-1]]).astype(np.int64)
        leaf_base = np.concatenate([[0], np.cumsum(leaves)[:-1]]).astype(np.int64)
        tree_of = np.repeat(np.arange(len(internal)), internal)  # per split: its tree
        local = np.arange(int(internal.sum())) - node_base[tree_of]
        for children in (values["left_child"], values["right_child"]):
            if np.any(
                np.where(
                    children >= 0,
                    # LightGBM numbers a node after its parent: a child at or before it would be a cycle
                    (children >= internal[tree_of]) | (children <= local),
                    ~children >= leaves[tree_of],
                )
            ):
                raise TreeModelError("damaged tree: a child or feature index out of range")
        if np.any(values["split_feature"] < 0) or np.any(values["decision_type"] & _CATEGORICAL):
            raise TreeModelError("damaged tree: a child or feature index out of range")

        def shifted(children: np.ndarray) -> np.ndarray:
            nodes, leaf0 = node_base[tree_of], leaf_base[tree_of]
            return np.where(children >= 0, children + nodes, ~(~children + leaf0)).astype(np.int64)

        # leaf_count is written for trees with splits only: give the others zeros, one per leaf
        leaf_count = np.zeros(int(leaves.sum()))
        written = np.repeat(split, leaves)
        leaf_count[written] = values["leaf_count"][np.repeat(split, counts["leaf_count"])]
        return cls(
            internal=internal,
            node_base=node_base,
            leaf_base=leaf_base,
            split_feature=values["split_feature"],
            threshold=values["threshold"],
            decision_type=values["decision_type"],
            left_child=shifted(values["left_child"]),
            right_child=shifted(values["right_child"]),
            leaf_value=values["leaf_value"],
            leaf_count=leaf_count,
        )

    def node_means(self) -> np.ndarray:
        """Each split's expected output: its leaves' values weighted by their training rows (the
        expectation TreeSHAP uses, so the expected value is LightGBM's). Children come after their parent
        in LightGBM's numbering, so one backward pass over the splits' positions in their trees fills
        them, every tree at once."""
        means = np.zeros(len(self.split_feature))
        counts = np.zeros(len(self.split_feature))

        def of(children: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            inner = children >= 0
            leaf = np.maximum(~children, 0)
            at = np.maximum(children, 0)
            value = np.where(inner, means[at], self.leaf_value[leaf] if len(self.leaf_value) else 0.0)
            weight = np.where(inner, counts[at], self.leaf_count[leaf] if len(self.leaf_count) else 0.0)
            return value, weight

        for position in range(int(self.internal.max(initial=0)) - 1, -1, -1):
            nodes = self.node_base[self.internal > position] + position
            (left, n_left), (right, n_right) = of(self.left_child[nodes]), of(self.right_child[nodes])
            total = n_left + n_right
            with np.errstate(invalid="ignore", divide="ignore"):
                weighted = (left * n_left + right * n_right) / total
            means[nodes] = np.where(total > 0, weighted, (left + right) / 2)
            counts[nodes] = total
        return means


def _leaf_total(fields: dict[str, str]) -> int:
    try:
        leaves = int(fields["num_leaves"])
    except (KeyError, ValueError):
        raise TreeModelError("damaged tree: no num_leaves") from None
    try:
        categorical = int(fields.get("num_cat", "0") or 0)
    except ValueError:
        raise TreeModelError("damaged tree: num_cat is not a number") from None
    if categorical:
        raise TreeModelError("a categorical split: this reader evaluates numerical splits only")
    return leaves


def _field_numbers(blocks: list[dict[str, str]], key: str, integer: bool) -> tuple[np.ndarray, np.ndarray]:
    """All trees' numbers of one field, end to end, and how many each tree has; an integer field may be
    written as a float (``1e9``), read as Python's ``int(float(item))`` reads it."""
    items = [fields.get(key, "").split() for fields in blocks]
    counts = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
    try:
        numbers = np.array(list(chain.from_iterable(items)), dtype=np.float64)
    except ValueError:
        raise TreeModelError(f"damaged tree: {key} is not a list of numbers") from None
    if not integer:
        return numbers, counts
    if not np.all(np.abs(numbers) < 2.0**62):  # NaN and infinities too: no integer
        raise TreeModelError(f"damaged tree: {key} is not a list of integers")
    return numbers.astype(np.int64), counts

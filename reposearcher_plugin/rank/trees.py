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


@dataclass(frozen=True)
class Tree:
    split_feature: np.ndarray  # per internal node
    threshold: np.ndarray
    decision_type: np.ndarray
    left_child: np.ndarray
    right_child: np.ndarray
    leaf_value: np.ndarray  # per leaf
    leaf_count: np.ndarray  # training rows per leaf: the weights of the expected values
    internal_count: np.ndarray

    def node_means(self) -> np.ndarray:
        """Each internal node's expected output: its leaves' values weighted by their training rows (the
        expectation TreeSHAP uses, so the expected value is LightGBM's). Children come after their parent
        in LightGBM's numbering, so one backward pass fills them."""
        internal = len(self.split_feature)
        means = np.zeros(internal)
        counts = np.zeros(internal)

        def of(child: int) -> tuple[float, float]:
            if child >= 0:
                return float(means[child]), float(counts[child])
            return float(self.leaf_value[~child]), float(self.leaf_count[~child])

        for node in range(internal - 1, -1, -1):
            (left, n_left), (right, n_right) = of(int(self.left_child[node])), of(int(self.right_child[node]))
            total = n_left + n_right
            means[node] = (left * n_left + right * n_right) / total if total > 0 else (left + right) / 2
            counts[node] = total
        return means


class TreeModel:
    """A LightGBM model (its ``Booster.model_to_string()`` text) that predicts as ``Booster.predict`` does.
    Its trees are laid end to end in flat arrays, so one pass per tree level moves every (row, tree) pair:
    an internal node is its global index, a leaf ``~`` its global leaf index."""

    def __init__(self, trees: list[Tree], feature_count: int) -> None:
        self.feature_count = feature_count
        self.tree_count = len(trees)
        starts, features, thresholds, kinds, lefts, rights, means, leaves = [], [], [], [], [], [], [], []
        node_base = leaf_base = 0
        for tree in trees:
            internal = len(tree.split_feature)

            def shifted(children: np.ndarray, nodes: int = node_base, leaf0: int = leaf_base) -> np.ndarray:
                return np.where(children >= 0, children + nodes, ~(~children + leaf0))

            starts.append(node_base if internal else ~leaf_base)
            features.append(tree.split_feature)
            thresholds.append(tree.threshold)
            kinds.append(tree.decision_type)
            lefts.append(shifted(tree.left_child))
            rights.append(shifted(tree.right_child))
            means.append(tree.node_means() if internal else np.zeros(0))
            leaves.append(tree.leaf_value)
            node_base += internal
            leaf_base += len(tree.leaf_value)
        joined = lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)  # noqa: E731
        self.starts = np.array(starts, dtype=np.int64)
        self.split_feature = joined(features, np.int64)
        self.threshold = joined(thresholds, np.float64)
        self.decision_type = joined(kinds, np.int64)
        self.left_child = joined(lefts, np.int64)
        self.right_child = joined(rights, np.int64)
        self.node_mean = joined(means, np.float64)
        self.leaf_value = joined(leaves, np.float64)
        self.root_values = np.array(
            [self.node_mean[start] if start >= 0 else self.leaf_value[~start] for start in self.starts]
        )
        sizes = [len(tree.split_feature) for tree in trees]
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
        trees: list[Tree] = []
        if rest:
            body = rest.split("\nend of trees", 1)[0]
            for block in ("Tree=" + body).split("\nTree="):
                trees.append(_tree(_fields(block)))
        feature_count = int(fields["max_feature_idx"]) + 1
        if any(len(tree.split_feature) and int(tree.split_feature.max()) >= feature_count for tree in trees):
            raise TreeModelError("damaged tree: a split on a feature past max_feature_idx")
        return cls(trees, feature_count)

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


def _numbers(fields: dict[str, str], key: str, dtype: type) -> np.ndarray:
    text = fields.get(key, "")
    try:
        return np.array([dtype(float(item)) if dtype is int else dtype(item) for item in text.split()])
    except ValueError:
        raise TreeModelError(f"damaged tree: {key} is not a list of numbers") from None


def _tree(fields: dict[str, str]) -> Tree:
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
    tree = Tree(
        split_feature=_numbers(fields, "split_feature", int).astype(np.int64),
        threshold=_numbers(fields, "threshold", float).astype(np.float64),
        decision_type=_numbers(fields, "decision_type", int).astype(np.int64),
        left_child=_numbers(fields, "left_child", int).astype(np.int64),
        right_child=_numbers(fields, "right_child", int).astype(np.int64),
        leaf_value=_numbers(fields, "leaf_value", float).astype(np.float64),
        leaf_count=_numbers(fields, "leaf_count", float).astype(np.float64),
        internal_count=_numbers(fields, "internal_count", float).astype(np.float64),
    )
    internal = leaves - 1
    sizes = (tree.split_feature, tree.threshold, tree.decision_type, tree.left_child, tree.right_child)
    if len(tree.leaf_value) != leaves or any(len(array) != internal for array in sizes):
        raise TreeModelError("damaged tree: its arrays do not match num_leaves")
    if internal and (len(tree.leaf_count) != leaves or len(tree.internal_count) != internal):
        raise TreeModelError("damaged tree: leaf_count or internal_count does not match num_leaves")
    children = np.concatenate([tree.left_child, tree.right_child])
    parents = np.concatenate([np.arange(internal), np.arange(internal)])
    if internal and (
        np.any(children >= internal)
        or np.any(~children[children < 0] >= leaves)
        # LightGBM numbers a node after its parent: a child at or before it would be a cycle
        or np.any((children >= 0) & (children <= parents))
        or np.any(tree.split_feature < 0)
        or np.any(tree.decision_type & _CATEGORICAL)
    ):
        raise TreeModelError("damaged tree: a child or feature index out of range")
    return tree

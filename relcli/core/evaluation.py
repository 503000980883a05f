"""Which metrics ``evaluate`` computes: the one registry of metric names, its parser, and the drivers.

Embedding metrics compare aligned rows of a prediction and a reference (``relcli.core.metrics``);
label metrics compare predicted and true labels. ``parse_metrics`` is the only place a metric
name is validated, for the CLI and the Python API alike.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from relcli.core.metrics import ACROSS_SPACES, SIMILARITY_CHUNK_ROWS, _check_k, _pair, accuracy, macro_f1, tensor_metrics
from relcli.errors import UsageError

EMBEDDING_METRICS: tuple[str, ...] = (
    "cosine", "mse", "top1", "top5", "top10", "mrr", "mrr@10", "jaccard@10", "cka", "csls_top1",
)
LABEL_METRICS: tuple[str, ...] = ("accuracy", "macro_f1")
LOWER_IS_BETTER: frozenset[str] = frozenset({"mse"})
CSLS_NEIGHBOURS = 10

METRIC_DOCS: dict[str, str] = {
    "cosine": "mean_i cos(pred_i, ref_i)",
    "mse": "mean over all elements of (pred_ij - ref_ij)^2 (lower is better)",
    "top1": "fraction of rows whose ref row is the most cosine-similar of all ref rows (ties count as hits)",
    "top5": "fraction of rows with rank_i <= 5, rank_i = 1 + #{j != i: cos(pred_i, ref_j) > cos(pred_i, ref_i)}",
    "top10": "fraction of rows with rank_i <= 10 (rank as for top5)",
    "mrr": "mean_i 1/rank_i (rank as for top5)",
    "mrr@10": "mean_i of 1/rank_i if rank_i <= 10 else 0 (relreps MRR@k)",
    "jaccard@10": (
        "mean_i |N10_pred(i) & N10_ref(i)| / |N10_pred(i) | N10_ref(i)|, N10 = 10 nearest other rows by cosine"
    ),
    "cka": "linear CKA ||Y'X||_F^2 / (||X'X||_F ||Y'Y||_F) on column-centred pred X and ref Y",
    "csls_top1": (
        "top-1 retrieval under CSLS = 2cos(p_i,r_j) - r_T(p_i) - r_S(r_j), 10-NN mean cosines (Conneau et al. 2018); "
        "r_S over the queries' pred rows (every row, or the --query-sample)"
    ),
    "accuracy": "mean_i [pred_label_i == true_label_i]",
    "macro_f1": "mean over classes c in true|pred of 2TP_c / (2TP_c + FP_c + FN_c)",
}

# Names with any k: top{k}, mrr@{k}, jaccard@{k}, csls_top{k}.
_K_PATTERN = re.compile(r"^(top|mrr@|jaccard@|csls_top)([1-9][0-9]*)$")




def _unknown(name: str, valid: Sequence[str], with_k: bool) -> UsageError:
    extra = "; top{k}, mrr@{k}, jaccard@{k} and csls_top{k} take any k >= 1" if with_k else ""
    return UsageError(f"unknown metric {name!r}; valid: {', '.join(valid)}{extra}")


def _family(name: str) -> tuple[str, int | None] | None:
    """(family, k) of an embedding metric name, e.g. ('top', 5) for top5; None if it is not one."""
    match = _K_PATTERN.match(name)
    if match:
        return match.group(1), int(match.group(2))
    return (name, None) if name in ("cosine", "mse", "mrr", "cka") else None


def across_spaces(name: str) -> bool:
    """Whether metric ``name`` compares two spaces (of any dimensions) rather than rows of one space."""
    family = _family(name)
    return family is not None and family[0] in ACROSS_SPACES


def parse_metrics(names: Sequence[str] | None, predictions: bool, same_space: bool = True) -> list[str]:
    """The metrics to compute for a file: validated names, or the defaults when ``names`` is None.

    ``predictions``: the judged file holds predictions (label metrics) rather than embeddings;
    ``same_space``: both files have the same dimension (else only CKA and Jaccard@k apply).
    Duplicates are dropped; a wrong name is a ``UsageError`` that says what would be valid.
    """
    if names is None:
        return list(LABEL_METRICS if predictions else EMBEDDING_METRICS if same_space else ("cka", "jaccard@10"))
    chosen: list[str] = []
    for name in names:
        family = _family(name)
        if name in LABEL_METRICS and not predictions:
            raise UsageError(f"metric {name!r} needs a predictions file (from `relcli stitch`)")
        if family is not None and predictions:
            raise UsageError(f"metric {name!r} compares embeddings; a predictions file has: {', '.join(LABEL_METRICS)}")
        if family is None and name not in LABEL_METRICS:
            raise _unknown(name, EMBEDDING_METRICS + LABEL_METRICS, with_k=True)
        if family is not None and not same_space and family[0] not in ACROSS_SPACES:
            raise UsageError(f"metric {name!r} needs both files in the same space; across dimensions use cka or jaccard@k")
        if name not in chosen:
            chosen.append(name)
    return chosen


def compute_embedding_metrics(
    pred: torch.Tensor,
    ref: torch.Tensor,
    names: Sequence[str] | None = None,
    chunk_rows: int | None = SIMILARITY_CHUNK_ROWS,
    query_sample: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """The named embedding metrics (all of ``EMBEDDING_METRICS`` when None), in the order asked.

    Besides the listed names, top{k}, mrr@{k}, jaccard@{k} and csls_top{k} accept any k.
    One retrieval pass serves every top-k/MRR name; ``query_sample``/``seed`` apply to the
    retrieval, Jaccard and CSLS metrics. Unknown names are a ``UsageError``.
    """
    parsed = parsed_metrics(EMBEDDING_METRICS if names is None else names)
    across = all(kind in ACROSS_SPACES for kind, _ in parsed.values())
    pred, ref = _pair(pred, ref, same_dims=not across)
    check_metric_counts(parsed, pred.shape[0])
    return tensor_metrics(pred, ref, parsed, chunk_rows, query_sample, seed, CSLS_NEIGHBOURS)


def parsed_metrics(names: Sequence[str]) -> dict[str, tuple[str, int | None]]:
    """name -> (family, k) of embedding metric names (``UsageError`` for one that is not)."""
    parsed: dict[str, tuple[str, int | None]] = {}
    for name in names:
        family = _family(name)
        if family is None:
            raise _unknown(name, EMBEDDING_METRICS, with_k=True)
        parsed[name] = family
    return parsed


def check_metric_counts(parsed: dict[str, tuple[str, int | None]], n: int) -> None:
    """Every k must leave enough rows: top{k} and csls_top{k} k ≤ n, jaccard@{k} k < n, CSLS's
    neighbourhood ≤ n (a ``DataError`` naming the metric)."""
    for kind, k in parsed.values():
        if kind in ("top", "csls_top"):
            _check_k(k, n, f"{kind}{k}: k", n)
        elif kind == "jaccard@":
            _check_k(k, n - 1, f"jaccard@{k}: k", n)
    if any(kind == "csls_top" for kind, _ in parsed.values()):
        _check_k(CSLS_NEIGHBOURS, n, "CSLS neighbourhood size", n)


def compute_label_metrics(pred_labels, true_labels, names: Sequence[str] | None = None) -> dict[str, float]:
    """The named label metrics (all of ``LABEL_METRICS`` when None); unknown names are a ``UsageError``."""
    names = list(LABEL_METRICS if names is None else names)
    functions = {"accuracy": accuracy, "macro_f1": macro_f1}
    for name in names:
        if name not in functions:
            raise _unknown(name, LABEL_METRICS, with_k=False)
    return {name: functions[name](pred_labels, true_labels) for name in names}

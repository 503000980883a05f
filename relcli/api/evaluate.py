"""``api.evaluate``: how good a translation or a stitching is, against a reference file (rows joined by id)."""

from __future__ import annotations

import builtins
from pathlib import Path

import numpy as np

from relcli.api._context import (
    DEFAULT_BATCH, as_path, blame, check_batch_size, check_seed, compute_dtype_of, resolve_device, rows_by_keys, rows_per_chunk,
    select_by_ids,
)
from relcli.api._results import Evaluation, Progress
from relcli.api._rows import RowLoop, left_out, usable_rows
from relcli.errors import DataError, UsageError

LARGE_N = 50_000
DEFAULT_QUERY_SAMPLE = 10_000
QUERY_BATCH = 4096


def _fits(metric: tuple[str, int | None], n: int) -> bool:
    """Whether a metric's k leaves enough of n rows (``check_metric_counts`` would pass it); every one
    but cosine and MSE needs two rows (a rank among one row says nothing; CKA needs a variance)."""
    from relcli.core.evaluation import check_metric_counts

    if n < 2 and metric[0] not in ("cosine", "mse"):
        return False
    try:
        check_metric_counts({"metric": metric}, n)
    except DataError:
        return False
    return True


def _names(metrics) -> list[str] | None:
    if metrics is None:
        return None
    values = [metrics] if isinstance(metrics, str) else list(metrics)
    names = [part.strip() for value in values for part in value.split(",") if part.strip()]
    return names or None


def _gates(values, option: str) -> dict[str, float]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise UsageError(f"{option} must map metric names to numbers, e.g. {{'cosine': 0.8}}")
    gates = {}
    for name, threshold in values.items():
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold != threshold:
            raise UsageError(f"{option} {name}={threshold!r}: the threshold must be a number (not NaN)")
        gates[str(name)] = float(threshold)
    return gates


def _load(reader, rows, device, need_direction: bool, batch_size: int):
    """Rows of a file (all, or at ``rows``), read ``batch_size`` rows at a time, in the compute dtype;
    bad rows are an error naming their ids."""
    import torch

    from relcli.core._common import invalid_rows

    loop = RowLoop.over(reader)
    batch_size = rows_per_chunk(batch_size, reader.dim)
    wanted = np.arange(reader.n_rows, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    parts = []
    for start in range(0, len(wanted), batch_size):
        picked = wanted[start : start + batch_size]
        data = reader.read_rows(picked).to(device=device, dtype=compute_dtype_of(reader.dtype))
        _, problems = invalid_rows(data, need_direction)
        for problem, positions in problems:
            loop.reject(picked[positions.cpu().numpy()], problem)
        parts.append(data)
    return parts[0] if len(parts) == 1 else torch.cat(parts)


class _FileRows:
    """The judged rows (``mine``) and their reference rows (``theirs``, aligned by id), read chunk by
    chunk for ``relcli.core.paired.paired_metrics`` (a ``PairedRows``): rows that cannot be used
    are an error naming their ids."""

    def __init__(self, judged, ref, mine, theirs, device, need_direction: bool, batch_size, dtype):
        self.judged, self.ref, self.mine, self.theirs = judged, ref, mine, theirs
        self.device, self.need_direction, self.batch_size, self.dtype = device, need_direction, batch_size, dtype
        self.n = len(mine)
        self.chunk_rows = rows_per_chunk(batch_size, max(judged.dim, ref.dim))

    def _rows(self, reader, picked):
        return _load(reader, picked, self.device, self.need_direction, self.batch_size).to(self.dtype)

    def chunks(self):
        for start in range(0, self.n, self.chunk_rows):
            stop = start + self.chunk_rows
            yield start, self._rows(self.judged, self.mine[start:stop]), self._rows(self.ref, self.theirs[start:stop])

    def rows(self, indices):
        picked = indices.cpu().numpy()
        return self._rows(self.judged, self.mine[picked]), self._rows(self.ref, self.theirs[picked])


def evaluate(
    input,
    *,
    reference,
    metrics=None,
    min=None,  # noqa: A002 - the flag is --min
    max=None,  # noqa: A002 - the flag is --max
    ids=None,
    exclude_ids=None,
    query_sample: int | None = None,
    query_batch: int = QUERY_BATCH,
    force: bool = False,
    seed: int = 0,
    key: str | None = None,
    batch_size: int | None = DEFAULT_BATCH,
    device: str | None = None,
    pairs=None,
    drop_invalid: bool = False,
    progress: Progress | None = None,
) -> Evaluation:
    """Score ``input`` against ``reference``: embedding metrics, or accuracy/F1 for a predictions file.

    ``metrics``: names (or "a,b"); default all that apply. ``min``/``max``: gates {metric: value};
    the ones that fail are listed in ``Evaluation.failures`` (the CLI then exits 1).
    ``ids``/``exclude_ids``: files of ids to judge only some rows. Metrics that compare rows in one
    space refuse files whose recorded spaces differ unless ``force`` (cka and jaccard@k compare
    across spaces). ``pairs``: a dictionary (source id, reference id): rank each translated source
    word among every reference row, any of its translations a hit (``relcli.api._dictionary``:
    top{k}, mrr, mrr@{k}, csls_top{k}; default top1, top5, top10, mrr). Rows that cannot be used
    (NaN/Inf; all zeros where a metric needs a direction) are an error naming their ids, or with
    ``drop_invalid`` are left out (a warning names them): rows of either file, and with ``pairs``
    the reference rows, which are then never ranked.
    """
    import torch

    from relcli.core.evaluation import across_spaces, compute_label_metrics, parse_metrics
    from relcli.io.spaces import check_same_space, read_space
    from relcli.io.embeddings import open_embeddings
    from relcli.io.kinds import expect_kind

    input, reference, ids, exclude_ids, pairs = Path(input), Path(reference), as_path(ids), as_path(exclude_ids), as_path(pairs)
    gates_min, gates_max = _gates(min, "--min"), _gates(max, "--max")
    check_seed(seed)
    check_batch_size(batch_size)
    check_batch_size(query_batch)
    if query_sample is not None and (isinstance(query_sample, bool) or not isinstance(query_sample, int) or query_sample < 1):
        raise UsageError(f"--query-sample must be a positive integer, got {query_sample!r}")
    torch_device = resolve_device(device)
    with open_embeddings(input, key=key) as judged, open_embeddings(reference) as ref:
        expect_kind(judged, ("embeddings", "anchors", "predictions"), "`evaluate`")
        expect_kind(ref, ("embeddings", "anchors"), "--reference")
        is_predictions = judged.kind == "predictions"
        asked = _names(metrics)
        if pairs is not None:
            from relcli.api._dictionary import check_dictionary_metrics

            if is_predictions:
                raise UsageError("--pairs ranks translated words among the reference; a predictions file has labels")
            names = check_dictionary_metrics(asked)
            names += [g for g in check_dictionary_metrics([*gates_min, *gates_max]) if g not in names] if (
                gates_min or gates_max) else []
        else:
            names = parse_metrics(asked, is_predictions, judged.dim == ref.dim)
            names += [g for g in parse_metrics([*gates_min, *gates_max], is_predictions, judged.dim == ref.dim)
                      if g not in names] if (gates_min or gates_max) else []
        if not is_predictions and not all(across_spaces(name) for name in names):
            check_same_space((reference, read_space(ref.attrs, reference)), (input, read_space(judged.attrs, input)), force,
                             "; cka and jaccard@k compare across spaces")
        judged_keys = judged.row_keys()
        selected = select_by_ids(judged_keys, ids, exclude_ids, input)
        if pairs is not None:
            from relcli.api._dictionary import dictionary_metrics

            if judged.dim != ref.dim:
                raise DataError(f"has {judged.dim} dimensions, {reference.name} {ref.dim}: translate the words into "
                                "the reference's space first", input)
            dtype = torch.promote_types(compute_dtype_of(judged.dtype), compute_dtype_of(ref.dtype))

            def load(reader, rows):
                return _load(reader, rows, torch_device, True, batch_size).to(dtype)

            valid = None
            if drop_invalid:
                valid = tuple(usable_rows(reader, torch_device, True, batch_size) for reader in (judged, ref))
            with blame(input):
                results, n, details, warnings = dictionary_metrics(
                    judged, ref, pairs, selected, names, load, rows_per_chunk(batch_size, ref.dim), query_sample, seed,
                    query_batch, progress, input, valid)
            return _report(input, reference, n, results, names, selected, ids, exclude_ids,
                           None if query_sample is None else n, gates_min, gates_max, details, pairs, warnings)
        if selected is not None:
            judged_keys = [judged_keys[i] for i in selected]
        rows = rows_by_keys(judged_keys, ref.row_keys(), reference, f"row ids of {input.name}")
        del judged_keys
        ref.adopt_ids(rows, judged.ids if selected is None or judged.ids is None else judged.ids[selected])
        n = len(rows)
        if n == 0:
            raise DataError("has no rows to judge", input)
        details: list[str] = []
        warnings: list[str] = []
        if is_predictions:
            if drop_invalid:
                raise UsageError("--drop-invalid leaves out embedding rows; a predictions file has labels")
            if ref.labels is None:
                raise DataError("has no labels to judge predictions against", reference)
            if judged.labels is None:
                raise DataError("is a predictions file without predicted labels", input)
            predicted = judged.labels if selected is None else judged.labels[selected]
            predicted_codes, true_codes = _label_codes(predicted, ref.labels[rows])
            results = compute_label_metrics(predicted_codes, true_codes, names)
        else:
            from relcli.core.evaluation import check_metric_counts, parsed_metrics
            from relcli.core.metrics import NO_DIRECTION
            from relcli.core.paired import paired_metrics

            parsed = parsed_metrics(names)
            need_direction = any(family not in NO_DIRECTION for family, _ in parsed.values())
            mine = np.arange(judged.n_rows, dtype=np.int64) if selected is None else np.asarray(selected, dtype=np.int64)
            rows = np.asarray(rows, dtype=np.int64)
            covered = len(rows)  # the reference rows the judged file has ids for (before --drop-invalid)
            if drop_invalid:
                judged_ok = usable_rows(judged, torch_device, need_direction, batch_size)
                ref_ok = usable_rows(ref, torch_device, need_direction, batch_size)
                warnings += left_out(judged, judged_ok, mine, need_direction) + left_out(ref, ref_ok, rows, need_direction)
                keep = judged_ok[mine] & ref_ok[rows]
                mine, rows, n = mine[keep], rows[keep], int(keep.sum())
                if n == 0:
                    raise DataError("has no rows left to judge after --drop-invalid", input)
            if asked is None:  # "all that apply": a k that needs more rows than there are does not apply
                too_many = [name for name in parsed if name not in gates_min and name not in gates_max
                            and not _fits(parsed[name], n)]
                parsed = {name: value for name, value in parsed.items() if name not in too_many}
                names = [name for name in names if name not in too_many]
                if too_many:
                    details.append(f"{', '.join(too_many)} left out: {n} rows are too few for them")
            with blame(input):
                check_metric_counts(parsed, n)
            from relcli.api._dictionary import DICTIONARY_FAMILIES  # the metrics that rank among reference rows

            ranked = [name for name in names if parsed[name][0] in DICTIONARY_FAMILIES]
            if ranked and selected is None and covered < ref.n_rows:
                warnings.append(f"{', '.join(ranked)} rank each row of {input.name} among the {covered:,} reference rows "
                                f"with its ids, not among all {ref.n_rows:,} rows of {reference.name}; to search the "
                                "whole reference, give --pairs a list of 'id id' lines")
            if query_sample is None and n > LARGE_N and any(m not in ("cosine", "mse", "cka") for m in names):
                query_sample = DEFAULT_QUERY_SAMPLE
            dtype = torch.promote_types(compute_dtype_of(judged.dtype), compute_dtype_of(ref.dtype))
            source = _FileRows(judged, ref, mine, rows, torch_device, need_direction, batch_size, dtype)
            with blame(input):
                results = paired_metrics(source, parsed, query_batch,
                                         query_sample if query_sample is None else builtins.min(query_sample, n), seed,
                                         progress=progress)
    if query_sample is not None and not is_predictions:
        details.append(f"{n:,} rows: retrieval metrics use {builtins.min(query_sample, n):,} sampled queries "
                       "(--query-sample to change)")
    return _report(input, reference, n, results, names, selected, ids, exclude_ids,
                   None if query_sample is None or is_predictions else builtins.min(query_sample, n),
                   gates_min, gates_max, details, None, warnings)


def _report(input, reference, n, results, names, selected, ids, exclude_ids, sample, gates_min, gates_max, details,
            pairs, warnings) -> Evaluation:
    report = {"file": str(input), "reference": str(reference), "rows": n, "metrics": results}
    if selected is not None:
        report["selection"] = {"ids": None if ids is None else str(ids), "exclude_ids": None if exclude_ids is None else str(exclude_ids)}
    if sample is not None:
        report["query_sample"] = sample
    if pairs is not None:
        report["pairs"] = str(pairs)
    failures = [f"{m} = {results[m]:.4f} < {v}" for m, v in gates_min.items() if not results[m] >= v]
    failures += [f"{m} = {results[m]:.4f} > {v}" for m, v in gates_max.items() if not results[m] <= v]
    return Evaluation("evaluate", None, n, details=details, warnings=warnings, metrics=results, failures=failures, report=report,
                      parameters={"metrics": names, "query_sample": report.get("query_sample"),
                                  **({"pairs": str(pairs)} if pairs is not None else {})})


def _label_codes(predicted: np.ndarray, truth: np.ndarray):
    """Both label arrays as int64 codes over one shared vocabulary (labels may be strings or ints)."""
    import torch

    pred_list = [str(v) for v in predicted.tolist()]
    true_list = [str(v) for v in truth.tolist()]
    vocabulary = {v: i for i, v in enumerate(sorted(set(pred_list) | set(true_list)))}
    encode = lambda values: torch.from_numpy(np.array([vocabulary[v] for v in values], dtype=np.int64))  # noqa: E731
    return encode(pred_list), encode(true_list)

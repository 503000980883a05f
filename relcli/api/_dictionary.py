"""``evaluate --pairs``: bilingual lexicon induction, the score of word translation.

The judged file holds translated source words (ids: the source words), the reference the whole
target vocabulary (ids: the target words), and a dictionary (``--pairs``, as ``read_pairs`` reads
it) says which target words are right for which source word. Each source word of the dictionary
that both files can answer is a query: its translated row is ranked against every reference row,
and the best-placed of its right answers counts (``relcli.core.lexicon.dictionary_ranks``):
top{k} is MUSE's precision@k with nearest neighbours, csls_top{k} the same under CSLS, whose
hubness r_S(y) of a target word is its mean cosine to its 10 nearest rows among every row of the
judged file (the translated source vocabulary, as MUSE takes it): a pass over the judged file for
every chunk of the reference, so it costs judged rows × reference rows and is asked for by name.
"""

from __future__ import annotations

import numpy as np

from relcli.errors import DataError, UsageError

#: the metrics a dictionary evaluation has: ranks of words among the whole vocabulary
DICTIONARY_FAMILIES = ("top", "mrr", "mrr@", "csls_top")
DEFAULT_DICTIONARY_METRICS = ["top1", "top5", "top10", "mrr"]


def check_dictionary_metrics(names: list[str] | None) -> list[str]:
    from relcli.core.evaluation import parsed_metrics

    names = DEFAULT_DICTIONARY_METRICS if names is None else names
    for name, (family, _) in parsed_metrics(names).items():
        if family not in DICTIONARY_FAMILIES:
            raise UsageError(f"metric {name!r} compares aligned rows; with --pairs evaluate ranks words among the whole "
                             "reference: top{k}, mrr, mrr@{k}, csls_top{k}")
    return list(dict.fromkeys(names))


def dictionary_metrics(judged, ref, pairs, selected, names, load, chunk_rows, query_sample, seed, query_batch,
                       progress, input, valid=None) -> tuple[dict[str, float], int, list[str], list[str]]:
    """(metrics, queries, details, warnings) of the translated words of ``judged`` against every row of ``ref``.

    ``selected``: the judged rows --ids/--exclude-ids keep (None: all); ``load(reader, rows)`` reads
    rows (bad rows are an error naming their ids); ``query_sample`` of the source words, seeded;
    ``valid``: (judged, ref) bool masks of the rows --drop-invalid keeps (None: all; a reference
    row left out is never ranked, a pair with a row left out not scored).
    """
    import torch

    from relcli.api._rows import left_out
    from relcli.core.evaluation import CSLS_NEIGHBOURS, parsed_metrics
    from relcli.core.metrics import _rank_summary, query_indices
    from relcli.core.lexicon import dictionary_ranks, hub_means
    from relcli.io.join import find_rows, hash_pair, read_pairs

    listed = read_pairs(pairs)
    source_rows, source_found = find_rows([a for a, _ in listed], judged.row_keys())
    target_rows, target_found = find_rows([b for _, b in listed], ref.row_keys())
    judged_ok, ref_ok = valid if valid is not None else (np.ones(judged.n_rows, bool), np.ones(ref.n_rows, bool))
    gallery_rows, translated_rows = np.flatnonzero(ref_ok), np.flatnonzero(judged_ok)
    found = source_found & target_found
    warnings = []
    missing = int((~found & ~np.fromiter(map(hash_pair, listed), dtype=bool, count=len(listed))).sum())
    if missing:
        warnings.append(f"{missing:,} of the {len(listed):,} pairs of {pairs.name} name a word that "
                        f"{input.name} or {ref.path.name} lacks: they are not scored")
    usable = found.copy()
    if selected is not None:
        kept = np.zeros(judged.n_rows, dtype=bool)
        kept[selected] = True
        usable &= kept[source_rows]
    if not ref_ok.all():
        warnings += left_out(ref, ref_ok, np.arange(ref.n_rows), True)
    if not judged_ok.all():
        warnings += left_out(judged, judged_ok, source_rows[usable], True)
    usable &= judged_ok[source_rows] & ref_ok[target_rows]
    if not usable.any():
        raise DataError(f"none of its {len(listed):,} pairs has its first id in {input.name} (after --ids/--exclude-ids) "
                        f"and its second in {ref.path.name}", pairs)
    source_rows, target_rows = source_rows[usable], target_rows[usable]
    words = np.unique(source_rows)
    details = [f"{int(usable.sum()):,} of the {len(listed):,} pairs of {pairs.name} have both ids: {len(words):,} source "
               f"words ranked among the {len(gallery_rows):,} rows of {ref.path.name}"]
    if query_sample is not None and query_sample < len(words):
        words = words[query_indices(len(words), query_sample, seed).numpy()]
        keep = np.isin(source_rows, words)
        source_rows, target_rows = source_rows[keep], target_rows[keep]
        details.append(f"ranks of {len(words):,} sampled source words (--query-sample)")
    parsed = parsed_metrics(names)
    for kind, k in parsed.values():
        if kind in ("top", "csls_top") and k > len(gallery_rows):
            raise DataError(f"{kind}{k} needs at least {k} rows to rank among; it has {len(gallery_rows):,}", ref.path)
    hubs = None
    if any(kind == "csls_top" for kind, _ in parsed.values()):
        if len(translated_rows) < CSLS_NEIGHBOURS:
            raise DataError(f"CSLS needs at least {CSLS_NEIGHBOURS} translated rows for the hubness of a target word; "
                            f"it has {len(translated_rows):,}", input)
        details.append(f"CSLS: each reference row's hubness from its {CSLS_NEIGHBOURS} nearest among all "
                       f"{len(translated_rows):,} rows of {input.name}")

        def translated():
            for start in range(0, len(translated_rows), chunk_rows):
                yield load(judged, translated_rows[start:start + chunk_rows])

        def hubs(rows_hat):
            return hub_means(rows_hat, translated(), CSLS_NEIGHBOURS)

    def gallery():  # the usable reference rows, numbered in their order
        for start in range(0, len(gallery_rows), chunk_rows):
            stop = min(start + chunk_rows, len(gallery_rows))
            yield start, load(ref, gallery_rows[start:stop])
            if progress is not None:
                progress("evaluate --pairs", stop, len(gallery_rows))

    ranks, csls_ranks = dictionary_ranks(
        load(judged, words), torch.from_numpy(np.searchsorted(words, source_rows)),
        torch.from_numpy(np.searchsorted(gallery_rows, target_rows)), load(ref, target_rows), gallery(), query_batch, hubs,
    )
    results = {}
    for name, (kind, k) in parsed.items():
        if kind == "csls_top":
            results[name] = _rank_summary(csls_ranks, [k], [], prefix="csls_")[name]
        else:
            results[name] = _rank_summary(ranks, [k] if kind == "top" else [], [k] if kind == "mrr@" else [])[name]
    return results, len(words), details, warnings

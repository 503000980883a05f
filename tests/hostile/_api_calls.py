"""The same command line through the Python API: ``to_api`` turns a hostile case's CLI arguments into the
``relcli.api`` call that does the same (issue 12)."""

from __future__ import annotations

from typing import Any, Callable

API = {("embed",): "embed", ("anchors",): "anchors", ("project",): "project", ("invert",): "invert",
       ("translate",): "translate", ("evaluate",): "evaluate", ("info",): "info", ("stitch", "fit"): "stitch_fit",
       ("stitch", "apply"): "stitch_apply", ("stitch", "run"): "stitch_run"}
ALIASES = {"-o": "output", "-n": "n_anchors", "-a": "anchors", "-s": "similarity", "-m": "method", "-r": "reference",
           "-e": "encoder", "--map": "map", "--output": "output", "--n-anchors": "n_anchors"}
FLAGS = {"--drop-invalid": ("drop_invalid", True), "--center": ("center", True), "--no-center": ("center", False),
         "--confidence": ("confidence", True), "--reverse": ("reverse", True),
         "--allow-rank-deficient": ("allow_rank_deficient", True), "--normalize": ("normalize", True),
         "--no-normalize": ("normalize", False), "--skip-empty": ("skip_empty", True), "-q": None, "-v": None,
         "--debug": None, "--quiet": None, "--verbose": None}
INTS = {"batch_size", "n_anchors", "seed", "subspaces", "query_sample", "query_batch", "max_iter", "hidden", "epochs",
        "max_length"}
FLOATS = {"prune_threshold", "target_norm", "min_score", "l2"}
REPEATED = {"similarity"}


def to_api(args: list) -> tuple[Callable, list, dict[str, Any]]:
    """(function, positional args, keyword args) of ``relcli.api`` for a CLI command line."""
    from relcli import api
    from relcli.cli._options import parse_rcond
    from relcli.cli.evaluate import parse_gates

    words = list(args)
    command = (words[0], words[1]) if words[0] == "stitch" else (words[0],)
    name = API[command]
    rest = words[len(command):]
    positional, kwargs, gates = [], {}, {"min": [], "max": []}
    i = 0
    while i < len(rest):
        word = rest[i]
        text = str(word)
        if isinstance(word, str) and text.startswith("-") and text != "-":
            if text in FLAGS:
                if FLAGS[text]:
                    kwargs[FLAGS[text][0]] = FLAGS[text][1]
                i += 1
                continue
            key = ALIASES.get(text, text.lstrip("-").replace("-", "_"))
            value = rest[i + 1]
            i += 2
            if key == "format" and name in ("evaluate", "info"):
                continue
            if key in ("min", "max"):
                gates[key].append(str(value))
            elif key in INTS:
                kwargs[key] = int(value)
            elif key in FLOATS:
                kwargs[key] = float(value)
            elif key == "rcond":
                kwargs[key] = parse_rcond(str(value))
            elif key in REPEATED:
                kwargs.setdefault(key, []).append(str(value))
            else:
                kwargs[key] = value
        else:
            positional.append(word)
            i += 1
    for key in ("min", "max"):
        if gates[key]:
            kwargs[key] = parse_gates(gates[key], f"--{key}")
    fn = getattr(api, name)
    if name == "info":
        return fn, [positional], kwargs
    return fn, positional, kwargs


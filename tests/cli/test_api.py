"""``relcli.api``: the library twin of every subcommand, bit-identical to the CLI, with the flags' names.

Also the regression tests of the bugs that two copies of one rule had caused (issue 8).
"""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

from relcli import api
from relcli.errors import DataError, UsageError
from relcli.io.embeddings import write_embeddings

from .conftest import assert_clean_error, invoke, load, ok


def same_file(a, b) -> None:
    """Same matrix bits, ids, labels, kind and metadata (but the provenance's clock)."""
    la, lb = load(a), load(b)
    assert la.matrix.dtype == lb.matrix.dtype and la.matrix.tobytes() == lb.matrix.tobytes()
    assert (la.ids, la.labels, la.kind, la.reader_strings) == (lb.ids, lb.labels, lb.kind, lb.reader_strings)
    strip = lambda attrs: {k: v for k, v in attrs.items() if k != "provenance"}  # noqa: E731
    assert strip(la.attrs) == strip(lb.attrs)
    pa, pb = la.attrs.get("provenance"), lb.attrs.get("provenance")
    if pa:
        assert (pa["subcommand"], pa["parameters"]) == (pb["subcommand"], pb["parameters"])


def cases(data, tmp_path):
    """(CLI arguments, API call) pairs that must write the same file; the output path is left open."""
    head, rel = tmp_path / "head.safetensors", tmp_path / "x_rel.h5"
    ok(invoke("stitch", "fit", data.y_h5, "--max-iter", 30, "-o", head))
    ok(invoke("project", data.x_h5, "--anchors", data.xa, "-o", rel))
    return {
        "anchors": (["anchors", data.x_h5, "-n", 12, "--strategy", "kmeans", "--seed", 3],
                    lambda o: api.anchors(data.x_h5, output=o, n_anchors=12, strategy="kmeans", seed=3)),
        "anchors-like": (["anchors", data.y_st, "--like", data.xa], lambda o: api.anchors(data.y_st, output=o, like=data.xa)),
        "project": (["project", data.x_h5, "--anchors", data.xa, "-s", "cosine,l1", "--center"],
                    lambda o: api.project(data.x_h5, anchors=data.xa, output=o, similarity=["cosine,l1"], center=True)),
        "invert": (["invert", rel, "--anchors", data.ya, "--rcond", "0.01"],
                   lambda o: api.invert(rel, anchors=data.ya, output=o, rcond=0.01)),
        "translate": (["translate", "--src", data.x_h5, "--tgt-anchors", data.ya, "--method", "procrustes"],
                      lambda o: api.translate(data.x_h5, output=o, tgt_anchors=data.ya, method="procrustes")),
        "translate-irp": (["translate", "--src", data.x_st, "--tgt-anchors", data.ya, "--center"],
                          lambda o: api.translate(data.x_st, output=o, tgt_anchors=data.ya, center=True)),
        "stitch-apply": (["stitch", "apply", data.y_h5, "--head", head],
                         lambda o: api.stitch_apply(data.y_h5, head=head, output=o)),
        "stitch-run": (["stitch", "run", "--src", data.x_h5, "--tgt-anchors", data.ya, "--head", head],
                       lambda o: api.stitch_run(src=data.x_h5, tgt_anchors=data.ya, head=head, output=o)),
    }


def test_every_row_writing_subcommand_equals_its_api_function(data, tmp_path):
    for name, (args, call) in cases(data, tmp_path).items():
        cli_out, api_out = tmp_path / f"{name}.cli.h5", tmp_path / f"{name}.api.h5"
        ok(invoke(*args, "-o", cli_out))
        result = call(api_out)
        assert result.output == api_out and result.files["output"] == api_out
        assert result.rows == load(api_out).matrix.shape[0] and result.dims == load(api_out).matrix.shape[1]
        same_file(cli_out, api_out)


def test_stitch_fit_and_evaluate_equal_their_api_functions(data, tmp_path):
    ok(invoke("stitch", "fit", data.y_h5, "--head", "mlp", "--epochs", 20, "-o", tmp_path / "cli.safetensors"))
    result = api.stitch_fit(data.y_h5, output=tmp_path / "api.safetensors", head="mlp", epochs=20)
    assert (tmp_path / "cli.safetensors").read_bytes().split(b"relcli.provenance")[0] == \
        (tmp_path / "api.safetensors").read_bytes().split(b"relcli.provenance")[0]
    assert result.scores["classes"] == 4
    printed = json.loads(ok(invoke("evaluate", data.x_h5, "--reference", data.y_h5, "--metrics", "cka,top1",
                                   "--format", "json"), data=True).stdout)
    evaluation = api.evaluate(data.x_h5, reference=data.y_h5, metrics="cka,top1")
    assert printed == evaluation.report and evaluation.passed


def test_info_describes_every_kind_relcli_writes(data, tmp_path):
    ok(invoke("translate", "--src", data.x_h5, "--tgt-anchors", data.ya, "--method", "irp", "--save-map", tmp_path / "map.safetensors",
              "-o", tmp_path / "y.h5"))
    ok(invoke("stitch", "fit", data.y_h5, "-o", tmp_path / "head.safetensors"))
    ok(invoke("project", data.x_h5, "--anchors", data.xa, "-o", tmp_path / "rel.h5"))
    ok(invoke("stitch", "apply", tmp_path / "y.h5", "--head", tmp_path / "head.safetensors", "-o", tmp_path / "p.h5"))
    files = [tmp_path / "map.safetensors", tmp_path / "head.safetensors", data.xa, tmp_path / "rel.h5",
             tmp_path / "p.h5", tmp_path / "y.h5"]
    printed = ok(invoke("info", *files, "--format", "json"), data=True).stdout.splitlines()
    described = {d["kind"]: d for d in map(json.loads, printed)}
    assert sorted(described) == ["anchors", "embeddings", "head", "predictions", "relative", "translator"]
    assert described["translator"]["summary"] == {"method": "irp", "source_dim": 16, "target_dim": 16}
    assert described["head"]["summary"]["input_dim"] == 16 and described["head"]["summary"]["classes"] == 4
    assert described["anchors"]["summary"]["space"]["n_rows"] == 240
    assert described["relative"]["summary"]["anchors"] == 32
    assert described["predictions"]["summary"]["classes"] == [0, 1, 2, 3]
    table = ok(invoke("info", tmp_path / "map.safetensors"), data=True).stdout
    assert "IRP" in table and "several 2-D arrays" not in table


def test_api_keyword_arguments_are_the_flags(data):
    """api.X takes the flags' names (dashes to underscores); the CLI's own options are the only extras."""
    from typer.main import get_command

    from relcli.cli.app import app

    cli_only = {"quiet", "verbose", "debug", "help", "device"}
    commands = get_command(app).commands
    functions = {"anchors": api.anchors, "project": api.project, "invert": api.invert, "translate": api.translate,
                 "embed": api.embed, "evaluate": api.evaluate}
    stitch = commands["stitch"].commands
    pairs = [(commands[name], fn) for name, fn in functions.items()]
    pairs += [(stitch["fit"], api.stitch_fit), (stitch["apply"], api.stitch_apply), (stitch["run"], api.stitch_run)]
    for command, function in pairs:
        # a flag's long name with dashes as underscores; arguments by their own name; --format prints, so CLI-only
        names = {max(p.opts, key=len).lstrip("-").replace("-", "_") if p.opts[0].startswith("-") else p.name
                 for p in command.params}
        accepted = set(inspect.signature(function).parameters)
        expected = names - cli_only - ({"format"} if command.name in ("evaluate", "info") else set())
        assert expected - accepted == set(), (command.name, expected - accepted)
        assert accepted - expected - {"progress", "device"} == set(), (command.name, accepted - expected)
    # the input a function works on comes first and may be given by position, as api.translate's src
    for function in (*functions.values(), api.stitch_fit, api.stitch_apply, api.stitch_run):
        first = next(iter(inspect.signature(function).parameters.values()))
        assert first.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, (function.__name__, first)


def test_api_raises_relcli_errors_and_prints_nothing(data, tmp_path, capsys):
    with pytest.raises(UsageError, match="either --tgt-anchors"):
        api.translate(data.x_h5, output=tmp_path / "y.h5")
    relative = api.project(data.x_h5, anchors=data.xa, output=tmp_path / "rel.h5").output
    with pytest.raises(DataError, match="is a relative file"):
        api.anchors(relative, output=tmp_path / "a.h5", n_anchors=3)
    seen = []
    api.translate(data.x_h5, output=tmp_path / "y.h5", tgt_anchors=data.ya, method="irp", batch_size=100,
                  progress=lambda what, done, total: seen.append((what, done, total)))
    assert seen == [("translate (irp)", 100, 240), ("translate (irp)", 200, 240), ("translate (irp)", 240, 240)]
    assert capsys.readouterr() == ("", "")


# ------------------------------------------------------------------------ regressions (issue 8)


def test_stitch_run_drop_invalid_with_row_0_all_zero(data, tmp_path):
    """stitch run had its own probe of row 0 and failed where translate succeeded."""
    x = data.x.copy()
    x[0] = 0
    src = write_embeddings(tmp_path / "x0.h5", x, ids=data.ids, labels=data.labels)
    head = tmp_path / "head.safetensors"
    ok(invoke("stitch", "fit", data.y_h5, "--max-iter", 30, "-o", head))
    ok(invoke("translate", "--src", src, "--tgt-anchors", data.ya, "--method", "irp", "--drop-invalid", "-o", tmp_path / "t.h5"))
    result = ok(invoke("stitch", "run", "--src", src, "--tgt-anchors", data.ya, "--method", "irp", "--head", head, "--drop-invalid",
                       "-o", tmp_path / "p.h5"))
    assert "dropped 1 row(s) (ids 'item-0000')" in result.stderr
    assert load(tmp_path / "p.h5").ids == data.ids[1:]
    failed = invoke("stitch", "run", "--src", src, "--tgt-anchors", data.ya, "--method", "irp", "--head", head, "-o", tmp_path / "q.h5")
    assert_clean_error(failed, 1, "all zeros", "'item-0000'", path=src)


def test_anchors_like_drop_invalid_names_the_right_row_and_filters_like_rows(data, tmp_path):
    """rows picked by id were checked as if contiguous (naming another id); --like rows were never filtered."""
    anchor_ids = load(data.xa).ids
    bad = data.ids.index(anchor_ids[5])
    y = data.y.copy()
    y[bad, 2] = np.nan
    target = write_embeddings(tmp_path / "y_nan.h5", y, ids=data.ids, labels=data.labels, allow_nonfinite=True)
    failed = invoke("anchors", target, "--like", data.xa, "-o", tmp_path / "ya.h5")
    assert_clean_error(failed, 1, "NaN/Inf", repr(anchor_ids[5]), "--drop-invalid", path=target)
    result = ok(invoke("anchors", target, "--like", data.xa, "--drop-invalid", "-o", tmp_path / "ya.h5"))
    assert f"dropped 1 row(s) (ids {anchor_ids[5]!r})" in result.stderr
    assert "1 of the 32 anchors" in result.stderr
    written = load(tmp_path / "ya.h5")
    assert written.ids == [i for i in anchor_ids if i != anchor_ids[5]] and np.isfinite(written.matrix).all()
    # the parallel anchors still pair up by id
    ok(invoke("translate", "--src", data.x_h5, "--src-anchors", data.xa, "--tgt-anchors", tmp_path / "ya.h5",
              "--method", "procrustes", "-o", tmp_path / "t.h5"))


def test_info_on_a_saved_map_and_head(data, tmp_path):
    ok(invoke("translate", "--src", data.x_h5, "--tgt-anchors", data.ya, "--method", "linear",
              "--save-map", tmp_path / "m.safetensors", "-o", tmp_path / "y.h5"))
    described = json.loads(ok(invoke("info", tmp_path / "m.safetensors", "--format", "json"), data=True).stdout)
    assert described["kind"] == "translator" and described["estimator"] == "LinearTranslator"
    assert "matrix_" in described["arrays"]


def test_a_map_or_head_where_embeddings_belong_is_named(data, tmp_path):
    ok(invoke("stitch", "fit", data.y_h5, "-o", tmp_path / "head.safetensors"))
    failed = invoke("translate", "--src", tmp_path / "head.safetensors", "--tgt-anchors", data.ya, "-o", tmp_path / "y.h5")
    assert_clean_error(failed, 1, "is a fitted head", path=tmp_path / "head.safetensors")
    failed = invoke("project", data.x_h5, "--anchors", tmp_path / "head.safetensors", "-o", tmp_path / "r.h5")
    assert_clean_error(failed, 1, "is a fitted head", path=tmp_path / "head.safetensors")

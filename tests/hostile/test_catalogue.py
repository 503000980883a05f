"""The hostile-input catalogue as a whole (issue 12, item 1): the baseline of its grid and its size.

The cases live by family in ``test_corrupt``, ``test_lying_meta``, ``test_wrong_kind``,
``test_bad_numbers``, ``test_options``, ``test_paths`` and ``test_embed``; the shared tables in
``_catalogue``.
"""

from __future__ import annotations

from ._catalogue import ALL, ROLES, base_path, role_formats


def test_every_role_works_with_its_pristine_file(corpus, tmp_path):
    """The baseline of the grid: each role's command line succeeds on the untouched file, so every
    failure below comes from the hostile input alone."""
    from .conftest import invoke

    failures = []
    for role, (base, line) in ROLES.items():
        for fmt in role_formats(role):
            out = tmp_path / f"{role}-{fmt}"
            out.mkdir()
            result = invoke(line(corpus, base_path(corpus, base, fmt), out))
            if result.exit_code != 0:
                failures.append(f"{role} ({fmt}): exit {result.exit_code}: {result.stderr.strip()}")
    assert not failures, "\n".join(failures)



def test_catalogue_size():
    """Issue 12 asks for at least 150 cases across every subcommand and the Python API."""
    from . import test_bad_numbers, test_corrupt, test_embed, test_lying_meta, test_options, test_paths, test_wrong_kind  # noqa: F401

    commands = {" ".join(str(a) for a in case_id.split(":")[:2]) for case_id in ALL}
    assert len(ALL) + len(test_options.API_ONLY) >= 150, len(ALL)
    assert len(commands) > 20

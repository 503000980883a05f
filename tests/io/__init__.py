"""Tests of relcli.io: embedding files, atomic writes, estimators."""

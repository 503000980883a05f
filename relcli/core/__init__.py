"""Pure kernels on torch tensors: no files, no printing, no global device state.

New tensors follow the input's device and dtype. Everything fitted follows the estimator
contract of ``relcli.core._estimator``.
"""

"""relcli: make two neural latent spaces talk, from the command line.

Importing this package is cheap: it imports neither torch nor h5py. The kernels live in
``relcli.core`` (pure functions and estimators on torch tensors), the file formats in
``relcli.io`` and the command line in ``relcli.cli``.
"""

__version__ = "0.1.0"

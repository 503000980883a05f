"""relcli on Dask: apply a saved map or a relative projection to a ``dask.array``, block by block.

Install with ``pip install 'relcli[dask]'``. The row-wise steps of relcli (``translate --map``,
``project``) apply one fitted object to every row independently, so a big matrix is split into
blocks of rows, every block is transformed where it lies (``map_blocks``), and the fitted object is
loaded once per worker process (and reloaded only if its file changes). Fit the map once, small,
with the CLI (``relcli translate --src xa.h5 --tgt-anchors ya.h5 --save-map map.safetensors -o
xa_in_y.h5``), then apply it here::

    from dask.distributed import Client
    import relcli.dask as rd

    client = Client("tcp://scheduler:8786")   # an existing cluster; or Client(LocalCluster(...)),
                                              # or no client at all: Dask's local threads
    rd.translate_file("big.h5", map="map.safetensors", output="big_in_y.h5")   # what `relcli translate --map` does

    # the same in steps, with any dask array as input:
    x = rd.from_embeddings("big.h5")          # .array (lazy, row blocks), .ids, .labels, .attrs
    y = rd.translate(x.array, map="map.safetensors")
    rd.write(y, "big_in_y.h5", ids=x.ids, labels=x.labels)      # or "big_in_y.zarr"

    import dask.array as da, h5py
    x = da.from_array(h5py.File("big.h5")["embeddings"], chunks=(65536, -1))   # HDF5 through h5py
    x = da.from_zarr("big.zarr", component="embeddings")                      # Zarr
    x = rd.from_embeddings("parquet_folder/").array                            # Parquet (id + vector columns)
    r = rd.project(x, anchors="xa.h5", similarity=["cosine", "euclidean"])     # relative representation
    r.to_zarr("rel.zarr", component="embeddings")                             # plain Dask writers work too

``Client("tcp://scheduler:8786")`` makes that cluster the default scheduler of every compute
here (``write``, ``translate_file``, ``dask.compute``); without a client Dask uses local threads.
On a cluster, every worker must have relcli installed and see the map, anchors and input files
at the same paths as the client (a shared file system; paths are made absolute on the client),
and ``write`` runs on the client, receiving the blocks in order. Each row is computed exactly as
``relcli translate --map`` / ``relcli project`` compute it (same kernels, compute dtype and output
dtype); results agree with the CLI's to float rounding (block boundaries differ).

Rows with NaN/Inf (or, where direction matters, all zeros) are an error naming their row numbers
and the input: blocks must keep their shapes, so there is no ``--drop-invalid`` here (use the CLI
with ``--shard`` for that). ``translate_block``/``project_block`` do the same on one NumPy block,
for other engines (a Spark ``mapInPandas`` step, Ray, a thread pool); see ``examples/shards/``.

The blockwise kernels are in ``relcli.dask._blocks``, files in and out in ``relcli.dask._files``.
"""

from __future__ import annotations

from relcli.dask._blocks import loads, project, project_block, translate, translate_block
from relcli.dask._files import Embeddings, from_embeddings, project_file, translate_file, write

__all__ = [
    "Embeddings", "from_embeddings", "loads", "project", "project_block", "project_file", "translate",
    "translate_block", "translate_file", "write",
]

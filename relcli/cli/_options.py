"""Options shared by the subcommands, as Annotated aliases (one spelling everywhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

Output = Annotated[Path, typer.Option("-o", "--output", help="Output file: .h5/.hdf5 or .safetensors (by extension).")]
Device = Annotated[
    Optional[str], typer.Option("--device", help="auto|cpu|cuda[:N] (default: env RELCLI_DEVICE, else auto).")
]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="Silence everything but errors.")]
Verbose = Annotated[bool, typer.Option("-v", "--verbose", help="Print details (condition numbers, choices).")]
Debug = Annotated[bool, typer.Option("--debug", help="Show the traceback on errors.")]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Rows per chunk read, computed and written.")]
Key = Annotated[Optional[str], typer.Option("--key", help="Name of the 2-D array in a foreign file.")]
Dtype = Annotated[
    Optional[str],
    typer.Option("--dtype", help="Output dtype: float16|bfloat16|float32|float64 (default: the input's)."),
]
DropInvalid = Annotated[
    bool, typer.Option("--drop-invalid", help="Skip rows with NaN/Inf (or all zeros where direction matters) instead of failing.")
]
Seed = Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same output.")]

DEFAULT_BATCH = 65536

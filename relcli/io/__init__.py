"""File formats: embedding files in HDF5 and safetensors (and bare .npy), streamed and atomic."""

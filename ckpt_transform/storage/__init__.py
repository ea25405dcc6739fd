"""Where checkpoints live, behind one small interface; knows nothing of schemes.

* `base` -- the `Storage` and session interface the driver talks to.
* `memory` -- `ArrayStorage`, checkpoints held as arrays in memory.
* `hdf5` -- `HDF5Storage`, checkpoints written to an HDF5 file with h5py.
"""

#!/usr/bin/python3
"""Write `h5py_fixture.hdf5`, a tiny file in The Well's layout, with h5py.

lemur-well's compatibility test reads this file and compares every value with
the same closed-form expression, so the file must be regenerated only when that
expression changes.  Run with Debian's h5py (`apt-get install python3-h5py`):

    /usr/bin/python3 tests/data/well/make_h5py_fixture.py

The shapes are deliberately all different (B=3, T=4, X=6, Y=5, D=2) so that a
transposed or mis-strided read cannot pass by accident.  `density` is chunked
and gzip-compressed so the reader's non-contiguous path is exercised too;
everything else uses h5py's default contiguous layout, like The Well's files.
"""
import os

import h5py
import numpy as np

B, T, X, Y, D = 3, 4, 6, 5, 2


def value(field, b, t, x, y, comp):
    """Exactly representable in float32, unique per (field, b, t, x, y, comp)."""
    return field * 10000 + b * 1000 + t * 100 + x * 10 + y + comp * 0.25


def grid(field, comps, time_varying=True):
    shape = (B, T, X, Y) if time_varying else (B, X, Y)
    out = np.zeros(shape + (comps,), dtype=np.float32)
    for idx in np.ndindex(*shape):
        b, t, x, y = (idx if time_varying else (idx[0], 0, idx[1], idx[2]))
        for c in range(comps):
            out[idx + (c,)] = value(field, b, t, x, y, c)
    return out


def field_attrs(ds, time_varying=True):
    ds.attrs["dim_varying"] = np.array([True, True])
    ds.attrs["sample_varying"] = True
    ds.attrs["time_varying"] = time_varying


path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "h5py_fixture.hdf5")
with h5py.File(path, "w") as f:
    f.attrs["dataset_name"] = "h5py_fixture"
    f.attrs["grid_type"] = "cartesian"
    f.attrs["n_spatial_dims"] = 2
    f.attrs["n_trajectories"] = B
    f.attrs["simulation_parameters"] = ["gamma"]
    f.attrs["gamma"] = 1.4

    dims = f.create_group("dimensions")
    dims.attrs["spatial_dims"] = ["x", "y"]
    time = dims.create_dataset("time", data=np.arange(T, dtype=np.float32) * 0.015)
    time.attrs["sample_varying"] = False
    time.attrs["time_varying"] = True
    for name, n in (("x", X), ("y", Y)):
        ds = dims.create_dataset(name, data=((np.arange(n) + 0.5) / n).astype(np.float32))
        ds.attrs["sample_varying"] = False
        ds.attrs["time_varying"] = False

    bcs = f.create_group("boundary_conditions")
    for dim, n, kind in (("x", X, "PERIODIC"), ("y", Y, "WALL")):
        g = bcs.create_group(f"{dim}_{kind.lower()}")
        g.attrs["associated_dims"] = [dim]
        g.attrs["associated_fields"] = []
        g.attrs["bc_type"] = kind
        g.attrs["sample_varying"] = False
        g.attrs["time_varying"] = False
        mask = np.zeros(n, dtype=bool)
        mask[0] = mask[-1] = True
        g.create_dataset("mask", data=mask)

    scalars = f.create_group("scalars")
    scalars.attrs["field_names"] = ["gamma"]
    g = scalars.create_dataset("gamma", data=np.float64(1.4))
    g.attrs["sample_varying"] = False
    g.attrs["time_varying"] = False

    t0 = f.create_group("t0_fields")
    t0.attrs["field_names"] = ["energy", "density", "bathymetry"]
    ds = t0.create_dataset("energy", data=grid(0, 1)[..., 0])
    field_attrs(ds)
    ds = t0.create_dataset("density", data=grid(1, 1)[..., 0], chunks=(1, 2, X, Y),
                           compression="gzip", shuffle=True)
    field_attrs(ds)
    ds = t0.create_dataset("bathymetry", data=grid(2, 1, time_varying=False)[..., 0])
    field_attrs(ds, time_varying=False)

    t1 = f.create_group("t1_fields")
    t1.attrs["field_names"] = ["momentum"]
    ds = t1.create_dataset("momentum", data=grid(3, D))
    field_attrs(ds)

    t2 = f.create_group("t2_fields")
    t2.attrs["field_names"] = ["stress"]
    ds = t2.create_dataset("stress", data=grid(4, D * D).reshape(B, T, X, Y, D, D))
    field_attrs(ds)
    ds.attrs["symmetric"] = False
    ds.attrs["antisymmetric"] = False

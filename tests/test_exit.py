"""A process that used intake-broker exits cleanly even with HDF5 files left open."""

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("h5py")


def test_an_hdf5_file_read_through_a_python_file_object_left_open_at_exit(tmp_path):
    # what a cache of an fsspec-opened asset or simulation output holds at exit: a file
    # object inside an HDF5 file nobody closes (the leak stands for the cache); HDF5's C
    # exit handler used to close it after Python was gone, and the process died with 139
    script = textwrap.dedent(
        f"""
        import ctypes
        import h5py
        import intake_broker

        path = {str(tmp_path / "left-open.h5")!r}
        with h5py.File(path, "w") as f:
            f["x"] = [1, 2, 3]
        held = h5py.File(open(path, "rb"), "r")
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(held))
        print(held["x"][()].sum())
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "6"

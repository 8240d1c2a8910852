"""Writes the NumPy and safetensors fixtures that tests/io.rs reads back.

Run from this directory with NumPy (2.x) and safetensors installed:

    python3 make_fixtures.py

Every file is written by NumPy (or by safetensors' NumPy API) itself, so the tests
check wgrad against the reference writers, not against its own.
"""

import json

import numpy as np
from safetensors.numpy import save_file

np.save("x_f32.npy", np.array([[1.5, -2.0, 0.25], [3.0, 0.0, -0.5]], dtype=np.float32))
np.save("labels_i32.npy", np.array([0, 2, 1, -7], dtype=np.int32))
np.save("counts_u32.npy", np.array([7, 4294967295], dtype=np.uint32))
np.save("mask_bool.npy", np.array([True, False, True]))
np.save("scalar_f32.npy", np.float32(2.5))
np.save("empty_f32.npy", np.zeros((3, 0), dtype=np.float32))
# NumPy's default float type, converted to f32 on reading.
np.save("x_f64.npy", np.array([[0.1, -1e30], [2.0, 3.0]]))
# NumPy's default integer type, converted to i32 on reading.
np.save("labels_i64.npy", np.array([3, -1, 2], dtype=np.int64))
np.save("too_big_i64.npy", np.array([1, 2**40], dtype=np.int64))
np.save("fortran_f32.npy", np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
np.save("big_endian_f32.npy", np.array([1.0, -2.5, 1e-3], dtype=">f4"))
np.save("complex.npy", np.array([1 + 2j], dtype=np.complex64))

# The MLP example's inputs, as an archive of one array per input name.
with open("../../../examples/programs/mlp.inputs.json") as f:
    inputs = json.load(f)
dtypes = {"f32": np.float32, "i32": np.int32, "u32": np.uint32, "bool": np.bool_}
arrays = {
    name: np.array(t["data"], dtype=dtypes[t["dtype"]]).reshape(t["shape"])
    for name, t in inputs.items()
}
np.savez("mlp_inputs.npz", **arrays)
np.savez_compressed("mlp_inputs_compressed.npz", **arrays)
save_file(arrays, "mlp_inputs.safetensors")

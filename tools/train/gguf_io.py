# tools/train/gguf_io.py — the little of GGUF v3 the training tools need: read a file's key-value
# pairs (to copy the learned vocabulary) and write a model of F32/F16 tensors. The layout is the one
# fimd's model/gguf.c and llama.cpp's gguf.cpp read; alignment 32.
import struct

import numpy as np

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
_SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
           BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}
GGML_F32, GGML_F16 = 0, 1
ALIGN = 32


class Value:
    """A typed GGUF value: type, and for arrays the element type."""

    def __init__(self, vtype, value, elem=None):
        self.vtype, self.value, self.elem = vtype, value, elem


def _read_str(f):
    (n,) = struct.unpack("<Q", f.read(8))
    return f.read(n)


def _read_value(f, vtype):
    if vtype == STR:
        return _read_str(f)
    if vtype == ARR:
        elem, n = struct.unpack("<IQ", f.read(12))
        return Value(ARR, [_read_value(f, elem) for _ in range(n)], elem)
    fmt = _SCALAR[vtype]
    return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


def read_kv(path):
    """{key: Value} of a GGUF file (tensors are not read)."""
    out = {}
    with open(path, "rb") as f:
        magic, version, n_t, n_kv = struct.unpack("<4sIQQ", f.read(24))
        if magic != b"GGUF" or version < 2:
            raise ValueError(f"{path}: not a GGUF v2/v3 file")
        for _ in range(n_kv):
            key = _read_str(f).decode()
            (vtype,) = struct.unpack("<I", f.read(4))
            v = _read_value(f, vtype)
            out[key] = v if isinstance(v, Value) else Value(vtype, v)
    return out


def _write_str(f, s):
    b = s if isinstance(s, bytes) else s.encode()
    f.write(struct.pack("<Q", len(b)) + b)


def _write_value(f, vtype, v, elem=None):
    if vtype == STR:
        _write_str(f, v)
    elif vtype == ARR:
        f.write(struct.pack("<IQ", elem, len(v)))
        if elem in _SCALAR:
            f.write(np.asarray(v, dtype=np.dtype(_SCALAR[elem])).tobytes())
        else:
            for x in v:
                _write_value(f, elem, x)
    else:
        f.write(struct.pack(_SCALAR[vtype], v))


def write(path, kv, tensors):
    """kv: list of (key, Value); tensors: list of (name, numpy array in math order, ggml type).
    A numpy array of shape (..., rows, cols) is stored with ne = reversed shape, as PyTorch
    [out, in] weights are in llama.cpp files."""
    datas = []
    for name, arr, gtype in tensors:
        dt = np.float32 if gtype == GGML_F32 else np.float16
        datas.append(np.ascontiguousarray(arr, dtype=dt).tobytes())
    with open(path, "wb") as f:
        f.write(struct.pack("<4sIQQ", b"GGUF", 3, len(tensors), len(kv)))
        for key, v in kv:
            _write_str(f, key)
            f.write(struct.pack("<I", v.vtype))
            _write_value(f, v.vtype, v.value, v.elem)
        off = 0
        for (name, arr, gtype), data in zip(tensors, datas):
            _write_str(f, name)
            f.write(struct.pack("<I", arr.ndim))
            f.write(struct.pack(f"<{arr.ndim}Q", *reversed(arr.shape)))
            f.write(struct.pack("<IQ", gtype, off))
            off += (len(data) + ALIGN - 1) // ALIGN * ALIGN
        f.write(b"\0" * (-f.tell() % ALIGN))
        for data in datas:
            f.write(data)
            f.write(b"\0" * (-len(data) % ALIGN))

"""Runs a CUDA program of CompiledFunction._cuda_source on torch CUDA tensors, for the
GPU tests (tests/test_cuda.py) until the runtime replays CUDA plans itself: the trace
is taken with CPU copies of the arguments, NVRTC compiles for the device's compute
capability, and the parameter block (tj_args: P, S, W; csrc/emit/emit.h) is filled here
as the runtime will fill it. Arguments: torch CUDA tensors (C-contiguous) and Python
numbers; no captures or random keys."""
import struct

import tracejit
from tracejit import _C

TORCH_DTYPES = {"bool": "bool", "int32": "int32", "int64": "int64",
                "float32": "float32", "float64": "float64"}
PACK = {"bool": "?7x", "int32": "i4x", "int64": "q", "float32": "f4x", "float64": "d"}


def run(fn, *args, stream=None):
    import torch
    dev = next(a.device for a in args if isinstance(a, torch.Tensor))
    cpu = [a.cpu() if isinstance(a, torch.Tensor) else a for a in args]
    prog = tracejit.compile(fn)._cuda_source(*cpu)
    name, major, minor, sms = _C._cuda_device(dev.index or 0)
    image, log, is_ptx = _C._nvrtc_compile(prog["source"], major * 10 + minor)
    n, nd = prog["n_slots"], prog["nd"]
    P, S = [0] * n, [[0] * nd for _ in range(n)]
    keep = []
    for slot, (kind, index, dtype) in enumerate(prog["leaf_slots"]):
        if kind == "const":
            continue
        assert kind == "arg", f"the harness passes arguments only, not {kind}"
        a = args[index]
        if isinstance(a, torch.Tensor):
            assert a.device == dev and a.is_contiguous()
            P[slot] = a.data_ptr()
            for d in range(a.dim()):
                S[slot][d] = a.stride(d) * a.element_size()
        else:
            assert slot in prog["by_value"]
            P[slot] = struct.unpack("Q", struct.pack(PACK[dtype], a))[0]
    scratch = torch.empty(max(prog["scratch_bytes"], 1), dtype=torch.uint8, device=dev)
    work = torch.empty(max(prog["work_bytes"], 1), dtype=torch.uint8, device=dev)
    keep += [scratch, work]
    outs = {}
    for entry in prog["scratch"] + prog["outputs"]:
        slot, dtype, shape = entry[:3]
        if len(entry) == 4:   # scratch: its place in the scratch block, contiguous
            P[slot] = scratch.data_ptr() + entry[3]
            t = torch.empty(shape, dtype=getattr(torch, dtype), device="meta")
        else:
            t = outs[slot] = torch.empty(shape, dtype=getattr(torch, dtype), device=dev)
            P[slot] = t.data_ptr()
        for d in range(len(shape)):
            S[slot][d] = t.stride(d) * t.element_size()
    params = struct.pack(f"{n}Q{n * nd}qQ", *P, *[s for row in S for s in row], work.data_ptr())
    assert len(params) == prog["param_bytes"]
    s = stream if stream is not None else torch.cuda.current_stream(dev)
    _C._cuda_run(dev.index or 0, image, [k[:3] for k in prog["kernels"]], params, s.cuda_stream)
    return tuple(outs[slot] for slot in prog["out_slot_of"])

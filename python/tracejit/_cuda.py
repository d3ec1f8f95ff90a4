"""Where NVRTC and cuBLAS may be besides the loader's path (csrc/backend/cuda_api.c and
cublas.c ask at first use): the CUDA 13 and CUDA 12 `nvidia-cuda-nvrtc` /
`nvidia-cublas` wheels and torch's bundled copies.
Nothing is imported: the packages are located with importlib's finders."""
import glob
import importlib.util
import os


def _package_dirs(name):
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    return list(spec.submodule_search_locations or [])


def _wheel_libs(wheel_dirs, soname, torch_pattern):
    """Paths of a CUDA library in the nvidia-* wheels (under each of wheel_dirs, then
    their lib/) and in torch's own lib/, newest CUDA first."""
    found = []
    for root in _package_dirs("nvidia"):
        for sub in wheel_dirs:
            found += sorted(glob.glob(os.path.join(root, sub, "lib", soname + "*")), reverse=True)
    for root in _package_dirs("torch"):
        found += sorted(glob.glob(os.path.join(root, "lib", torch_pattern)), reverse=True)
    return found


def nvrtc_candidates():
    """Paths of libnvrtc to try, newest CUDA first."""
    found = _wheel_libs(("cu13", "cuda_nvrtc"), "libnvrtc.so.1", "libnvrtc*.so*")
    return [p for p in found if "builtins" not in os.path.basename(p)
            and ".alt." not in os.path.basename(p)]


def cublas_candidates():
    """Paths of libcublas to try, newest CUDA first."""
    return _wheel_libs(("cu13", "cublas"), "libcublas.so.1", "libcublas.so*")

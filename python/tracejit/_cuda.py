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


def nvrtc_candidates():
    """Paths of libnvrtc to try, newest CUDA first."""
    found = []
    for root in _package_dirs("nvidia"):
        found += sorted(glob.glob(os.path.join(root, "cu13", "lib", "libnvrtc.so.1*")), reverse=True)
        found += sorted(glob.glob(os.path.join(root, "cuda_nvrtc", "lib", "libnvrtc.so.1*")), reverse=True)
    for root in _package_dirs("torch"):
        found += sorted(glob.glob(os.path.join(root, "lib", "libnvrtc*.so*")), reverse=True)
    return [p for p in found if "builtins" not in os.path.basename(p)
            and ".alt." not in os.path.basename(p)]


def cublas_candidates():
    """Paths of libcublas to try, newest CUDA first."""
    found = []
    for root in _package_dirs("nvidia"):
        found += sorted(glob.glob(os.path.join(root, "cu13", "lib", "libcublas.so.1*")), reverse=True)
        found += sorted(glob.glob(os.path.join(root, "cublas", "lib", "libcublas.so.1*")), reverse=True)
    for root in _package_dirs("torch"):
        found += sorted(glob.glob(os.path.join(root, "lib", "libcublas.so*")), reverse=True)
    return found

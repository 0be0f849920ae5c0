#!/usr/bin/env bash
# Build (once) and install Horovod into the given virtualenv, as DESIGN.md prescribes.
#
# Horovod 0.28.1 ships only as an sdist. It compiles against torch >= 2.1 only with C++17, so the
# sdist's two CMakeLists.txt are patched from CMAKE_CXX_STANDARD 14 to 17 (the fix that Horovod's
# unreleased master carries). The built wheel is cached outside the checkout, keyed by Horovod,
# torch, Python and CPU/GPU flavour, so later installs (and CI re-runs on the same machine) reuse it.
#
# usage: .ci/build_horovod.sh VENV_PYTHON HOROVOD_VERSION
set -euo pipefail

py=${1:?usage: build_horovod.sh VENV_PYTHON HOROVOD_VERSION}
version=${2:?usage: build_horovod.sh VENV_PYTHON HOROVOD_VERSION}
cache_root=${CARTWHEEL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cartwheel}

torch_version=$("$py" -c 'import torch; print(torch.__version__)')
py_tag=$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
flavour=cpu
gpu_ops=()
if command -v nvidia-smi >/dev/null 2>&1 && "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    flavour=cuda
    gpu_ops=(HOROVOD_GPU_OPERATIONS=NCCL)
fi
key="horovod-${version}-torch${torch_version//+/_}-${py_tag}-${flavour}"
wheel_dir="$cache_root/wheels/$key"

if "$py" -c "import horovod, sys; sys.exit(0 if horovod.__version__ == '$version' else 1)" 2>/dev/null; then
    echo "horovod $version already installed"
    exit 0
fi

if ! ls "$wheel_dir"/horovod-*.whl >/dev/null 2>&1; then
    echo "building horovod $version for torch $torch_version ($flavour); takes 3-7 minutes on 2 cores"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    "$py" -m pip download --quiet --no-deps --no-binary :all: "horovod==$version" -d "$work"
    tar -xzf "$work/horovod-$version.tar.gz" -C "$work"
    src="$work/horovod-$version"
    for f in "$src/CMakeLists.txt" "$src/horovod/torch/CMakeLists.txt"; do
        sed -i 's/set(CMAKE_CXX_STANDARD 14)/set(CMAKE_CXX_STANDARD 17)/' "$f"
        if grep -q 'set(CMAKE_CXX_STANDARD 14)' "$f" || ! grep -q 'set(CMAKE_CXX_STANDARD 17)' "$f"; then
            echo "error: could not patch CMAKE_CXX_STANDARD in $f" >&2
            exit 1
        fi
    done
    mkdir -p "$work/dist"
    env HOROVOD_WITH_PYTORCH=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 \
        HOROVOD_WITHOUT_MPI=1 HOROVOD_WITH_GLOO=1 HOROVOD_CPU_OPERATIONS=gloo "${gpu_ops[@]}" \
        MAKEFLAGS="-j$(nproc)" \
        "$py" -m pip wheel --quiet --no-build-isolation --no-deps -w "$work/dist" "$src" \
        > "$work/build.log" 2>&1 || { tail -n 60 "$work/build.log" >&2; echo "error: horovod build failed" >&2; exit 1; }
    mkdir -p "$wheel_dir"
    cp "$work"/dist/horovod-*.whl "$wheel_dir/"
    echo "cached $(ls "$wheel_dir")  in $wheel_dir"
else
    echo "reusing cached wheel $(ls "$wheel_dir"/horovod-*.whl)"
fi

# --no-deps: horovod's own requirements (cloudpickle, psutil, pyyaml, packaging) come with the
# project; its [spark] extra is deliberately not installed (it pins pyarrow < 11).
"$py" -m pip install --quiet --no-deps "$wheel_dir"/horovod-*.whl
"$py" -m pip install --quiet cloudpickle
"$py" -c 'import horovod.torch as hvd; assert hvd.gloo_built(), "horovod built without gloo"; print("horovod", __import__("horovod").__version__, "with gloo")'

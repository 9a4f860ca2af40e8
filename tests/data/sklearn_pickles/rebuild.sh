#!/usr/bin/env bash
# Rebuild the committed fixtures: one throwaway venv per scikit-learn release (wheels for CPython 3.11 only, no
# compiler), each running make_fixtures.py. Run from the repository root with python3.11 on the PATH:
#     bash tests/data/sklearn_pickles/rebuild.sh [VENV_ROOT]   (venvs go to VENV_ROOT, default /tmp)
# The numpy/scipy/joblib pins are the ones each release was built with (its versions.json records them).
set -euo pipefail
venvs=${1:-/tmp}
build() {
    local release=$1; shift
    local venv="$venvs/skl-$release"
    python3.11 -m venv "$venv"
    "$venv/bin/pip" install -q --only-binary=:all: "scikit-learn==$release" "$@"
    PYTHONPATH=tests "$venv/bin/python" tests/data/sklearn_pickles/make_fixtures.py
}
build 1.4.2 numpy==1.26.4 scipy==1.13.1 joblib==1.4.2
build 1.5.2 numpy==1.26.4 scipy==1.14.1 joblib==1.4.2
build 1.6.1 numpy==2.2.1 scipy==1.15.1 joblib==1.4.2
build 1.7.2 numpy==2.3.3 scipy==1.16.2 joblib==1.5.2
build 1.8.0 numpy==2.3.5 scipy==1.16.3 joblib==1.5.2
build 1.9.0 numpy==2.4.6 scipy==1.17.1 joblib==1.6.0

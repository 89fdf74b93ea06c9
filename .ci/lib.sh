# Shared by .ci/test and .ci/demo: find Pythons >= 3.12 and build a virtualenv for each.
# Sourced, not run.  Honours PYTHON (one interpreter) if set.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

_is_supported() {  # $1: an interpreter; succeeds if it runs and is >= 3.12
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

# Print one interpreter path per supported minor version, newest first.
find_pythons() {
    if [ -n "${PYTHON:-}" ]; then
        if _is_supported "$PYTHON"; then echo "$PYTHON"; return 0; fi
        echo "PYTHON=$PYTHON is not a Python >= 3.12" >&2; return 1
    fi
    local found="" candidates="" seen=" "
    if command -v pyenv >/dev/null 2>&1; then
        local root; root="$(pyenv root)"
        for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.[0-9]+\.[0-9]+$' | sort -t. -k2,2nr -k3,3nr); do
            candidates="$candidates $root/versions/$v/bin/python"
        done
    fi
    for name in python3.15 python3.14 python3.13 python3.12 python3; do
        local p; p="$(command -v "$name" 2>/dev/null || true)"
        [ -n "$p" ] && candidates="$candidates $p"
    done
    for p in $candidates; do
        _is_supported "$p" || continue
        local minor; minor="$("$p" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
        case "$seen" in *" $minor "*) continue ;; esac
        seen="$seen$minor "
        found="$found$p"$'\n'
    done
    if [ -z "$found" ]; then
        echo "no Python >= 3.12 found (install one with pyenv, put it on PATH, or set PYTHON)" >&2
        return 1
    fi
    printf '%s' "$found"
}

# make_venv PYTHON EXTRAS -> prints the venv's python; installs coroscope (not editable,
# so that its .pth start-up file is installed as a user would get it).
make_venv() {
    local py="$1" extras="$2" minor venv
    minor="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    venv="$ROOT/.venv/$minor"
    if [ ! -x "$venv/bin/python" ]; then
        "$py" -m venv "$venv" >&2
    fi
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2 2>/dev/null || true
    rm -rf "$ROOT/build"  # setuptools reuses it: no stale module from an earlier build
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "$ROOT$extras" 2>&1 \
        | grep -v "^WARNING: Location" >&2 || true
    "$venv/bin/python" -c 'import coroscope' >&2
    echo "$venv/bin/python"
}

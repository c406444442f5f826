#!/usr/bin/env bash
# Print the path of a Python 3.13 interpreter, or say in one line what to install and fail.
# Order: $PYTHON if given, python3.13 or a python3 that is 3.13 on PATH, then pyenv's versions (its shim answers only when
# 3.13 is the selected version, so look in the versions folder directly).
set -u
ok() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1; }
for cand in "${PYTHON:-}" "$(command -v python3.13 2>/dev/null)" "$(command -v python3 2>/dev/null)"; do
  if [ -n "$cand" ] && ok "$cand"; then echo "$cand"; exit 0; fi
done
root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
for cand in $(ls -d "$root"/versions/3.13*/bin/python3.13 2>/dev/null | sort -rV); do
  if ok "$cand"; then echo "$cand"; exit 0; fi
done
echo "idrettsbro needs Python 3.13: install it (e.g. 'pyenv install 3.13' or your OS package python3.13), or run make PYTHON=/path/to/python3.13" >&2
exit 1

# find_python VERSION: print a working interpreter of that CPython version (e.g. 3.12), or
# nothing. Looks at $PYTHON3_12 (and so on), python3.12 on PATH, a manylinux image's
# /opt/python, then pyenv's versions (newest patch release first).
find_python() {
  local version="$1" var="PYTHON${1//./_}" root candidate
  root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
  for candidate in "${!var:-}" "$(command -v "python$version" 2>/dev/null)" \
      "/opt/python/cp${version/./}-cp${version/./}/bin/python" \
      $(find "$root/versions" -maxdepth 3 -path "*/versions/$version.*/bin/python$version" 2>/dev/null | sort -rV); do
    # (pyenv's shims exist for every installed version but run only the selected ones)
    if [[ -n "$candidate" ]] && "$candidate" -c 'import sys' >/dev/null 2>&1; then
      echo "$candidate"
      return
    fi
  done
}

# RepoSearcher tools for SWE-agent: choose the Python that runs them, record it, index.
# SWE-agent runs `cd /root/tools/<bundle> && source install.sh` in the agent's bash session, so this file
# must not exit, leaves no shell options or variables behind, and returns non-zero only when the tools
# cannot work (SWE-agent then stops with this output in its log). POSIX sh; bash sources it.
_rs_bundle=$(pwd -P)
if [ -n "${BASH_SOURCE:-}" ]; then
    _rs_bundle=$(CDPATH= cd -- "$(dirname -- "${BASH_SOURCE:-}")" && pwd -P)
fi
_rs_check='import sys; assert sys.version_info >= (3, 11); import {{module}}; print(sys.executable)'

# First Python that imports our runner and whose tree-sitter parses with our grammars: $REPOSEARCHER_PYTHON,
# a venv made earlier, SWE-agent's own standalone Python, then what PATH offers, newest first. The
# repository's python (3.6-3.9) fails the import. A Python that imports us but fails the grammar check (a
# shared environment where SWE-agent's edit_anthropic installed tree-sitter 0.21.3) is reported and passed
# over: its tools would index nothing. Returns 1 when none imports us, 2 when some failed the check.
_rs_find() {
    _rs_broken=1
    _rs_seen=
    for _rs_c in ${REPOSEARCHER_PYTHON:-} "$_rs_bundle/venv/bin/python" /root/python3.11/bin/python3 \
        python3.14 python3.13 python3.12 python3.11 python3 python; do
        command -v "$_rs_c" >/dev/null 2>&1 || continue
        _rs_out=$("$_rs_c" -E -P -c "$_rs_check" 2>/dev/null) && [ -n "$_rs_out" ] || continue
        case "|$_rs_seen|" in *"|$_rs_out|"*) continue ;; esac
        _rs_seen="$_rs_seen|$_rs_out"
        if _rs_msg=$("$_rs_out" -E -P -m {{module}} --check 2>&1); then
            printf '%s\n' "$_rs_out"
            return 0
        fi
        printf '%s\n  (%s, passed over)\n' "$_rs_msg" "$_rs_out" >&2
        _rs_broken=2
    done
    return $_rs_broken
}

# Else a venv from the first Python >= 3.11, filled offline from the wheels shipped in the bundle.
_rs_venv() {
    [ -f "$_rs_bundle/wheels/requirements.txt" ] || return 1
    for _rs_c in ${REPOSEARCHER_PYTHON:-} /root/python3.11/bin/python3 \
        python3.14 python3.13 python3.12 python3.11 python3 python; do
        command -v "$_rs_c" >/dev/null 2>&1 || continue
        "$_rs_c" -E -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || continue
        rm -rf "$_rs_bundle/venv"
        "$_rs_c" -E -m venv "$_rs_bundle/venv" || continue
        if "$_rs_bundle/venv/bin/python" -E -m pip install -q --disable-pip-version-check --no-index \
                --find-links "$_rs_bundle/wheels" -r "$_rs_bundle/wheels/requirements.txt" &&
            "$_rs_bundle/venv/bin/python" -E -m pip install -q --disable-pip-version-check --no-index \
                --find-links "$_rs_bundle/wheels" --no-deps reposearcher-plugin; then
            return 0
        fi
        rm -rf "$_rs_bundle/venv"
    done
    return 1
}

_rs_status=0
_rs_py=$(_rs_find) || _rs_status=$?
if [ "$_rs_status" != 0 ] && _rs_venv; then
    _rs_status=0
    _rs_py=$(_rs_find) || _rs_status=$?
fi
if [ "$_rs_status" = 0 ] && [ -n "$_rs_py" ]; then
    printf '%s\n' "$_rs_py" > "$_rs_bundle/python_path"
    echo "RepoSearcher tools: using $_rs_py"
    # SWE-agent exports ROOT (the repository) before installing tools: index it now, not on the first call
    if [ -z "${REPOSEARCHER_NO_WARM:-}" ] && [ -n "${REPOSEARCHER_REPO:-}${ROOT:-}" ]; then
        "$_rs_py" -E -P -m {{module}} --warm || echo "RepoSearcher tools: indexing failed; tools will retry"
    fi
    unset -f _rs_find _rs_venv
    unset _rs_bundle _rs_check _rs_c _rs_out _rs_py _rs_msg _rs_seen _rs_broken _rs_status
    true
else
    if [ "$_rs_status" = 2 ]; then
        echo "RepoSearcher tools: no Python here has a tree-sitter that parses with RepoSearcher's" \
            "grammars (see above); the tools would find nothing." >&2
        echo "  Reinstall tree-sitter as said above, set REPOSEARCHER_PYTHON to a Python with its own" \
            "environment, or rebuild the bundle with: reposearcher swe-agent bundle --wheels --out DIR" >&2
    else
        echo "RepoSearcher tools: no Python >= 3.11 that can import reposearcher_plugin," \
            "and no usable wheels." >&2
        echo "  Set REPOSEARCHER_PYTHON, install reposearcher-plugin into a Python >= 3.11 in the image," >&2
        echo "  or rebuild the bundle with: reposearcher swe-agent bundle --wheels --out DIR" >&2
    fi
    unset -f _rs_find _rs_venv
    unset _rs_bundle _rs_check _rs_c _rs_out _rs_py _rs_msg _rs_seen _rs_broken _rs_status
    false
fi

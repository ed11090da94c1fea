#!/usr/bin/env bash
# Executes the notebooks in their full mode with the evcxr kernel and writes each executed notebook — code, printed
# output and inline PNG figures — back to notebooks/, so that a reader sees the figures before running anything (on
# GitHub, in JupyterLab). The full runs take hours on a CPU (notebook 04 evaluates 1000 test clusters; a GPU build
# helps), so this is run by hand before a release, not by CI; CI executes quick-mode copies into target/ (.ci/run).
#
#   scripts/run-notebooks.sh [--out DIR] [--timeout SECONDS] [NOTEBOOK...]
#
#   NOTEBOOK...        notebooks to run (default: every notebooks/*.ipynb, in order)
#   --out DIR          where the executed notebooks go (default: notebooks/, replacing the inputs)
#   --timeout SECONDS  per-cell limit (default: none)
#
# Each notebook is executed into a temporary directory first and moved to DIR only if every cell succeeded and the
# file is under 4 MB (a larger one fails the run: shrink its figures or their number), so a failed or oversized run
# never replaces a committed notebook. The mode comes from the environment as in the notebooks themselves: with
# CLUSTERMAPS_QUICK=1 set, the quick mode runs instead (for checking this script; never commit those outputs).
# The kernel and nbconvert are installed when missing by .ci/notebook-env.sh, as for CI.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=notebooks
timeout=-1
notebooks=()
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --timeout) timeout="$2"; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
        *) notebooks+=("$1"); shift ;;
    esac
done
if [ "${#notebooks[@]}" -eq 0 ]; then
    shopt -s nullglob
    notebooks=(notebooks/*.ipynb)
fi
if [ "${#notebooks[@]}" -eq 0 ]; then
    echo "no notebooks found under notebooks/" >&2
    exit 1
fi

max_bytes=$((4 * 1024 * 1024))
if [ -n "${CLUSTERMAPS_QUICK:-}" ] && [ "${CLUSTERMAPS_QUICK}" != 0 ]; then
    echo "CLUSTERMAPS_QUICK is set: quick mode, outputs not meant to be committed" >&2
fi

source .ci/notebook-env.sh

mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=0
for nb in "${notebooks[@]}"; do
    name="$(basename "$nb")"
    echo "== $nb"
    start=$SECONDS
    if ! "$NB_JUPYTER" nbconvert --to notebook --execute \
        --ExecutePreprocessor.timeout="$timeout" --output-dir "$work" "$nb" </dev/null; then
        echo "notebook $nb: FAILED ($((SECONDS - start)) s); $out/$name left as it was"
        failed=1
        continue
    fi
    bytes="$(stat -c %s "$work/$name")"
    if [ "$bytes" -ge "$max_bytes" ]; then
        echo "notebook $nb: $bytes bytes, over the 4 MB limit; $out/$name left as it was"
        failed=1
        continue
    fi
    mv "$work/$name" "$out/$name"
    echo "notebook $nb: ok ($((SECONDS - start)) s, $((bytes / 1024)) KiB) -> $out/$name"
done
exit "$failed"

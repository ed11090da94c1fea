# Sourced (not run) by .ci/run and scripts/run-notebooks.sh: everything needed to execute the notebooks headless.
# Installs only what is missing — the evcxr Jupyter kernel (evcxr_jupyter 0.22.0, about 12 minutes cold on 2 cores)
# and its kernel spec, and a Python venv with nbconvert — so a warm machine skips straight to the work. Exports
# EVCXR_CONFIG_DIR (the panic hook and the dependency cache of .ci/evcxr/) and sets NB_JUPYTER, the venv's jupyter.
# Expects `set -euo pipefail` from the caller; NB_ROOT is the repository root.

NB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"

NB_EVCXR_VERSION=0.22.0
NB_VENV="$HOME/.cache/clustermaps-venv"

# Capture first: `cargo install --list | grep -q` would SIGPIPE cargo and, under pipefail, look like "missing".
nb_installed="$(cargo install --list)"
if ! grep -q "^evcxr_jupyter v${NB_EVCXR_VERSION}:" <<<"$nb_installed"; then
    cargo install --locked "evcxr_jupyter@${NB_EVCXR_VERSION}"
fi
evcxr_jupyter --install >/dev/null

if [ ! -x "$NB_VENV/bin/jupyter-nbconvert" ]; then
    python3 -m venv "$NB_VENV"
    "$NB_VENV/bin/pip" install --quiet --disable-pip-version-check nbconvert
fi
NB_JUPYTER="$NB_VENV/bin/jupyter"

# The kernel's working directory is notebooks/, so the config dir must be absolute.
export EVCXR_CONFIG_DIR="$NB_ROOT/.ci/evcxr"

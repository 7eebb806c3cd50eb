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
  command -v curl >/dev/null 2>&1 || missing+=(curl)
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

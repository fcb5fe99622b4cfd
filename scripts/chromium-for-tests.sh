# Sourced by test.sh: finds Debian's chromium for the console's browser tests (installing it with
# apt-get when it is missing and the machine allows it) and exports CHATGATE_TEST_CHROMIUM. Without
# it those tests are skipped with a message; every other test runs as usual.
chromium_bin=""
for candidate in chromium chromium-browser; do
  if command -v "$candidate" >/dev/null 2>&1; then chromium_bin=$(command -v "$candidate"); break; fi
done
if [ -z "$chromium_bin" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test: installing chromium with apt-get (for the browser tests)" >&2
  if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >&2; then
    chromium_bin=$(command -v chromium || true)
  fi
fi
if [ -n "$chromium_bin" ]; then
  export CHATGATE_TEST_CHROMIUM="$chromium_bin"
  echo "test: browser tests use $chromium_bin"
else
  echo "test: chromium is missing (Debian/Ubuntu: apt-get install chromium); the browser tests will be skipped" >&2
fi

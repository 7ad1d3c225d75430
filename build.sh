#!/bin/sh
# earshot build script for POSIX machines (Debian 12 and friends).
# The same jobs as build.ps1, for machines without PowerShell.
#
#   ./build.sh run     install packages, build, start earshot on the stock config
#   ./build.sh test    install packages, build with -Werror and run every test; then
#                      build with ASan+UBSan (clang) and run every test again,
#                      libFuzzer harnesses included
#   ./build.sh build   build only (no package installation)
#   ./build.sh deps    install the Debian packages only
#   ./build.sh deb     build the Debian package earshot_<version>_<arch>.deb
#                      (Release, Debian's layout) into build-deb/
#
# Environment: BUILD_DIR (default: build), BUILD_TYPE (default: RelWithDebInfo),
# EARSHOT_FUZZ_SECONDS (default: 60 per fuzzer), EARSHOT_SKIP_DEPS=1 to never
# call apt-get.
set -eu

cd "$(dirname "$0")"
BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}

# What building and running needs, and what the tests add.
DEB_PACKAGES="dpkg-dev file"
BUILD_PACKAGES="build-essential cmake pkg-config libwebsockets-dev libjansson-dev libconfig-dev liblua5.4-dev libssl-dev uthash-dev libhiredis-dev libev-dev"
TEST_PACKAGES="libcmocka-dev python3 curl openssl clang libclang-rt-14-dev chromium fonts-liberation coturn redis-server haproxy"

deps() {
    [ "${EARSHOT_SKIP_DEPS:-0}" = 1 ] && return 0
    missing=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "build.sh: installing$missing"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
}

build() {
    cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" "$@"
    cmake --build "$BUILD_DIR" -j "$(nproc 2>/dev/null || echo 2)"
}

case "${1:-}" in
run)
    deps $BUILD_PACKAGES
    build -DEARSHOT_BUILD_TESTS=OFF
    shift
    exec "$BUILD_DIR/earshot" "$@"
    ;;
test)
    # shellcheck disable=SC2086
    deps $BUILD_PACKAGES $TEST_PACKAGES
    jobs=$(nproc 2>/dev/null || echo 2)
    # The browser tests' one dependency, playwright-core (it downloads no browser:
    # the tests drive Debian's chromium).
    command -v npm >/dev/null || { echo "build.sh: the browser tests need Node.js 20+ and npm" >&2; exit 1; }
    (cd web && npm ci --no-audit --no-fund)
    build -DEARSHOT_BUILD_TESTS=ON -DEARSHOT_WERROR=ON
    (cd "$BUILD_DIR" && ctest --output-on-failure -j "$jobs")
    echo "build.sh: again under AddressSanitizer and UndefinedBehaviorSanitizer, with the fuzzers"
    (
        BUILD_DIR="$BUILD_DIR-sanitize"
        CC=clang
        export CC
        build -DEARSHOT_BUILD_TESTS=ON -DEARSHOT_WERROR=ON \
            -DEARSHOT_FUZZ=ON -DEARSHOT_FUZZ_SECONDS="${EARSHOT_FUZZ_SECONDS:-60}"
        cd "$BUILD_DIR" && ctest --output-on-failure -j "$jobs"
    )
    ;;
build)
    build
    ;;
deb)
    # shellcheck disable=SC2086
    deps $BUILD_PACKAGES $DEB_PACKAGES
    BUILD_DIR=build-deb
    BUILD_TYPE=Release
    rm -f "$BUILD_DIR"/earshot_*.deb
    build -DEARSHOT_BUILD_TESTS=OFF -DEARSHOT_BUILD_BENCH=OFF -DCMAKE_INSTALL_PREFIX=/usr \
        -DCMAKE_INSTALL_SYSCONFDIR=/etc -DCMAKE_INSTALL_LIBDIR=lib \
        -DEARSHOT_SYSTEMD_UNIT_DIR=/lib/systemd/system
    (cd "$BUILD_DIR" && cpack -G DEB)
    ls "$BUILD_DIR"/earshot_*.deb
    ;;
deps)
    deps $BUILD_PACKAGES $TEST_PACKAGES $DEB_PACKAGES
    ;;
*)
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac

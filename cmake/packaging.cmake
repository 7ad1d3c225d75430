# The Debian package, through CPack's DEB generator. Configure with the
# Debian layout, then run cpack (./build.sh deb does both):
#   cmake -S . -B build-deb -DCMAKE_BUILD_TYPE=Release -DEARSHOT_BUILD_TESTS=OFF \
#     -DEARSHOT_BUILD_BENCH=OFF -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_INSTALL_SYSCONFDIR=/etc \
#     -DCMAKE_INSTALL_LIBDIR=lib -DEARSHOT_SYSTEMD_UNIT_DIR=/lib/systemd/system
#   (cd build-deb && cpack -G DEB)         ->  earshot_<version>_<arch>.deb
# It holds the binary, the plugins, the stock scripts, the web client, the
# stock config (a conffile), <earshot/plugin.h>, earshot.pc and the systemd
# unit; its maintainer scripts (config/debian/) create the earshot user.
set(CPACK_PACKAGE_NAME earshot)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "earshot")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "proximity voice chat signaling server for games")
set(CPACK_PACKAGE_DESCRIPTION
  "earshot tells each game client which other players are within earshot and relays the
WebRTC offer, answer and ICE candidates between them, so that nearby players form a
direct peer-to-peer voice mesh. Policy runs through hook chains of C plugins and Lua
scripts. This package holds the server, its plugins and stock scripts, the browser
client, the stock config, a systemd unit, and the plugin ABI (<earshot/plugin.h>,
earshot.pc) for building plugins of your own.")
set(CPACK_GENERATOR DEB)
# Absolute install destinations (/etc, /lib/systemd/system) land in the
# package, not on the build machine.
set(CPACK_SET_DESTDIR ON)
set(CPACK_PACKAGING_INSTALL_PREFIX "${CMAKE_INSTALL_PREFIX}")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "earshot developers <earshot@localhost>")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Library dependencies come from dpkg-shlibdeps (needs dpkg-dev and file).
# libwebsockets loads its libev event library with dlopen(), which no
# linker records, and the maintainer scripts use useradd (passwd).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libwebsockets-evlib-ev, passwd")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
file(WRITE ${CMAKE_BINARY_DIR}/debian/conffiles "${CMAKE_INSTALL_FULL_SYSCONFDIR}/earshot/earshot.cfg\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_BINARY_DIR}/debian/conffiles
  ${PROJECT_SOURCE_DIR}/config/debian/postinst
  ${PROJECT_SOURCE_DIR}/config/debian/prerm
  ${PROJECT_SOURCE_DIR}/config/debian/postrm)
include(CPack)

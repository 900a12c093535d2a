# The Debian package (`make deb`, CPack's DEB generator): /usr/bin/agentwire, the systemd units,
# /etc/agentwire/agentwire.toml (a conffile: an edited one is kept on upgrade), a man page made
# from --help by help2man, and the maintainer scripts in deploy/debian/. Dependencies come from
# the shared libraries the binary links (dpkg-shlibdeps). Tested by tests/test_package.py.
set(AGENTWIRE_PKG_DIR ${CMAKE_BINARY_DIR}/package-files)
file(MAKE_DIRECTORY ${AGENTWIRE_PKG_DIR})

# One source for each file: the units of deploy/systemd with the packaged binary's path, the example
# configuration with the store in the package's state directory.
foreach(unit agentwire.service agentwire@.service)
  file(READ ${CMAKE_SOURCE_DIR}/deploy/systemd/${unit} content)
  string(REPLACE "/usr/local/bin/agentwire" "/usr/bin/agentwire" content "${content}")
  file(CONFIGURE OUTPUT ${AGENTWIRE_PKG_DIR}/${unit} CONTENT "${content}" @ONLY)
endforeach()
file(READ ${CMAKE_SOURCE_DIR}/config/agentwire.example.toml content)
string(REPLACE "path = \"var/agentwire.db\"" "path = \"/var/lib/agentwire/agentwire.db\"" content "${content}")
string(PREPEND content
  "# /etc/agentwire/agentwire.toml, installed by the agentwire package (kept on upgrade once edited).\n"
  "# Set auth.secret and server.host before `systemctl enable --now agentwire`.\n")
file(CONFIGURE OUTPUT ${AGENTWIRE_PKG_DIR}/agentwire.toml CONTENT "${content}" @ONLY)
configure_file(${CMAKE_SOURCE_DIR}/deploy/debian/copyright ${AGENTWIRE_PKG_DIR}/copyright COPYONLY)

string(TIMESTAMP AGENTWIRE_PKG_DATE "%a, %d %b %Y 00:00:00 +0000" UTC)  # a day: configure does not rewrite it every time
set(AGENTWIRE_PKG_MAINTAINER "agentwire maintainers <agentwire@lists.agentwire.dev>")
string(CONCAT changelog
  "agentwire (${PROJECT_VERSION}) unstable; urgency=medium\n\n"
  "  * Release ${PROJECT_VERSION}: see docs/ in the source for what it does.\n\n"
  " -- ${AGENTWIRE_PKG_MAINTAINER}  ${AGENTWIRE_PKG_DATE}\n")
file(CONFIGURE OUTPUT ${AGENTWIRE_PKG_DIR}/changelog CONTENT "${changelog}" @ONLY)

find_program(GZIP gzip REQUIRED)
add_custom_command(OUTPUT ${AGENTWIRE_PKG_DIR}/changelog.gz
  COMMAND ${GZIP} -9n -c ${AGENTWIRE_PKG_DIR}/changelog > ${AGENTWIRE_PKG_DIR}/changelog.gz
  DEPENDS ${AGENTWIRE_PKG_DIR}/changelog)
set(AGENTWIRE_PKG_GENERATED ${AGENTWIRE_PKG_DIR}/changelog.gz)

# The man page, when help2man is there (scripts/install-deps deb|test installs it).
find_program(HELP2MAN help2man)
if(HELP2MAN)
  add_custom_command(OUTPUT ${AGENTWIRE_PKG_DIR}/agentwire.1.gz
    COMMAND ${BUILD_PYTHON3} ${CMAKE_SOURCE_DIR}/cmake/man_include.py $<TARGET_FILE:agentwire> ${AGENTWIRE_PKG_DIR}/man.include
    COMMAND ${HELP2MAN} --no-info --section 1 --include ${AGENTWIRE_PKG_DIR}/man.include
      --name "real-time gateway between AI agents and the people who chat with them"
      --output ${AGENTWIRE_PKG_DIR}/agentwire.1 $<TARGET_FILE:agentwire>
    COMMAND ${GZIP} -9nf ${AGENTWIRE_PKG_DIR}/agentwire.1
    DEPENDS agentwire ${CMAKE_SOURCE_DIR}/cmake/man_include.py
    COMMENT "agentwire.1 from --help (help2man)")
  list(APPEND AGENTWIRE_PKG_GENERATED ${AGENTWIRE_PKG_DIR}/agentwire.1.gz)
  install(FILES ${AGENTWIRE_PKG_DIR}/agentwire.1.gz DESTINATION share/man/man1)
endif()
add_custom_target(package_files ALL DEPENDS ${AGENTWIRE_PKG_GENERATED})

install(TARGETS agentwire RUNTIME DESTINATION bin)
install(FILES ${AGENTWIRE_PKG_DIR}/agentwire.service ${AGENTWIRE_PKG_DIR}/agentwire@.service
  DESTINATION /lib/systemd/system)
install(FILES ${AGENTWIRE_PKG_DIR}/agentwire.toml DESTINATION /etc/agentwire)
install(FILES ${AGENTWIRE_PKG_DIR}/copyright ${AGENTWIRE_PKG_DIR}/changelog.gz DESTINATION share/doc/agentwire)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME agentwire)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_CONTACT "${AGENTWIRE_PKG_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "real-time gateway between AI agents and the people who chat with them")
set(CPACK_PACKAGE_DESCRIPTION "agentwire carries the events of AI agents' runs to the people who chat\n\
with them, over WebSocket, with a durable stream per user (a client resumes\n\
from the last sequence it saw), ordered startup, health probes, Prometheus\n\
metrics and ClickHouse analytics. It runs on SQLite alone, or as several\n\
nodes on PostgreSQL and Redis.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://agentwire.dev")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
# Opened on first use, not linked (src/core/shared_library.hpp), so dpkg-shlibdeps cannot see them:
# libcurl for ClickHouse analytics, LLM agents and MCP over HTTP; libpq for the PostgreSQL store.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libcurl4, libpq5")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_SOURCE_DIR}/deploy/debian/postinst ${CMAKE_SOURCE_DIR}/deploy/debian/prerm
  ${CMAKE_SOURCE_DIR}/deploy/debian/postrm ${CMAKE_SOURCE_DIR}/deploy/debian/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
include(CPack)

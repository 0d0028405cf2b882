# Read by cpack once per generator (CPACK_PROJECT_CONFIG_FILE). The .deb installs under /usr
# (and so bundles no libraries: see the install(CODE) in CMakeLists.txt); the tarball is
# relocatable, in one top-level folder.
if(CPACK_GENERATOR STREQUAL "DEB")
  set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
else()
  set(CPACK_PACKAGING_INSTALL_PREFIX "/")
  set(CPACK_INCLUDE_TOPLEVEL_DIRECTORY ON)
endif()

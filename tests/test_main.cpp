// The test runner's entry point (Catch2 v2 from Debian).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

// placeholder so the test binary has a case until suites land
#include <catch2/catch.hpp>
#include "core/util/status.h"
TEST_CASE("Status carries code and message", "[util]") {
  lms::Status s = lms::Status::InvalidArgument("bad magic");
  REQUIRE_FALSE(s.ok());
  REQUIRE(s.ToString() == "invalid argument: bad magic");
  REQUIRE(s.WithContext("x.gguf").message() == "x.gguf: bad magic");
  lms::Result<int> r(5);
  REQUIRE(r.ok());
  REQUIRE(*r == 5);
}

// A tiny model (tiny_model.h) written to a file in the test directory and loaded on a CPU
// backend, as `run` and the serving engine load theirs: for tests of sessions, generation and
// serving. Catch tests only (it REQUIREs the load).
#pragma once

#include <catch2/catch.hpp>

#include <fstream>
#include <memory>
#include <string>

#include "core/backend/backend.h"
#include "core/model/model.h"
#include "tests/core/model/tiny_model.h"
#include "tests/test_support.h"

namespace lms::test {

struct TinyLoaded {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;
};

// `name`: the file's name in TempDir(), distinct per spec.
inline TinyLoaded LoadTinyOnCpu(const TinySpec& spec, const std::string& name) {
  const auto bytes = MakeTinyModel(spec);
  const std::string path = TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  TinyLoaded t;
  t.backend = MakeCpuBackend({2});
  auto m = Model::Load(path, *t.backend);
  REQUIRE(m.ok());
  t.model = std::move(m).value();
  return t;
}

}  // namespace lms::test

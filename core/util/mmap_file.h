// A read-only memory mapping of a whole file (MAP_PRIVATE, PROT_READ), unmapped on destruction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/util/status.h"

namespace lms {

class MappedFile {
 public:
  // Maps `path` read-only. An empty file is mapped as data() == nullptr, size() == 0.
  // Errors (missing file, a directory, mmap failure) name the path and the errno text.
  static Result<std::unique_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return static_cast<const uint8_t*>(addr_); }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  void* addr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace lms

// Handing one small blob (e.g. NCCL's 128-byte unique id) from a root process to its peers over
// TCP, so processes on several machines can join one communicator without a launcher: the root
// serves the blob to a fixed number of peers, each peer connects (retrying until the root is up)
// and reads it. A message is "LMSBLOB1", a 4-byte little-endian length and the bytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/util/status.h"

namespace lms::net {

class BlobServer {
 public:
  // Listens on host:port (port 0: any free port; see port()).
  static Result<BlobServer> Listen(const std::string& host, int port);
  BlobServer(BlobServer&& o) noexcept;
  BlobServer& operator=(BlobServer&& o) noexcept;
  ~BlobServer();

  int port() const { return port_; }
  // Accepts `peers` connections and sends each the blob; an I/O error if they have not all
  // come within timeout_s.
  Status Serve(const std::vector<uint8_t>& blob, int peers, double timeout_s);

 private:
  BlobServer() = default;
  int fd_ = -1;
  int port_ = 0;
};

// Connects to host:port, retrying until timeout_s, and reads the blob.
Result<std::vector<uint8_t>> FetchBlob(const std::string& host, int port, double timeout_s);

}  // namespace lms::net

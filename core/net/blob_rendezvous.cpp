#include "core/net/blob_rendezvous.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

#include "core/net/socket_io.h"

namespace lms::net {
namespace {

constexpr char kMagic[8] = {'L', 'M', 'S', 'B', 'L', 'O', 'B', '1'};
constexpr uint32_t kMaxBlob = 1 << 20;

}  // namespace

Result<BlobServer> BlobServer::Listen(const std::string& host, int port) {
  BlobServer s;
  LMS_ASSIGN_OR_RETURN(s.fd_, ListenOn(host, port, &s.port_));
  return s;
}

BlobServer::BlobServer(BlobServer&& o) noexcept : fd_(o.fd_), port_(o.port_) { o.fd_ = -1; }

BlobServer& BlobServer::operator=(BlobServer&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    fd_ = o.fd_;
    port_ = o.port_;
    o.fd_ = -1;
  }
  return *this;
}

BlobServer::~BlobServer() {
  if (fd_ >= 0) close(fd_);
}

Status BlobServer::Serve(const std::vector<uint8_t>& blob, int peers, double timeout_s) {
  if (fd_ < 0) return Status::Internal("the blob server is not listening");
  if (blob.size() > kMaxBlob) return Status::InvalidArgument("blob too large");
  std::vector<uint8_t> msg(kMagic, kMagic + sizeof kMagic);
  const uint32_t n = static_cast<uint32_t>(blob.size());
  for (int i = 0; i < 4; ++i) msg.push_back(static_cast<uint8_t>(n >> (8 * i)));
  msg.insert(msg.end(), blob.begin(), blob.end());
  const auto deadline = DeadlineIn(timeout_s);
  for (int served = 0; served < peers; ++served) {
    if (!WaitFor(fd_, POLLIN, deadline)) {
      return Status::IoError(fmt::format("{} of {} peers fetched the blob within {} s", served, peers, timeout_s));
    }
    const int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) {
        --served;
        continue;
      }
      return Status::IoError(fmt::format("accepting a peer: {}", std::strerror(errno)));
    }
    const Status st = WriteAll(c, msg.data(), msg.size(), deadline, "the blob");
    close(c);
    LMS_RETURN_IF_ERROR(st);
  }
  return Status::Ok();
}

Result<std::vector<uint8_t>> FetchBlob(const std::string& host, int port, double timeout_s) {
  const auto deadline = DeadlineIn(timeout_s);
  auto fd = ConnectRetrying(host, port, deadline);
  if (!fd.ok()) {
    return Status::IoError(fmt::format("no blob server at {}:{} within {} s: {}", host, port, timeout_s,
                                       fd.status().message()));
  }
  uint8_t head[12];
  Status st = ReadAll(*fd, head, sizeof head, deadline, "the blob");
  std::vector<uint8_t> blob;
  if (st.ok() && std::memcmp(head, kMagic, sizeof kMagic) != 0) {
    st = Status::InvalidArgument(fmt::format("{}:{} did not send a blob (wrong greeting)", host, port));
  }
  if (st.ok()) {
    const uint32_t n = head[8] | (head[9] << 8) | (head[10] << 16) | (static_cast<uint32_t>(head[11]) << 24);
    if (n > kMaxBlob) {
      st = Status::InvalidArgument(fmt::format("{}:{} announced a blob of {} bytes", host, port, n));
    } else {
      blob.resize(n);
      st = ReadAll(*fd, blob.data(), n, deadline, "the blob");
    }
  }
  close(*fd);
  if (!st.ok()) return st;
  return blob;
}

}  // namespace lms::net

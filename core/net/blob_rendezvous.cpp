#include "core/net/blob_rendezvous.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace lms::net {
namespace {

constexpr char kMagic[8] = {'L', 'M', 'S', 'B', 'L', 'O', 'B', '1'};
constexpr uint32_t kMaxBlob = 1 << 20;

using Clock = std::chrono::steady_clock;

int MillisLeft(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Waits until fd is readable (or writable); false on timeout.
bool WaitFor(int fd, short events, Clock::time_point deadline) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int r = poll(&p, 1, MillisLeft(deadline));
    if (r > 0) return true;
    if (r == 0 || errno != EINTR) return false;
  }
}

Status WriteAll(int fd, const uint8_t* data, size_t n, Clock::time_point deadline) {
  while (n > 0) {
    if (!WaitFor(fd, POLLOUT, deadline)) return Status::IoError("timed out sending the blob");
    const ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (w <= 0) return Status::IoError(fmt::format("sending the blob: {}", std::strerror(errno)));
    data += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

Status ReadAll(int fd, uint8_t* data, size_t n, Clock::time_point deadline) {
  while (n > 0) {
    if (!WaitFor(fd, POLLIN, deadline)) return Status::IoError("timed out reading the blob");
    const ssize_t r = recv(fd, data, n, 0);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r == 0) return Status::IoError("the peer closed the connection before the whole blob came");
    if (r < 0) return Status::IoError(fmt::format("reading the blob: {}", std::strerror(errno)));
    data += r;
    n -= static_cast<size_t>(r);
  }
  return Status::Ok();
}

Result<addrinfo*> Resolve(const std::string& host, int port, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (passive) hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  const int e = getaddrinfo(host.empty() ? nullptr : host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (e != 0) return Status::InvalidArgument(fmt::format("cannot resolve '{}': {}", host, gai_strerror(e)));
  return res;
}

}  // namespace

Result<BlobServer> BlobServer::Listen(const std::string& host, int port) {
  if (port < 0 || port > 65535) return Status::InvalidArgument(fmt::format("port {} out of range", port));
  LMS_ASSIGN_OR_RETURN(addrinfo * res, Resolve(host, port, true));
  BlobServer s;
  Status last = Status::IoError("no address to listen on");
  for (addrinfo* a = res; a; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 64) == 0) {
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
      s.port_ = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                               : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
      s.fd_ = fd;
      break;
    }
    last = Status::IoError(fmt::format("cannot listen on {}:{}: {}", host, port, std::strerror(errno)));
    close(fd);
  }
  freeaddrinfo(res);
  if (s.fd_ < 0) return last;
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
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
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
    const Status st = WriteAll(c, msg.data(), msg.size(), deadline);
    close(c);
    LMS_RETURN_IF_ERROR(st);
  }
  return Status::Ok();
}

Result<std::vector<uint8_t>> FetchBlob(const std::string& host, int port, double timeout_s) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  LMS_ASSIGN_OR_RETURN(addrinfo * res, Resolve(host, port, false));
  std::string last = "no address";
  for (;;) {
    for (addrinfo* a = res; a; a = a->ai_next) {
      const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
        last = std::strerror(errno);
        close(fd);
        continue;
      }
      uint8_t head[12];
      Status st = ReadAll(fd, head, sizeof head, deadline);
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
          st = ReadAll(fd, blob.data(), n, deadline);
        }
      }
      close(fd);
      freeaddrinfo(res);
      if (!st.ok()) return st;
      return blob;
    }
    if (MillisLeft(deadline) == 0) {
      freeaddrinfo(res);
      return Status::IoError(fmt::format("no blob server at {}:{} within {} s ({})", host, port, timeout_s, last));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(100, MillisLeft(deadline))));
  }
}

}  // namespace lms::net

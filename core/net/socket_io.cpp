#include "core/net/socket_io.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <thread>

namespace lms::net {

Clock::time_point DeadlineIn(double seconds) {
  if (seconds <= 0) return Clock::time_point::max();
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

int MillisLeft(Clock::time_point deadline) {
  if (deadline == Clock::time_point::max()) return -1;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(std::min<int64_t>(left, 1 << 30)) : 0;
}

bool WaitFor(int fd, short events, Clock::time_point deadline) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int r = poll(&p, 1, MillisLeft(deadline));
    if (r > 0) return true;
    if (r == 0 || errno != EINTR) return false;
  }
}

Status WriteAll(int fd, const void* data, size_t n, Clock::time_point deadline, const char* what) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    if (!WaitFor(fd, POLLOUT, deadline)) return Status::IoError(fmt::format("timed out sending {}", what));
    const ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (w <= 0) return Status::IoError(fmt::format("sending {}: {}", what, std::strerror(errno)));
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

Status ReadAll(int fd, void* data, size_t n, Clock::time_point deadline, const char* what) {
  auto* p = static_cast<uint8_t*>(data);
  while (n > 0) {
    if (!WaitFor(fd, POLLIN, deadline)) return Status::IoError(fmt::format("timed out reading {}", what));
    const ssize_t r = recv(fd, p, n, 0);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r == 0) return Status::IoError(fmt::format("the peer closed the connection before the whole of {} came", what));
    if (r < 0) return Status::IoError(fmt::format("reading {}: {}", what, std::strerror(errno)));
    p += r;
    n -= static_cast<size_t>(r);
  }
  return Status::Ok();
}

Result<addrinfo*> Resolve(const std::string& host, int port, bool passive) {
  if (port < 0 || port > 65535) return Status::InvalidArgument(fmt::format("port {} out of range", port));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (passive) hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  const int e = getaddrinfo(host.empty() ? nullptr : host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (e != 0) return Status::InvalidArgument(fmt::format("cannot resolve '{}': {}", host, gai_strerror(e)));
  return res;
}

Result<int> ListenOn(const std::string& host, int port, int* bound_port) {
  LMS_ASSIGN_OR_RETURN(addrinfo * res, Resolve(host, port, true));
  Status last = Status::IoError("no address to listen on");
  int out = -1;
  for (addrinfo* a = res; a && out < 0; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 64) == 0) {
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
      if (bound_port) {
        *bound_port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                                     : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
      }
      out = fd;
      break;
    }
    last = Status::IoError(fmt::format("cannot listen on {}:{}: {}", host, port, std::strerror(errno)));
    close(fd);
  }
  freeaddrinfo(res);
  if (out < 0) return last;
  return out;
}

Result<int> ConnectRetrying(const std::string& host, int port, Clock::time_point deadline) {
  LMS_ASSIGN_OR_RETURN(addrinfo * res, Resolve(host, port, false));
  std::string last = "no address";
  for (;;) {
    for (addrinfo* a = res; a; a = a->ai_next) {
      const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
        const int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        freeaddrinfo(res);
        return fd;
      }
      last = std::strerror(errno);
      close(fd);
    }
    const int left = MillisLeft(deadline);
    if (left == 0) {
      freeaddrinfo(res);
      return Status::IoError(fmt::format("nothing listening at {}:{} in time ({})", host, port, last));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(left < 0 ? 100 : std::min(100, left)));
  }
}

}  // namespace lms::net

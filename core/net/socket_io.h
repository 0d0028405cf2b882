// Blocking TCP helpers shared by the rendezvous and the rank group: whole reads and writes with a
// deadline, listening and connecting by host name.
#pragma once

#include <netdb.h>

#include <chrono>
#include <cstddef>
#include <string>

#include "core/util/status.h"

namespace lms::net {

using Clock = std::chrono::steady_clock;

// A deadline `seconds` from now; Clock::time_point::max() (no deadline) when seconds <= 0.
Clock::time_point DeadlineIn(double seconds);
// Milliseconds to the deadline (0 when past; -1, "forever" to poll, when there is none).
int MillisLeft(Clock::time_point deadline);
// Waits until fd is ready for `events` (POLLIN, POLLOUT); false on timeout.
bool WaitFor(int fd, short events, Clock::time_point deadline);

// Writes or reads exactly n bytes; IoError naming `what` on timeout, error or end of stream.
Status WriteAll(int fd, const void* data, size_t n, Clock::time_point deadline, const char* what);
Status ReadAll(int fd, void* data, size_t n, Clock::time_point deadline, const char* what);

// getaddrinfo for TCP; the caller frees the list with freeaddrinfo.
Result<addrinfo*> Resolve(const std::string& host, int port, bool passive);
// A listening socket on host:port (port 0: any free one); *bound_port gets the port.
Result<int> ListenOn(const std::string& host, int port, int* bound_port);
// Connects to host:port, retrying every 100 ms until the deadline (the listener may not be up yet).
Result<int> ConnectRetrying(const std::string& host, int port, Clock::time_point deadline);

}  // namespace lms::net

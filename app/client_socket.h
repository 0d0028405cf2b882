// Noticing that an HTTP client went away while its request is still being answered.
//
// The cpp-httplib version Debian 12 ships (0.11) gives a handler no access to its connection,
// so the connection's socket is found among the process's open descriptors by its address
// pair (the one connected TCP socket with these two ends), then watched for the peer's close.
#pragma once

#include <string>

namespace lms::app {

// The descriptor of the connected socket whose ends are (local_ip:local_port,
// peer_ip:peer_port), or -1 when there is none. Addresses are numeric strings as
// getnameinfo(NI_NUMERICHOST) writes them (what httplib puts in Request::remote_addr).
int FindConnectedSocket(const std::string& local_ip, int local_port, const std::string& peer_ip, int peer_port);

// True when the peer closed or reset the connection (an orderly close with no unread data
// left, or a socket error). Does not block and consumes nothing. A client that half-closes
// its sending side while still waiting for the answer looks the same as one that left.
bool PeerClosed(int fd);

}  // namespace lms::app

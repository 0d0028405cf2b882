// The rendezvous that hands NCCL's unique id from the root to the other processes: several
// peers fetch the same bytes, a peer started before the root waits for it, and timeouts, a
// server that speaks something else and bad ports give errors, not hangs.
#include <catch2/catch.hpp>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>
#include <vector>

#include "core/net/blob_rendezvous.h"

using namespace lms;

TEST_CASE("blob rendezvous: every peer gets the root's bytes", "[net]") {
  auto server = net::BlobServer::Listen("127.0.0.1", 0);
  REQUIRE(server.ok());
  const int port = server->port();
  REQUIRE(port > 0);
  std::vector<uint8_t> blob(128);
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<uint8_t>(i * 37 + 11);
  Status served;
  std::thread root([&] { served = server->Serve(blob, 3, 10.0); });
  std::vector<Result<std::vector<uint8_t>>> got(3, Status::Internal("not run"));
  std::vector<std::thread> peers;
  for (int i = 0; i < 3; ++i) peers.emplace_back([&, i] { got[i] = net::FetchBlob("127.0.0.1", port, 10.0); });
  for (auto& t : peers) t.join();
  root.join();
  CHECK(served.ok());
  for (const auto& g : got) {
    REQUIRE(g.ok());
    CHECK(*g == blob);
  }
}

TEST_CASE("blob rendezvous: a peer started first waits for the root", "[net]") {
  // Find a free port, release it, then start the peer before anything listens there.
  int port = 0;
  {
    auto probe = net::BlobServer::Listen("127.0.0.1", 0);
    REQUIRE(probe.ok());
    port = probe->port();
  }
  Result<std::vector<uint8_t>> got = Status::Internal("not run");
  std::thread peer([&] { got = net::FetchBlob("127.0.0.1", port, 10.0); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto server = net::BlobServer::Listen("127.0.0.1", port);
  REQUIRE(server.ok());
  CHECK(server->Serve({1, 2, 3}, 1, 10.0).ok());
  peer.join();
  REQUIRE(got.ok());
  CHECK(*got == std::vector<uint8_t>{1, 2, 3});
}

TEST_CASE("blob rendezvous: timeouts and strangers are errors", "[net]") {
  auto server = net::BlobServer::Listen("127.0.0.1", 0);
  REQUIRE(server.ok());
  // Nobody comes.
  Status st = server->Serve({9}, 1, 0.2);
  CHECK(!st.ok());
  CHECK(st.message().find("0 of 1 peers") != std::string::npos);
  // Nobody serves.
  auto none = net::FetchBlob("127.0.0.1", server->port(), 0.3);
  CHECK(!none.ok());  // the listener accepts but never writes: a timeout, not a hang
  // A server speaking something else.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(listen(fd, 4) == 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  std::thread stranger([fd] {
    const int c = accept(fd, nullptr, nullptr);
    const char hello[] = "HTTP/1.1 200 OK\r\n\r\n";
    (void)!write(c, hello, sizeof hello - 1);
    close(c);
  });
  auto odd = net::FetchBlob("127.0.0.1", ntohs(a.sin_port), 5.0);
  stranger.join();
  close(fd);
  REQUIRE(!odd.ok());
  CHECK(odd.status().message().find("did not send a blob") != std::string::npos);
  CHECK(!net::BlobServer::Listen("127.0.0.1", 70000).ok());
}

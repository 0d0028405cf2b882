#include "core/net/rank_group.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/net/socket_io.h"

namespace lms::net {
namespace {

constexpr char kHelloMagic[8] = {'L', 'M', 'S', 'R', 'A', 'N', 'K', '1'};
constexpr uint32_t kFrameMagic = 0x4d534d4c;  // "LMSM"
constexpr uint64_t kCollective = uint64_t{1} << 63;
constexpr size_t kHostBytes = 64;
constexpr uint64_t kMaxMessage = uint64_t{1} << 36;  // 64 GiB: anything larger is a corrupt frame

struct Hello {
  char magic[8];
  uint32_t world, rank, port;
};

struct Frame {
  uint32_t magic, reserved;
  uint64_t tag, bytes;
};

struct Peer {  // an entry of rank 0's address table
  char host[kHostBytes];
  uint32_t port;
};

Status SendHello(int fd, int world, int rank, int port, Clock::time_point deadline) {
  Hello h{};
  std::memcpy(h.magic, kHelloMagic, sizeof h.magic);
  h.world = static_cast<uint32_t>(world);
  h.rank = static_cast<uint32_t>(rank);
  h.port = static_cast<uint32_t>(port);
  return WriteAll(fd, &h, sizeof h, deadline, "the greeting");
}

Result<Hello> ReadHello(int fd, int world, Clock::time_point deadline) {
  Hello h{};
  LMS_RETURN_IF_ERROR(ReadAll(fd, &h, sizeof h, deadline, "a greeting"));
  if (std::memcmp(h.magic, kHelloMagic, sizeof h.magic) != 0) {
    return Status::InvalidArgument("a connection that is not an lmstation rank (wrong greeting)");
  }
  if (static_cast<int>(h.world) != world) {
    return Status::InvalidArgument(fmt::format("a rank of a group of {} joined a group of {}", h.world, world));
  }
  if (static_cast<int>(h.rank) >= world) return Status::InvalidArgument(fmt::format("rank {} of {} joined", h.rank, world));
  return h;
}

std::string PeerHost(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  char buf[INET6_ADDRSTRLEN] = {};
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "127.0.0.1";
  if (ss.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof buf);
  } else {
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
  }
  return buf;
}

Result<int> Accept(int listen_fd, Clock::time_point deadline, int waiting_for) {
  for (;;) {
    if (!WaitFor(listen_fd, POLLIN, deadline)) {
      return Status::IoError(fmt::format("timed out waiting for {} more rank(s) to join", waiting_for));
    }
    const int c = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c >= 0) {
      const int one = 1;
      setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return c;
    }
    if (errno != EINTR && errno != ECONNABORTED) return Status::IoError(fmt::format("accepting a rank: {}", std::strerror(errno)));
  }
}

struct FdCloser {
  std::vector<int>* fds;
  int listen = -1;
  bool armed = true;
  ~FdCloser() {
    if (listen >= 0) close(listen);
    if (!armed) return;
    for (int& fd : *fds) {
      if (fd >= 0) close(fd);
      fd = -1;
    }
  }
};

}  // namespace

LauncherInfo FromLauncherEnvironment() {
  auto get = [](const char* name, int* out) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return false;
    int x = 0;
    const auto [end, ec] = std::from_chars(v, v + std::strlen(v), x);
    if (ec != std::errc() || *end != '\0') return false;
    *out = x;
    return true;
  };
  struct Names {
    const char *world, *rank, *local, *launcher;
  };
  for (const Names& n : {Names{"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "mpirun"},
                         Names{"PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID", "pmi"},
                         Names{"SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID", "slurm"}}) {
    LauncherInfo info;
    if (get(n.world, &info.world) && get(n.rank, &info.rank)) {
      get(n.local, &info.local_rank);
      info.launcher = n.launcher;
      return info;
    }
  }
  return LauncherInfo{};
}

Result<std::pair<std::string, int>> ParseHostPort(const std::string& text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    return Status::InvalidArgument(fmt::format("'{}' is not HOST:PORT", text));
  }
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = -1;
  const auto [end, ec] = std::from_chars(text.data() + colon + 1, text.data() + text.size(), port);
  if (ec != std::errc() || end != text.data() + text.size() || port < 1 || port > 65535) {
    return Status::InvalidArgument(fmt::format("'{}': the port must be a number from 1 to 65535", text));
  }
  return std::make_pair(host, port);
}

Result<std::unique_ptr<RankGroup>> RankGroup::Join(const RankGroupOptions& o) {
  if (o.world < 1 || o.rank < 0 || o.rank >= o.world) {
    return Status::InvalidArgument(fmt::format("rank {} of a group of {}: ranks are 0..world-1", o.rank, o.world));
  }
  std::unique_ptr<RankGroup> g(new RankGroup());
  g->world_ = o.world;
  g->rank_ = o.rank;
  g->fds_.assign(static_cast<size_t>(o.world), -1);
  g->broken_.assign(static_cast<size_t>(o.world), "");
  for (int r = 0; r < o.world; ++r) g->write_mu_.push_back(std::make_unique<std::mutex>());
  if (o.world == 1) return g;
  const auto deadline = DeadlineIn(o.timeout_s);
  FdCloser closer{&g->fds_};
  if (o.rank == 0) {
    int port = 0;
    LMS_ASSIGN_OR_RETURN(closer.listen, ListenOn(o.host, o.port, &port));
    if (o.on_listen) o.on_listen(port);
    std::vector<Peer> table(static_cast<size_t>(o.world));
    for (int joined = 1; joined < o.world; ++joined) {
      LMS_ASSIGN_OR_RETURN(const int c, Accept(closer.listen, deadline, o.world - joined));
      auto h = ReadHello(c, o.world, deadline);
      if (!h.ok() || h->rank == 0 || g->fds_[h->rank] >= 0) {
        close(c);
        if (!h.ok()) return h.status();
        return Status::InvalidArgument(fmt::format("two processes joined as rank {}", h->rank));
      }
      g->fds_[h->rank] = c;
      const std::string host = PeerHost(c);
      std::snprintf(table[h->rank].host, kHostBytes, "%s", host.c_str());
      table[h->rank].port = h->port;
    }
    for (int r = 1; r < o.world; ++r) {
      LMS_RETURN_IF_ERROR(WriteAll(g->fds_[static_cast<size_t>(r)], table.data(), table.size() * sizeof(Peer), deadline,
                                   "the address table"));
    }
  } else {
    int my_port = 0;
    LMS_ASSIGN_OR_RETURN(closer.listen, ListenOn("", 0, &my_port));
    auto c0 = ConnectRetrying(o.host, o.port, deadline);
    if (!c0.ok()) return c0.status().WithContext(fmt::format("rank {} joining rank 0 at {}:{}", o.rank, o.host, o.port));
    g->fds_[0] = *c0;
    LMS_RETURN_IF_ERROR(SendHello(*c0, o.world, o.rank, my_port, deadline));
    std::vector<Peer> table(static_cast<size_t>(o.world));
    LMS_RETURN_IF_ERROR(ReadAll(*c0, table.data(), table.size() * sizeof(Peer), deadline, "the address table"));
    for (int r = 1; r < o.rank; ++r) {
      Peer& p = table[static_cast<size_t>(r)];
      p.host[kHostBytes - 1] = '\0';
      LMS_ASSIGN_OR_RETURN(g->fds_[static_cast<size_t>(r)], ConnectRetrying(p.host, static_cast<int>(p.port), deadline));
      LMS_RETURN_IF_ERROR(SendHello(g->fds_[static_cast<size_t>(r)], o.world, o.rank, my_port, deadline));
    }
    for (int joined = o.rank + 1; joined < o.world; ++joined) {
      LMS_ASSIGN_OR_RETURN(const int c, Accept(closer.listen, deadline, o.world - joined));
      auto h = ReadHello(c, o.world, deadline);
      if (!h.ok() || static_cast<int>(h->rank) <= o.rank || g->fds_[h->rank] >= 0) {
        close(c);
        if (!h.ok()) return h.status();
        return Status::InvalidArgument(fmt::format("rank {} connected to rank {} out of turn", h->rank, o.rank));
      }
      g->fds_[h->rank] = c;
    }
  }
  closer.armed = false;
  g->StartReaders();
  // Nobody sends before everyone is connected: a barrier over the new connections.
  LMS_RETURN_IF_ERROR(g->Barrier());
  return g;
}

RankGroup::~RankGroup() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    aborted_ = true;
    on_broken_ = nullptr;  // an orderly end is no failure
  }
  for (int fd : fds_) {
    if (fd >= 0) shutdown(fd, SHUT_RDWR);
  }
  for (auto& t : readers_) t.join();
  for (int fd : fds_) {
    if (fd >= 0) close(fd);
  }
}

void RankGroup::StartReaders() {
  for (int r = 0; r < world_; ++r) {
    if (fds_[static_cast<size_t>(r)] >= 0) readers_.emplace_back(&RankGroup::ReadLoop, this, r);
  }
}

void RankGroup::ReadLoop(int peer) {
  const int fd = fds_[static_cast<size_t>(peer)];
  const auto forever = Clock::time_point::max();
  for (;;) {
    Frame f{};
    Status st = ReadAll(fd, &f, sizeof f, forever, "a message header");
    if (st.ok() && (f.magic != kFrameMagic || f.bytes > kMaxMessage)) st = Status::IoError("a corrupt message");
    std::vector<uint8_t> bytes;
    if (st.ok()) {
      bytes.resize(f.bytes);
      st = ReadAll(fd, bytes.data(), bytes.size(), forever, "a message");
    }
    if (!st.ok()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        broken_[static_cast<size_t>(peer)] = fmt::format("rank {} is gone ({})", peer, st.message());
        cv_.notify_all();
      }
      Broke();
      return;
    }
    Deliver(peer, f.tag, std::move(bytes));
  }
}

void RankGroup::Deliver(int from, uint64_t tag, std::vector<uint8_t> bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  mailbox_[{from, tag}].push_back(std::move(bytes));
  cv_.notify_all();
}

Status RankGroup::Send(int to, uint64_t tag, const void* data, size_t bytes) {
  if (to < 0 || to >= world_) return Status::InvalidArgument(fmt::format("no rank {} in a group of {}", to, world_));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (aborted_) return Status::Cancelled("the rank group was aborted");
  }
  if (to == rank_) {
    const auto* p = static_cast<const uint8_t*>(data);
    Deliver(rank_, tag, std::vector<uint8_t>(p, p + bytes));
    return Status::Ok();
  }
  const Frame f{kFrameMagic, 0, tag, bytes};
  std::lock_guard<std::mutex> lock(*write_mu_[static_cast<size_t>(to)]);
  const int fd = fds_[static_cast<size_t>(to)];
  const auto forever = Clock::time_point::max();
  Status st = WriteAll(fd, &f, sizeof f, forever, "a message header");
  if (st.ok()) st = WriteAll(fd, data, bytes, forever, "a message");
  if (!st.ok()) {
    std::lock_guard<std::mutex> lock2(mu_);
    if (aborted_) return Status::Cancelled("the rank group was aborted");
    return Status::IoError(fmt::format("rank {} is gone ({})", to, st.message()));
  }
  return Status::Ok();
}

Result<std::vector<uint8_t>> RankGroup::Recv(int from, uint64_t tag) {
  if (from < 0 || from >= world_) return Status::InvalidArgument(fmt::format("no rank {} in a group of {}", from, world_));
  std::unique_lock<std::mutex> lock(mu_);
  const auto key = std::make_pair(from, tag);
  for (;;) {
    auto it = mailbox_.find(key);
    if (it != mailbox_.end() && !it->second.empty()) {
      std::vector<uint8_t> out = std::move(it->second.front());
      it->second.pop_front();
      if (it->second.empty()) mailbox_.erase(it);
      return out;
    }
    if (aborted_) return Status::Cancelled("the rank group was aborted");
    if (!broken_[static_cast<size_t>(from)].empty()) return Status::IoError(broken_[static_cast<size_t>(from)]);
    cv_.wait(lock);
  }
}

Status RankGroup::RecvFloats(int from, uint64_t tag, float* data, size_t n) {
  LMS_ASSIGN_OR_RETURN(std::vector<uint8_t> b, Recv(from, tag));
  if (b.size() != n * sizeof(float)) {
    return Status::Internal(fmt::format("rank {} sent {} bytes where {} floats were expected", from, b.size(), n));
  }
  std::memcpy(data, b.data(), b.size());
  return Status::Ok();
}

template <typename T>
Status RankGroup::AllReduce(T* v, size_t n) {
  if (world_ == 1) return Status::Ok();
  const uint64_t tag = kCollective | collective_seq_++;
  const size_t bytes = n * sizeof(T);
  if (rank_ != 0) {
    LMS_RETURN_IF_ERROR(Send(0, tag, v, bytes));
    LMS_ASSIGN_OR_RETURN(std::vector<uint8_t> sum, Recv(0, tag));
    if (sum.size() != bytes) return Status::Internal("a collective's result has the wrong size");
    std::memcpy(v, sum.data(), bytes);
    return Status::Ok();
  }
  std::vector<T> part(n);
  for (int r = 1; r < world_; ++r) {
    LMS_ASSIGN_OR_RETURN(std::vector<uint8_t> b, Recv(r, tag));
    if (b.size() != bytes) {
      return Status::Internal(fmt::format("rank {} contributed {} bytes to a sum of {} (ranks out of step)", r, b.size(), bytes));
    }
    std::memcpy(part.data(), b.data(), bytes);
    for (size_t i = 0; i < n; ++i) v[i] += part[i];
  }
  for (int r = 1; r < world_; ++r) LMS_RETURN_IF_ERROR(Send(r, tag, v, bytes));
  return Status::Ok();
}

Status RankGroup::AllReduceSum(double* v, size_t n) { return AllReduce(v, n); }
Status RankGroup::AllReduceSum(float* v, size_t n) { return AllReduce(v, n); }

Status RankGroup::Broadcast(std::vector<uint8_t>& bytes, int root) {
  if (root < 0 || root >= world_) return Status::InvalidArgument(fmt::format("no rank {} to broadcast from", root));
  if (world_ == 1) return Status::Ok();
  const uint64_t tag = kCollective | collective_seq_++;
  if (rank_ == root) {
    for (int r = 0; r < world_; ++r) {
      if (r != root) LMS_RETURN_IF_ERROR(Send(r, tag, bytes.data(), bytes.size()));
    }
    return Status::Ok();
  }
  LMS_ASSIGN_OR_RETURN(bytes, Recv(root, tag));
  return Status::Ok();
}

Status RankGroup::Barrier() {
  double one = 1.0;
  LMS_RETURN_IF_ERROR(AllReduceSum(&one, 1));
  if (one != static_cast<double>(world_)) return Status::Internal("a barrier counted the wrong number of ranks");
  return Status::Ok();
}

void RankGroup::Abort() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    aborted_ = true;
    cv_.notify_all();
  }
  for (int fd : fds_) {
    if (fd >= 0) shutdown(fd, SHUT_RDWR);
  }
  Broke();
}

void RankGroup::SetOnBroken(std::function<void()> f) {
  std::unique_lock<std::mutex> lock(mu_);
  // A hook being called may use what its owner is about to destroy: wait for it to return
  // (unless this is the hook itself replacing it).
  cv_.wait(lock, [this] { return !in_hook_ || hook_thread_ == std::this_thread::get_id(); });
  on_broken_ = std::move(f);
}

void RankGroup::Broke() {
  std::function<void()> f;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (broke_ || !on_broken_) return;
    broke_ = true;
    f = on_broken_;
    in_hook_ = true;
    hook_thread_ = std::this_thread::get_id();
  }
  f();
  std::lock_guard<std::mutex> lock(mu_);
  in_hook_ = false;
  cv_.notify_all();
}

}  // namespace lms::net

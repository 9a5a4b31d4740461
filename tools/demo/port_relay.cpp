#include "port_relay.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace flightlog::demo {

namespace {

[[noreturn]] void fail(const char* call) {
  throw std::runtime_error(std::string("port relay: ") + call + ": " + std::strerror(errno));
}

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

// Writes all of [data, data+n) to fd; false once the peer is gone.
bool send_all(int fd, const char* data, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

}  // namespace

PortRelay::PortRelay() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) fail("socket");
  sockaddr_in a = loopback(0);
  socklen_t len = sizeof a;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fail("bind");
  if (::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) fail("getsockname");
  port_ = ntohs(a.sin_port);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) fail("eventfd");
}

PortRelay::~PortRelay() {
  stop();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void PortRelay::open(std::uint16_t target_port) {
  target_port_ = target_port;
  if (::listen(listen_fd_, 64) != 0) fail("listen");
  acceptor_ = std::thread([this] { accept_loop(); });
}

void PortRelay::stop() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    const std::uint64_t one = 1;
    if (::write(wake_fd_, &one, sizeof one) < 0) {
      // An eventfd write fails only on counter overflow; the shutdowns below still
      // end every forwarder.
    }
    for (int fd : live_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  if (acceptor_.joinable()) acceptor_.join();
  {
    std::lock_guard lock(mu_);
    threads.swap(forwarders_);
  }
  for (auto& t : threads) t.join();
}

void PortRelay::track(int fd, bool add) {
  std::lock_guard lock(mu_);
  if (add) {
    live_fds_.insert(fd);
  } else {
    live_fds_.erase(fd);
  }
}

void PortRelay::accept_loop() {
  for (;;) {
    std::array<pollfd, 2> p{{{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}}};
    if (::poll(p.data(), p.size(), -1) < 0 && errno != EINTR) return;
    if (p[1].revents != 0) return;
    if ((p[0].revents & POLLIN) == 0) continue;
    const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_in target = loopback(target_port_);
    if (server < 0 ||
        ::connect(server, reinterpret_cast<const sockaddr*>(&target), sizeof target) != 0) {
      if (server >= 0) ::close(server);
      ::close(client);  // the uploader sees a reset, as from a server that went away
      continue;
    }
    std::lock_guard lock(mu_);
    if (stopped_) {
      ::close(client);
      ::close(server);
      return;
    }
    live_fds_.insert(client);
    live_fds_.insert(server);
    forwarders_.emplace_back([this, client, server] { forward(client, server); });
  }
}

// Copies both ways until both sides have finished sending (a FIN from one side is
// passed on as a FIN to the other), or either fails.
void PortRelay::forward(int client_fd, int server_fd) {
  std::array<int, 2> fds{client_fd, server_fd};
  std::array<bool, 2> open{true, true};  // still reading from fds[i]
  std::array<char, 64 * 1024> buf;
  bool broken = false;
  while ((open[0] || open[1]) && !broken) {
    std::array<pollfd, 3> p{{{open[0] ? fds[0] : -1, POLLIN, 0},
                             {open[1] ? fds[1] : -1, POLLIN, 0},
                             {wake_fd_, POLLIN, 0}}};
    if (::poll(p.data(), p.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[2].revents != 0) break;
    for (int i = 0; i < 2 && !broken; ++i) {
      if (!open[i] || p[i].revents == 0) continue;
      const ssize_t n = ::recv(fds[i], buf.data(), buf.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        broken = true;
      } else if (n == 0) {
        open[i] = false;
        ::shutdown(fds[1 - i], SHUT_WR);
      } else if (!send_all(fds[1 - i], buf.data(), static_cast<std::size_t>(n))) {
        broken = true;
      }
    }
  }
  for (int fd : fds) {
    track(fd, false);
    ::close(fd);
  }
}

}  // namespace flightlog::demo

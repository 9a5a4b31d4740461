// A loopback port that refuses connections until it is opened, then forwards each
// connection, byte for byte, to another loopback port.
//
// The demo's upload endpoint must exist before its receiver does: the Client is made
// with the endpoint's URL and keeps it. The receiver (tests/support/tls_receiver.hpp)
// listens on a port of its own choosing, so the endpoint's port is this relay's: bound
// at once (reserved, so nothing else takes it, but not listening, so a connect is
// refused, which the uploader classes as offline), and listening from open() on. TLS
// runs end to end between the uploader and the receiver; the relay only copies bytes.
#pragma once

#include <cstdint>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace flightlog::demo {

class PortRelay {
 public:
  // Binds 127.0.0.1 on an ephemeral port without listening. Throws std::runtime_error
  // naming the failed call.
  PortRelay();
  ~PortRelay();  // stop()
  PortRelay(const PortRelay&) = delete;
  PortRelay& operator=(const PortRelay&) = delete;

  std::uint16_t port() const { return port_; }

  // Starts listening; every accepted connection is forwarded to 127.0.0.1:target_port.
  void open(std::uint16_t target_port);

  // Closes the listener and every forwarded connection, and joins the threads.
  void stop();

 private:
  void accept_loop();
  void forward(int client_fd, int server_fd);
  void track(int fd, bool add);

  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: readable once stop() is called
  std::uint16_t port_ = 0;
  std::uint16_t target_port_ = 0;
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> forwarders_;
  std::set<int> live_fds_;
  bool stopped_ = false;
};

}  // namespace flightlog::demo

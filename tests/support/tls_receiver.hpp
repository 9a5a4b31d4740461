// A scriptable HTTPS (or plain HTTP) receiver for the transport and uploader tests.
//
// It listens on 127.0.0.1 on an ephemeral port, serves on its own io_context thread,
// records every request it reads (thread-safe), and can be told to misbehave:
// - per accepted connection, before any request: script_connection(ConnectionFault)
// - per request read, in order: script(Reply), repeated `times` times; when no scripted
//   reply is left, the responder (if set) decides, else 200 "ok".
// A scripted reply is consumed only when a request has been read, so a client's idle
// or stale connection never eats one.
//
// Every fault ends in a way a real server or network produces: RST (linger 0), a TCP
// FIN without TLS close_notify, a proper close_notify, or silence.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flightlog::test {

struct ReceivedRequest {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;  // as received, in order
  std::string body;                 // gunzipped when Content-Encoding: gzip
  std::size_t wire_body_bytes = 0;  // as received
  bool gzipped = false;
  std::string gunzip_error;             // set when the body claimed gzip but did not inflate
  std::size_t connection = 0;           // 1-based, in accept order
  std::size_t index_on_connection = 0;  // 0 for the first request of a connection
  std::chrono::steady_clock::time_point received_at;

  // The first header of that name (case-insensitive), or "" when absent.
  std::string header(std::string_view name) const;
};

enum class Fault : std::uint8_t {
  None,                   // answer normally
  ResetAfterRequest,      // read the request, then RST: no response at all
  Truncate,               // headers promise a body; send part of it, then FIN (no close_notify)
  CloseAfterResponse,     // answer with keep-alive, then FIN without close_notify
  CloseDelimited,         // answer with Connection: close and no Content-Length (the body
                          // runs to the close), then FIN without close_notify
  ShutdownAfterResponse,  // answer with keep-alive, then TLS close_notify and FIN
  Hang,                   // read the request, never answer (until the client goes or stop())
};

struct Reply {
  unsigned status = 200;
  std::string body = "ok";
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. {"Retry-After", "2"}
  Fault fault = Fault::None;
  std::chrono::milliseconds delay{0};  // wait before answering (a slow server)
  bool connection_close = false;       // send "Connection: close" and close politely
  std::vector<unsigned> interim;       // interim (1xx) statuses sent first, e.g. {100}

  static Reply status_only(unsigned status) {
    Reply r;
    r.status = status;
    r.body = "status " + std::to_string(status);
    return r;
  }
  static Reply with_fault(Fault f) {
    Reply r;
    r.fault = f;
    return r;
  }
};

enum class ConnectionFault : std::uint8_t {
  None,
  ResetOnAccept,        // RST as soon as the TCP connection is accepted
  SilentOnAccept,       // accept, then say nothing (the client's TLS handshake times out)
  ResetAfterHandshake,  // complete TLS, then RST before reading anything
};

enum class ServedCert : std::uint8_t { Trusted, WrongHost, Expired, Untrusted };

struct ReceiverOptions {
  bool tls = true;
  ServedCert cert = ServedCert::Trusted;
  // Serve TLS 1.0/1.1 only (security level 0, so OpenSSL 3 allows them at all): a
  // client that requires TLS 1.2 must refuse.
  bool tls_1_1_only = false;
  std::size_t max_body = std::size_t{256} << 20;
};

class TlsReceiver {
 public:
  explicit TlsReceiver(ReceiverOptions options = {});
  ~TlsReceiver();  // stop()
  TlsReceiver(const TlsReceiver&) = delete;
  TlsReceiver& operator=(const TlsReceiver&) = delete;

  std::uint16_t port() const;
  // "https://<host>:<port><target>" ("http://" without TLS).
  std::string url(std::string_view host = "127.0.0.1", std::string_view target = "/ingest") const;

  void script(Reply reply, std::size_t times = 1);
  void script_connection(ConnectionFault fault, std::size_t times = 1);
  // Decides the reply to a request when nothing is scripted; nullopt = the default 200.
  // Runs on the receiver's thread.
  using Responder = std::function<std::optional<Reply>(const ReceivedRequest&)>;
  void set_responder(Responder responder);

  std::vector<ReceivedRequest> requests() const;
  std::size_t request_count() const;
  std::size_t connections() const;  // TCP connections accepted
  std::size_t handshakes() const;   // TLS handshakes completed
  bool wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const;
  bool wait_for_connections(std::size_t n, std::chrono::milliseconds timeout) const;
  // Until the receiver has closed n connections after a response (sent a FIN) or begun
  // to (about to send a TLS close_notify), so a test can wait for the close instead of
  // guessing when the receiver's thread gets to it.
  bool wait_for_closes(std::size_t n, std::chrono::milliseconds timeout) const;

  // Closes the listener and every connection, and joins the thread. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A loopback listener that never accepts, with its accept queue filled, so a further
// connect() gets no answer at all (its SYN is dropped): a blackholed server, without
// sending anything off this machine. saturated() says whether filling worked here (a
// network stack may answer differently); tests skip when it did not.
class BlackholeListener {
 public:
  BlackholeListener();
  ~BlackholeListener();
  BlackholeListener(const BlackholeListener&) = delete;
  BlackholeListener& operator=(const BlackholeListener&) = delete;

  std::uint16_t port() const { return port_; }
  bool saturated() const { return saturated_; }

 private:
  int listen_fd_ = -1;
  std::vector<int> fillers_;
  std::uint16_t port_ = 0;
  bool saturated_ = false;
};

}  // namespace flightlog::test

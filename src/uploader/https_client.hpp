// The uploader's transport: HTTP/1.1 POSTs over TLS (Boost.Beast + OpenSSL), one
// kept-alive connection, on a private io_context thread.
//
// What it guarantees, so the drain logic above it can classify every attempt:
// - Every request ends in exactly one HttpOutcome, delivered once to its callback:
//   a response (any status), or Offline / SentNoResponse / TlsFailure / Cancelled.
// - Nothing hangs: resolve+connect, TLS handshake, the request (write + read) and the
//   TLS shutdown each have a timeout; close() and the destructor return within
//   shutdown_timeout plus a little, whatever the server does.
// - A kept-alive connection that the server closed while it sat idle is detected
//   before the request is written when its FIN or close_notify has already arrived,
//   else when the first write or read fails before any response byte; the request is
//   then sent once more on a fresh connection. The server may have received the first
//   copy if it reset after reading it (the outcome's resent_after_write says the
//   request had been written whole), so requests must be idempotent (the uploader's
//   batches carry stable record ids).
// - A Response has a final status and its headers read whole (kMaxResponseHeader at
//   most, after kMaxInterimResponses interim ones at most); anything less is
//   SentNoResponse, and the connection is closed, so a late answer is never read as the
//   next request's. A body that runs to the connection's close may end without TLS
//   close_notify: the answer stands, with body_truncated set.
// - TLS 1.2 or newer; the peer's chain is verified against the system CAs or the
//   configured CA file/PEM, and its name against the host (DNS SAN, or IP SAN for an
//   IP literal); SNI is sent for host names.
// - Secrets: header values (Authorization, X-ClickHouse-Key, ...) and the target's
//   query never appear in error texts; errors name the host:port and the failure only.
//
// Threads: async_post() and post() may be called from any thread; requests are sent
// one at a time, in submission order, on one connection. Callbacks run on the client's
// io thread: they must be short, must not throw (exceptions are swallowed) and must
// not call post() (it would wait for itself; it throws instead). close() and the
// destructor must not be called from a callback.
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

#include "uploader/endpoint.hpp"

namespace flightlog::detail {

struct HttpClientConfig {
  ParsedEndpoint endpoint;
  std::string ca_file;      // PEM file of trusted CAs; empty = the system's default CAs
  std::string ca_pem;       // one more trusted CA, in memory (tests, private CAs)
  bool verify_peer = true;  // false skips chain and name checks: tests only
  // connect_timeout covers the DNS lookup and the TCP connect (all addresses).
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds handshake_timeout{5000};
  // From the first byte written to the last byte of the response read.
  std::chrono::milliseconds request_timeout{30000};
  // The TLS close_notify exchange at close(); also bounds close() itself.
  std::chrono::milliseconds shutdown_timeout{2000};
  // A response body may be this large (it is read to keep the connection usable);
  // a larger one ends the connection but still yields its status.
  std::size_t max_response_body = std::size_t{8} << 20;
  // This much of a response body is kept in the outcome (for error reports).
  std::size_t kept_response_body = std::size_t{64} << 10;
  std::string user_agent = "flightlog";
};

// Interim responses (100 Continue, 102 Processing, 103 Early Hints) may precede the
// final one, a few at most. A server that sends more is broken: its answer is taken as
// malformed rather than read on without end.
inline constexpr int kMaxInterimResponses = 4;

// A 1xx status other than 101 Switching Protocols (which ends HTTP on the connection).
constexpr bool is_interim_status(unsigned status) noexcept {
  return status >= 100 && status < 200 && status != 101;
}

// Beast's default limit on a response's header block is 8 KiB. Gateways, load balancers
// and CDNs in front of an ingest endpoint add their own headers (Set-Cookie for session
// affinity, tracing, security policies) and can pass that; a 2xx over the limit would be
// taken as malformed and the batch it acknowledged sent again until it failed. 64 KiB
// leaves room for them and still bounds what a broken or hostile server can make the
// client hold for one response.
inline constexpr std::uint32_t kMaxResponseHeader = 64 * 1024;

struct HttpRequest {
  std::string target;  // empty = the endpoint's path and query
  std::string content_type = "application/x-ndjson";
  // Sent as given. Values are never logged or quoted in errors. Names must be HTTP
  // tokens and values must not contain CR, LF or NUL (async_post throws otherwise).
  // Host, Content-Type, Content-Length, Content-Encoding, Transfer-Encoding, Connection
  // and User-Agent are set by the client and may not be given here.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool gzip = false;   // gzip the body (on the calling thread) and send Content-Encoding
  int gzip_level = 1;  // zlib level; 1 = fastest
};

enum class HttpResult : std::uint8_t {
  Response,        // the server answered: see status (any code, 2xx or not)
  Offline,         // nothing was sent: DNS failure, connect refused/timed out,
                   // unreachable, TLS handshake cut off or timed out
  SentNoResponse,  // the request was (possibly) sent, no complete response came: timeout,
                   // reset, EOF, a response cut short or malformed
  TlsFailure,      // TLS refused: certificate chain or name, protocol version, ciphers
  Cancelled,       // close() or the destructor ended it (or it was submitted after)
};
std::string_view http_result_name(HttpResult r) noexcept;  // "response", "offline", ...

struct HttpOutcome {
  HttpResult result = HttpResult::Cancelled;
  unsigned status = 0;  // Response only
  std::string body;     // Response only; at most kept_response_body bytes
  // The body may not be all the server sent: cut to kept_response_body, not read past
  // max_response_body, or it ran to a close that came without TLS close_notify.
  bool body_truncated = false;
  std::optional<std::chrono::seconds> retry_after;  // Retry-After, either form, >= 0
  std::string error;               // why, when not a Response; contains no header values
  bool reused_connection = false;  // the (last) attempt went over a kept-alive connection
  bool stale_retried = false;      // a stale kept-alive connection was replaced once
  // The replaced connection had taken the whole request before it failed without an
  // answer: the server may have it twice.
  bool resent_after_write = false;
  // From the start of the attempt (connect and any stale retry included) to the
  // outcome; time spent queued behind earlier requests is not counted.
  std::chrono::steady_clock::duration elapsed{};
};

struct HttpClientStats {
  std::uint64_t connections_opened = 0;  // TCP connects that succeeded
  std::uint64_t requests_sent = 0;       // writes started, retries included
  std::uint64_t stale_retries = 0;
  bool connected = false;  // a connection is open (idle or busy) right now
};

class HttpsClient {
 public:
  // Builds the TLS context (loads CAs) and starts the io thread. No connection is made
  // until the first request. Throws flightlog::Error for an https endpoint whose CA
  // file or PEM cannot be loaded, a non-positive timeout, or an invalid endpoint.
  explicit HttpsClient(HttpClientConfig config);
  ~HttpsClient();  // close()
  HttpsClient(const HttpsClient&) = delete;
  HttpsClient& operator=(const HttpsClient&) = delete;

  // Queues `request`; `done` is called exactly once with its outcome, on the io thread
  // (or on the calling thread, with Cancelled, after close()). Throws flightlog::Error,
  // before queueing, for a header that is invalid or reserved (the message names the
  // header, never its value).
  void async_post(HttpRequest request, std::function<void(HttpOutcome)> done);

  // async_post and wait. Throws flightlog::Error if called on the io thread.
  HttpOutcome post(HttpRequest request);

  // Cancels queued and in-flight requests (their outcome: Cancelled), sends TLS
  // close_notify on an idle connection (bounded by shutdown_timeout), and joins the io
  // thread. Returns within shutdown_timeout + 1 s. Idempotent.
  void close();

  HttpClientStats stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Retry-After (RFC 9110 10.2.3): delay-seconds, or an HTTP-date in any of its three
// forms (IMF-fixdate, RFC 850, asctime) taken relative to `now`. A date in the past
// gives 0 s. nullopt for anything else.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now);

}  // namespace flightlog::detail

#include "uploader/https_client.hpp"

#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

#include "core/threads.hpp"
#include "flightlog/error.hpp"
#include "uploader/gzip.hpp"

namespace flightlog::detail {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

std::string_view http_result_name(HttpResult r) noexcept {
  switch (r) {
    case HttpResult::Response:
      return "response";
    case HttpResult::Offline:
      return "offline";
    case HttpResult::SentNoResponse:
      return "sent-no-response";
    case HttpResult::TlsFailure:
      return "tls-failure";
    case HttpResult::Cancelled:
      return "cancelled";
  }
  return "unknown";
}

// ---- Retry-After ---------------------------------------------------------------------

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

int to_int(std::string_view s) {
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}

// The three HTTP-date forms differ only in where day, month and year stand and how
// they are separated, so one tokenizer reads them all:
//   IMF-fixdate  Sun, 06 Nov 1994 08:49:37 GMT
//   RFC 850      Sunday, 06-Nov-94 08:49:37 GMT
//   asctime      Sun Nov  6 08:49:37 1994
std::optional<std::chrono::sys_seconds> parse_http_date(std::string_view s) {
  static constexpr std::string_view kMonths[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                                 "jul", "aug", "sep", "oct", "nov", "dec"};
  int day = -1, month = -1, year = -1, hh = -1, mm = -1, ss = -1;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == ',' || s[i] == '-')) ++i;
    std::size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != ',' && s[j] != '-') ++j;
    std::string_view tok = s.substr(i, j - i);
    i = j;
    if (tok.empty()) continue;
    if (tok.size() == 8 && tok[2] == ':' && tok[5] == ':') {
      if (hh >= 0 || !all_digits(tok.substr(0, 2)) || !all_digits(tok.substr(3, 2)) ||
          !all_digits(tok.substr(6, 2))) {
        return std::nullopt;
      }
      hh = to_int(tok.substr(0, 2));
      mm = to_int(tok.substr(3, 2));
      ss = to_int(tok.substr(6, 2));
    } else if (all_digits(tok)) {
      if (day < 0 && tok.size() <= 2) {
        day = to_int(tok);
      } else if (year < 0 && (tok.size() == 2 || tok.size() == 4)) {
        year = to_int(tok);
        // RFC 850's two-digit year: RFC 9110 says to take the most recent past year
        // with those digits; a fixed pivot is close enough for a retry delay.
        if (tok.size() == 2) year += year < 70 ? 2000 : 1900;
      } else {
        return std::nullopt;
      }
    } else {
      std::string low;
      for (char c : tok) low += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      bool known = false;
      for (int m = 0; m < 12; ++m) {
        if (low == kMonths[m]) {
          if (month >= 0) return std::nullopt;
          month = m + 1;
          known = true;
        }
      }
      // Anything else must be a weekday name or the zone, which is always GMT.
      if (!known && low != "gmt" &&
          (low.size() < 3 || !std::isalpha(static_cast<unsigned char>(low[0])))) {
        return std::nullopt;
      }
    }
  }
  if (day < 1 || month < 1 || year < 0 || hh < 0 || hh > 23 || mm > 59 || ss > 60) {
    return std::nullopt;
  }
  std::chrono::year_month_day ymd{std::chrono::year{year},
                                  std::chrono::month{static_cast<unsigned>(month)},
                                  std::chrono::day{static_cast<unsigned>(day)}};
  if (!ymd.ok()) return std::nullopt;
  return std::chrono::sys_days{ymd} + std::chrono::hours{hh} + std::chrono::minutes{mm} +
         std::chrono::seconds{ss};
}

}  // namespace

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now) {
  value = trim(value);
  if (all_digits(value)) {
    // More than ten digits is more than 300 years: clamp rather than overflow.
    if (value.size() > 10) return std::chrono::seconds{9'999'999'999LL};
    std::int64_t v = 0;
    for (char c : value) v = v * 10 + (c - '0');
    return std::chrono::seconds{v};
  }
  auto date = parse_http_date(value);
  if (!date) return std::nullopt;
  // In whole seconds: in the clock's nanoseconds, a date after 2262 or before 1677 (or
  // one that far from now) overflows. For a whole-second date, ceil(date - now) is
  // date - floor(now).
  const auto delta = *date - std::chrono::floor<std::chrono::seconds>(now);
  return delta.count() < 0 ? std::chrono::seconds{0} : delta;
}

// ---- The client ----------------------------------------------------------------------

namespace {

constexpr auto kUseTuple = net::as_tuple(net::use_awaitable);

// Holds a request's callback and guarantees it is called exactly once: if the request
// is dropped without an outcome (the io_context is torn down with it still queued), the
// destructor reports Cancelled.
class Completion {
 public:
  explicit Completion(std::function<void(HttpOutcome)> fn) : fn_(std::move(fn)) {}
  Completion(Completion&& o) noexcept : fn_(std::move(o.fn_)) { o.fn_ = nullptr; }
  Completion& operator=(Completion&&) = delete;
  ~Completion() {
    if (fn_) {
      HttpOutcome o;
      o.result = HttpResult::Cancelled;
      o.error = "cancelled: the client closed before the request completed";
      (*this)(std::move(o));
    }
  }
  void operator()(HttpOutcome o) noexcept {
    auto fn = std::move(fn_);
    fn_ = nullptr;
    try {
      if (fn) fn(std::move(o));
    } catch (...) {
      // A callback must not throw; swallowing keeps the io thread alive.
    }
  }

 private:
  std::function<void(HttpOutcome)> fn_;
};

struct Job {
  HttpRequest request;
  Completion done;
};

// The DNS lookup runs getaddrinfo on a detached thread: asio's resolver shares one
// private thread for all lookups and joins it when the io_context is destroyed, so a
// DNS server that does not answer (the classic offline case) would delay every later
// lookup and the destructor. Results come back by a post to the io thread, guarded by
// the gate so that nothing is posted once the io_context is going away.
struct ResolveGate {
  std::mutex mu;
  bool open = true;
  net::io_context::executor_type executor;
  explicit ResolveGate(net::io_context::executor_type ex) : executor(std::move(ex)) {}
};

struct ResolveState {  // touched on the io thread only
  bool done = false;
  int gai_error = 0;
  std::vector<tcp::endpoint> endpoints;
  net::steady_timer* waiter = nullptr;
};

std::vector<tcp::endpoint> to_endpoints(const addrinfo* list) {
  std::vector<tcp::endpoint> out;
  for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    tcp::endpoint ep;
    if (ai->ai_addrlen > ep.capacity()) continue;
    std::memcpy(ep.data(), ai->ai_addr, ai->ai_addrlen);
    ep.resize(ai->ai_addrlen);
    out.push_back(ep);
  }
  return out;
}

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

void check_headers(const HttpRequest& r) {
  static constexpr std::string_view kReserved[] = {
      "host",       "content-length", "content-encoding", "transfer-encoding",
      "connection", "user-agent",     "content-type"};
  for (const auto& [name, value] : r.headers) {
    if (name.empty()) throw Error("HTTP request: a header has an empty name");
    for (char c : name) {
      if (!is_token_char(c)) {
        throw Error("HTTP request: header name '" + name + "' is not an HTTP token");
      }
    }
    for (auto reserved : kReserved) {
      if (beast::iequals(name, reserved)) {
        throw Error("HTTP request: header '" + name + "' is set by the client; remove it");
      }
    }
    for (char c : value) {
      if (c == '\r' || c == '\n' || c == '\0') {
        // The value is not quoted: it may be a credential.
        throw Error("HTTP request: the value of header '" + name +
                    "' contains CR, LF or NUL (value not shown)");
      }
    }
  }
  for (char c : r.target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      throw Error("HTTP request: the target contains a space or control character");
    }
  }
  if (!r.target.empty() && r.target.front() != '/') {
    throw Error("HTTP request: the target must start with '/'");
  }
  for (char c : r.content_type) {
    if (c == '\r' || c == '\n' || c == '\0') {
      throw Error("HTTP request: content_type contains CR, LF or NUL");
    }
  }
}

bool is_ssl_library_error(const error_code& ec) {
  return ec.category() == net::error::get_ssl_category();
}

// Errors that, before any byte of a response, mean the server closed a kept-alive
// connection while it sat idle: our request found a dead socket.
bool is_stale_connection_error(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == ssl::error::stream_truncated ||
         ec == net::error::eof || ec == net::error::connection_reset ||
         ec == net::error::broken_pipe || ec == net::error::connection_aborted ||
         ec == net::error::not_connected;
}

std::string ms_text(std::chrono::milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

}  // namespace

class HttpsClient::Impl {
 public:
  explicit Impl(HttpClientConfig config);
  ~Impl();

  void async_post(HttpRequest request, std::function<void(HttpOutcome)> done);
  HttpOutcome post(HttpRequest request);
  void close();
  HttpClientStats stats() const;

 private:
  // What one send-and-receive on an open connection produced.
  struct Exchange {
    HttpOutcome outcome;
    bool stale = false;    // failed before any response byte with a stale-connection error
    bool written = false;  // the request was written whole before it failed
  };

  net::awaitable<void> worker();
  net::awaitable<HttpOutcome> perform(HttpRequest& request);
  // Opens a connection; on failure returns the outcome to report.
  net::awaitable<std::optional<HttpOutcome>> open_connection();
  net::awaitable<std::optional<std::vector<tcp::endpoint>>> resolve(Clock::time_point deadline,
                                                                    std::string& error);
  net::awaitable<std::optional<HttpOutcome>> handshake();
  template <class Stream>
  net::awaitable<Exchange> exchange(Stream& stream,
                                    const http::request<http::string_body>& request);
  net::awaitable<void> graceful_close();

  beast::tcp_stream& lowest();
  void drop_connection();
  // True if the open, idle connection has something to read: the server's FIN or
  // close_notify (a server sends nothing else between responses).
  bool closed_while_idle();
  void begin_close();
  HttpOutcome failure(HttpResult r, std::string error) const;
  HttpOutcome cancelled() const {
    return failure(HttpResult::Cancelled, "cancelled: the client is closing");
  }
  std::string tls_error_text(const error_code& ec);

  const HttpClientConfig cfg_;
  const std::string authority_;
  const std::string host_header_;

  // Declared before everything that uses it, so it is destroyed last.
  net::io_context ioc_{1};
  ssl::context ssl_ctx_{ssl::context::tls_client};
  std::shared_ptr<ResolveGate> gate_;

  // --- io thread only ---
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;  // rebuilt per connection
  std::optional<beast::tcp_stream> plain_;
  beast::flat_buffer buffer_;
  bool connected_ = false;
  std::deque<Job> queue_;
  net::steady_timer wake_{ioc_};
  net::steady_timer resolve_timer_{ioc_};
  bool busy_ = false;
  bool closing_ = false;

  // --- any thread ---
  std::mutex submit_mu_;
  bool closed_ = false;  // async_post after this reports Cancelled at once
  std::mutex close_mu_;
  bool joined_ = false;
  std::atomic<std::uint64_t> connections_opened_{0};
  std::atomic<std::uint64_t> requests_sent_{0};
  std::atomic<std::uint64_t> stale_retries_{0};
  std::atomic<bool> connected_now_{false};  // mirrors connected_ for stats()
  std::promise<void> exited_;
  std::thread thread_;
  std::thread::id io_thread_id_;
};

HttpsClient::Impl::Impl(HttpClientConfig config)
    : cfg_(std::move(config)),
      authority_(cfg_.endpoint.authority()),
      host_header_(cfg_.endpoint.host_header()),
      gate_(std::make_shared<ResolveGate>(ioc_.get_executor())) {
  using std::chrono::milliseconds;
  if (cfg_.endpoint.host.empty() || cfg_.endpoint.port == 0) {
    throw Error("HTTP client: the endpoint is not set (parse it with parse_endpoint)");
  }
  if (cfg_.connect_timeout <= milliseconds(0) || cfg_.handshake_timeout <= milliseconds(0) ||
      cfg_.request_timeout <= milliseconds(0) || cfg_.shutdown_timeout <= milliseconds(0)) {
    throw Error("HTTP client: connect, handshake, request and shutdown timeouts must be > 0");
  }
  if (cfg_.endpoint.tls()) {
    SSL_CTX* ctx = ssl_ctx_.native_handle();
    // tls_client allows TLS 1.0 and up; 1.0 and 1.1 are broken and deprecated (RFC 8996).
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
      throw Error("HTTP client: OpenSSL refused TLS 1.2 as the minimum version");
    }
    ssl_ctx_.set_options(ssl::context::default_workarounds | ssl::context::no_compression);
    error_code ec;
    if (cfg_.ca_file.empty()) {
      ssl_ctx_.set_default_verify_paths(ec);
      if (ec) throw Error("HTTP client: cannot load the system CA certificates: " + ec.message());
    } else {
      ssl_ctx_.load_verify_file(cfg_.ca_file, ec);
      if (ec) {
        throw Error("HTTP client: ca_file '" + cfg_.ca_file +
                    "' cannot be loaded as PEM certificates: " + ec.message());
      }
    }
    if (!cfg_.ca_pem.empty()) {
      ssl_ctx_.add_certificate_authority(net::buffer(cfg_.ca_pem), ec);
      if (ec) throw Error("HTTP client: ca_pem is not a PEM certificate: " + ec.message());
    }
    ssl_ctx_.set_verify_mode(cfg_.verify_peer ? ssl::verify_peer : ssl::verify_none);
  }
  net::co_spawn(ioc_, worker(), net::detached);
  thread_ = std::thread([this] {
    ioc_.run();
    exited_.set_value();
  });
  name_thread(thread_, "fl-io");
  yield_on_wakeup(thread_);
  io_thread_id_ = thread_.get_id();
}

HttpsClient::Impl::~Impl() {
  close();
  {
    std::lock_guard lk(gate_->mu);
    gate_->open = false;
  }
  // The streams go before the io_context; anything still queued in it (only after a
  // forced stop) is destroyed with it, and each Completion then reports Cancelled.
  tls_.reset();
  plain_.reset();
}

void HttpsClient::Impl::async_post(HttpRequest request, std::function<void(HttpOutcome)> done) {
  check_headers(request);
  if (request.gzip) request.body = gzip_compress(request.body, request.gzip_level);
  Completion completion(std::move(done));
  std::unique_lock lk(submit_mu_);
  if (closed_) {
    lk.unlock();
    return;  // `completion` reports Cancelled as it goes out of scope
  }
  auto job = std::make_unique<Job>(Job{std::move(request), std::move(completion)});
  net::post(ioc_, [this, job = std::move(job)]() mutable {
    queue_.push_back(std::move(*job));
    wake_.cancel();
  });
}

HttpOutcome HttpsClient::Impl::post(HttpRequest request) {
  if (std::this_thread::get_id() == io_thread_id_) {
    throw Error("HTTP client: post() called from a completion callback; use async_post()");
  }
  // Shared, not on this stack: set_value may still be running on the io thread when
  // get() returns here.
  auto promise = std::make_shared<std::promise<HttpOutcome>>();
  auto future = promise->get_future();
  async_post(std::move(request), [promise](HttpOutcome o) { promise->set_value(std::move(o)); });
  return future.get();
}

void HttpsClient::Impl::close() {
  if (std::this_thread::get_id() == io_thread_id_) {
    throw Error("HTTP client: close() called from a completion callback");
  }
  std::lock_guard close_lock(close_mu_);
  if (joined_) return;
  {
    std::lock_guard lk(submit_mu_);
    closed_ = true;
  }
  net::post(ioc_, [this] { begin_close(); });
  // The worker ends by itself within shutdown_timeout (the close_notify exchange is the
  // only step it waits for). If it does not (a callback that blocks), stop the loop.
  auto exited = exited_.get_future();
  if (exited.wait_for(cfg_.shutdown_timeout + std::chrono::milliseconds(500)) !=
      std::future_status::ready) {
    ioc_.stop();
  }
  thread_.join();
  joined_ = true;
}

HttpClientStats HttpsClient::Impl::stats() const {
  return {connections_opened_.load(), requests_sent_.load(), stale_retries_.load(),
          connected_now_.load()};
}

void HttpsClient::Impl::begin_close() {
  closing_ = true;
  wake_.cancel();
  resolve_timer_.cancel();
  // An exchange in flight is aborted: closing the socket completes its pending
  // operations with operation_aborted at once. An idle connection is left for
  // graceful_close().
  if (busy_ && (tls_ || plain_)) lowest().close();
}

beast::tcp_stream& HttpsClient::Impl::lowest() {
  return tls_ ? beast::get_lowest_layer(*tls_) : *plain_;
}

bool HttpsClient::Impl::closed_while_idle() {
  // Bytes left over from the last response, or decrypted and not yet read, are as
  // much a sign of a connection not to reuse as a pending FIN.
  if (buffer_.size() > 0) return true;
  if (tls_) {
    // A close_notify that came in the same read as the response sits in the TLS
    // layer's buffers, not in the socket: Asio hands OpenSSL the bytes it read through
    // a BIO pair, and OpenSSL decrypts only the records a read asked for.
    SSL* ssl = tls_->native_handle();
    if (SSL_has_pending(ssl) == 1 || BIO_ctrl_pending(SSL_get_rbio(ssl)) > 0) return true;
  }
  pollfd p{};
  p.fd = lowest().socket().native_handle();
  p.events = POLLIN;
  return ::poll(&p, 1, 0) > 0;  // readable, hung up or in error
}

void HttpsClient::Impl::drop_connection() {
  if (tls_ || plain_) {
    error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().close();
  }
  tls_.reset();
  plain_.reset();
  connected_ = false;
  connected_now_.store(false);
  buffer_.clear();
}

HttpOutcome HttpsClient::Impl::failure(HttpResult r, std::string error) const {
  HttpOutcome o;
  o.result = r;
  o.error = std::move(error);
  return o;
}

net::awaitable<void> HttpsClient::Impl::worker() {
  for (;;) {
    while (!closing_ && queue_.empty()) {
      wake_.expires_at(Clock::time_point::max());
      co_await wake_.async_wait(kUseTuple);
    }
    if (closing_) break;
    Job job = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    HttpOutcome outcome;
    try {
      outcome = co_await perform(job.request);
    } catch (const std::exception& e) {
      drop_connection();
      outcome = failure(HttpResult::SentNoResponse, std::string("internal error: ") + e.what());
    }
    busy_ = false;
    job.done(std::move(outcome));
  }
  while (!queue_.empty()) {
    Job job = std::move(queue_.front());
    queue_.pop_front();
    job.done(cancelled());
  }
  co_await graceful_close();
}

net::awaitable<void> HttpsClient::Impl::graceful_close() {
  if (!connected_) co_return;
  if (tls_) {
    // Sends close_notify and waits for the server's; many servers just close, which
    // ends the wait with stream_truncated or eof. Either way the timeout bounds it.
    beast::get_lowest_layer(*tls_).expires_after(cfg_.shutdown_timeout);
    co_await tls_->async_shutdown(kUseTuple);
  }
  drop_connection();
}

net::awaitable<HttpOutcome> HttpsClient::Impl::perform(HttpRequest& r) {
  auto start = Clock::now();
  http::request<http::string_body> req{http::verb::post,
                                       r.target.empty() ? cfg_.endpoint.target : r.target, 11};
  req.set(http::field::host, host_header_);
  req.set(http::field::user_agent, cfg_.user_agent);
  req.set(http::field::content_type, r.content_type);
  if (r.gzip) req.set(http::field::content_encoding, "gzip");
  for (auto& [name, value] : r.headers) req.insert(name, value);
  req.keep_alive(true);
  req.body() = std::move(r.body);
  req.prepare_payload();

  // Up to two attempts: the second only when the first found a stale kept-alive
  // connection. A fresh connection is never retried here: the uploader decides.
  HttpOutcome outcome;
  bool stale_retried = false;
  bool resent_after_write = false;
  for (int attempt = 0; attempt < 2; ++attempt) {
    // A connection the server closed while it sat idle is replaced before the request
    // is written to it: written into a dead connection, the request would have to be
    // sent again, and a resend after a whole write may be a duplicate (below).
    if (attempt == 0 && connected_ && closed_while_idle()) {
      drop_connection();
      ++stale_retries_;
      stale_retried = true;
    }
    bool reused = connected_;
    if (!connected_) {
      if (auto failed = co_await open_connection()) {
        outcome = std::move(*failed);
        break;
      }
    }
    Exchange ex;
    if (tls_) {
      ex = co_await exchange(*tls_, req);
    } else {
      ex = co_await exchange(*plain_, req);
    }
    outcome = std::move(ex.outcome);
    outcome.reused_connection = reused;
    if (ex.stale && reused && attempt == 0 && !closing_) {
      ++stale_retries_;
      stale_retried = true;
      // Written whole, then EOF or reset with no answer: the server may have read the
      // request and acted on it before the connection went. The resend may be a copy.
      resent_after_write = ex.written;
      continue;
    }
    break;
  }
  outcome.stale_retried = stale_retried;
  outcome.resent_after_write = resent_after_write;
  outcome.elapsed = Clock::now() - start;
  co_return outcome;
}

net::awaitable<std::optional<std::vector<tcp::endpoint>>> HttpsClient::Impl::resolve(
    Clock::time_point deadline, std::string& error) {
  auto state = std::make_shared<ResolveState>();
  try {
    std::thread([gate = gate_, state, host = cfg_.endpoint.host,
                 port = std::to_string(cfg_.endpoint.port)] {
      addrinfo hints{};
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      hints.ai_flags = AI_NUMERICSERV;
      addrinfo* list = nullptr;
      int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &list);
      std::vector<tcp::endpoint> endpoints;
      if (rc == 0) {
        endpoints = to_endpoints(list);
        ::freeaddrinfo(list);
      }
      std::lock_guard lk(gate->mu);
      if (!gate->open) return;
      net::post(gate->executor, [state, rc, endpoints = std::move(endpoints)]() mutable {
        if (state->done) return;  // the lookup was abandoned (timeout, close)
        state->done = true;
        state->gai_error = rc;
        state->endpoints = std::move(endpoints);
        if (state->waiter) state->waiter->cancel();
      });
    }).detach();
  } catch (const std::system_error& e) {
    error = "cannot start the DNS lookup of " + cfg_.endpoint.host + ": " + e.what();
    co_return std::nullopt;
  }
  resolve_timer_.expires_at(deadline);
  state->waiter = &resolve_timer_;
  while (!state->done && !closing_) {
    auto [ec] = co_await resolve_timer_.async_wait(kUseTuple);
    if (!ec) break;  // the deadline passed
  }
  state->waiter = nullptr;
  if (!state->done) {
    state->done = true;  // abandon: a late answer is ignored
    error = closing_ ? ""
                     : "DNS lookup of " + cfg_.endpoint.host + " timed out after " +
                           ms_text(cfg_.connect_timeout);
    co_return std::nullopt;
  }
  if (state->gai_error != 0) {
    error = "cannot resolve " + cfg_.endpoint.host + ": " + ::gai_strerror(state->gai_error);
    co_return std::nullopt;
  }
  if (state->endpoints.empty()) {
    error = "cannot resolve " + cfg_.endpoint.host + ": no IPv4 or IPv6 address";
    co_return std::nullopt;
  }
  co_return std::move(state->endpoints);
}

net::awaitable<std::optional<HttpOutcome>> HttpsClient::Impl::open_connection() {
  drop_connection();
  auto deadline = Clock::now() + cfg_.connect_timeout;
  std::vector<tcp::endpoint> endpoints;
  if (cfg_.endpoint.host_is_ip) {
    error_code ec;
    auto address = net::ip::make_address(cfg_.endpoint.host, ec);
    if (ec) co_return failure(HttpResult::Offline, "bad IP address " + cfg_.endpoint.host);
    endpoints.emplace_back(address, cfg_.endpoint.port);
  } else {
    std::string error;
    auto resolved = co_await resolve(deadline, error);
    if (closing_) co_return cancelled();
    if (!resolved) co_return failure(HttpResult::Offline, std::move(error));
    endpoints = std::move(*resolved);
  }

  // A fresh stream per connection: an ssl_stream cannot be reused after a shutdown or
  // an error, and its SSL object carries the previous session's state.
  if (cfg_.endpoint.tls()) {
    tls_.emplace(ioc_, ssl_ctx_);
  } else {
    plain_.emplace(ioc_);
  }
  lowest().expires_at(deadline);
  auto [ec, connected_to] = co_await lowest().async_connect(endpoints, kUseTuple);
  if (closing_) co_return cancelled();
  if (ec == beast::error::timeout) {
    drop_connection();
    co_return failure(HttpResult::Offline, "connect to " + authority_ + " timed out after " +
                                               ms_text(cfg_.connect_timeout));
  }
  if (ec) {
    drop_connection();
    co_return failure(HttpResult::Offline, "cannot connect to " + authority_ + ": " + ec.message());
  }
  ++connections_opened_;
  error_code ignored;
  lowest().socket().set_option(tcp::no_delay(true), ignored);
  if (tls_) {
    if (auto failed = co_await handshake()) {
      drop_connection();
      co_return failed;
    }
  }
  lowest().expires_never();
  connected_ = true;
  connected_now_.store(true);
  buffer_.clear();
  co_return std::nullopt;
}

net::awaitable<std::optional<HttpOutcome>> HttpsClient::Impl::handshake() {
  SSL* ssl = tls_->native_handle();
  const auto& host = cfg_.endpoint.host;
  if (!cfg_.endpoint.host_is_ip) {
    // SNI carries host names only (RFC 6066 3: "Literal IPv4 and IPv6 addresses are not
    // permitted").
    if (SSL_set_tlsext_host_name(ssl, host.c_str()) != 1) {
      co_return failure(HttpResult::TlsFailure, "TLS: cannot set SNI host name " + host);
    }
  }
  if (cfg_.verify_peer) {
    // OpenSSL checks the name during chain verification (X509_check_host / _ip, the same
    // checks asio's host_name_verification makes), so a mismatch is reported as its own
    // verify result ("hostname mismatch") instead of a bare "certificate verify failed".
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int ok = cfg_.endpoint.host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                                      : X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
    if (ok != 1) {
      co_return failure(HttpResult::TlsFailure, "TLS: cannot set the expected name " + host);
    }
  }
  lowest().expires_after(cfg_.handshake_timeout);
  auto [ec] = co_await tls_->async_handshake(ssl::stream_base::client, kUseTuple);
  if (closing_) co_return cancelled();
  if (!ec) co_return std::nullopt;
  if (ec == beast::error::timeout) {
    co_return failure(
        HttpResult::Offline,
        "TLS handshake with " + authority_ + " timed out after " + ms_text(cfg_.handshake_timeout));
  }
  if (is_ssl_library_error(ec)) co_return failure(HttpResult::TlsFailure, tls_error_text(ec));
  // EOF, reset, truncation: the server (or something in between) hung up before TLS was
  // up. Nothing of the request was sent.
  co_return failure(HttpResult::Offline,
                    "TLS handshake with " + authority_ + " cut off by the peer: " + ec.message());
}

std::string HttpsClient::Impl::tls_error_text(const error_code& ec) {
  std::string text = "TLS handshake with " + authority_ + " refused: " + ec.message();
  long verify = SSL_get_verify_result(tls_->native_handle());
  if (verify != X509_V_OK) {
    text += ": ";
    text += X509_verify_cert_error_string(verify);
  }
  // The error queue may hold more entries from this failure; leaving them would let a
  // later, unrelated OpenSSL call on this thread report them.
  ERR_clear_error();
  return text;
}

template <class Stream>
net::awaitable<HttpsClient::Impl::Exchange> HttpsClient::Impl::exchange(
    Stream& stream, const http::request<http::string_body>& request) {
  Exchange ex;
  lowest().expires_after(cfg_.request_timeout);
  ++requests_sent_;
  auto [write_ec, written] = co_await http::async_write(stream, request, kUseTuple);
  (void)written;
  ex.written = !write_ec;
  // A fresh parser per message: interim responses may precede the real one.
  std::optional<http::response_parser<http::string_body>> parser;
  error_code read_ec;
  bool got_interim = false;
  for (int message = 0; !write_ec && message <= kMaxInterimResponses; ++message) {
    parser.emplace();
    parser->header_limit(kMaxResponseHeader);
    parser->body_limit(cfg_.max_response_body);
    auto [ec, read] = co_await http::async_read(stream, buffer_, *parser, kUseTuple);
    (void)read;
    read_ec = ec;
    if (ec || !is_interim_status(parser->get().result_int())) break;
    got_interim = true;
  }
  error_code ec = write_ec ? write_ec : read_ec;
  if (closing_ && ec) {
    ex.outcome = cancelled();
    drop_connection();
    co_return ex;
  }
  bool got_response_bytes = got_interim || (parser && parser->got_some()) || buffer_.size() > 0;
  bool header_done = parser && parser->is_header_done();
  // Without Content-Length or chunked coding, a response's body runs to the close of the
  // connection (RFC 9112 6.3), and servers that send one often close TCP without TLS's
  // close_notify: a stream_truncated where the body ends. (After a close_notify the
  // stream reports eof, which Beast takes as the end itself.) The status line and
  // headers came whole in authenticated TLS records; all a truncation attacker can do is
  // cut the body short. A 2xx acknowledgement does not depend on its body, and for
  // another status the part read is still the server's own text (the uploader's
  // classify() reads a ClickHouse error code in it only where text follows the code).
  // So the answer stands, its body flagged as possibly truncated (below).
  bool body_ends_at_close = ec == ssl::error::stream_truncated && header_done && parser->need_eof();
  // The status and headers were read; only the body's end is missing.
  bool answered = header_done && (ec == http::error::body_limit || body_ends_at_close);
  // Every message read was interim: the final one, if it comes, would be taken as the
  // answer to the next request on this connection.
  bool too_many_interim = !ec && is_interim_status(parser->get().result_int());
  if ((ec && !answered) || too_many_interim) {
    drop_connection();
    ex.stale = !got_response_bytes && is_stale_connection_error(ec);
    std::string text;
    if (too_many_interim) {
      text = "malformed response from " + authority_ + ": more than " +
             std::to_string(kMaxInterimResponses) + " interim (1xx) responses";
    } else if (ec == beast::error::timeout) {
      text = "no complete response from " + authority_ + " within request_timeout (" +
             ms_text(cfg_.request_timeout) + ")";
    } else if (got_response_bytes &&
               ec.category() == http::make_error_code(http::error::partial_message).category() &&
               ec != http::error::partial_message) {
      text = "malformed response from " + authority_ + ": " + ec.message();
      if (ec == http::error::header_limit) {
        text += " (" + std::to_string(kMaxResponseHeader / 1024) + " KiB)";
      }
    } else if (got_response_bytes) {
      text = "response from " + authority_ + " cut short: " + ec.message();
    } else {
      text = "connection to " + authority_ + " lost after the request was sent: " + ec.message();
    }
    ERR_clear_error();
    ex.outcome = failure(HttpResult::SentNoResponse, std::move(text));
    co_return ex;
  }

  lowest().expires_never();
  auto& res = parser->get();
  HttpOutcome& o = ex.outcome;
  o.result = HttpResult::Response;
  o.status = res.result_int();
  o.body = std::move(res.body());
  if (o.body.size() > cfg_.kept_response_body) {
    o.body.resize(cfg_.kept_response_body);
    o.body_truncated = true;
  }
  if (auto it = res.find(http::field::retry_after); it != res.end()) {
    o.retry_after = parse_retry_after(it->value(), std::chrono::system_clock::now());
  }
  // A body over max_response_body was not read to its end, so the connection is not at a
  // message boundary any more; one that ran to the close has no connection left.
  if (ec || !res.keep_alive() || res.need_eof()) {
    o.body_truncated = o.body_truncated || static_cast<bool>(ec);
    drop_connection();
  }
  co_return ex;
}

// ---- Public face -----------------------------------------------------------------------

HttpsClient::HttpsClient(HttpClientConfig config)
    : impl_(std::make_unique<Impl>(std::move(config))) {}
HttpsClient::~HttpsClient() = default;
void HttpsClient::async_post(HttpRequest request, std::function<void(HttpOutcome)> done) {
  impl_->async_post(std::move(request), std::move(done));
}
HttpOutcome HttpsClient::post(HttpRequest request) {
  return impl_->post(std::move(request));
}
void HttpsClient::close() {
  impl_->close();
}
HttpClientStats HttpsClient::stats() const {
  return impl_->stats();
}

}  // namespace flightlog::detail

#include "support/tls_receiver.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <future>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <type_traits>

#include "support/test_certs.hpp"
#include "uploader/gzip.hpp"

namespace flightlog::test {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto kUseTuple = net::as_tuple(net::use_awaitable);

// RST instead of FIN: the peer's next read or write fails with connection_reset.
void reset(tcp::socket& socket) {
  error_code ignored;
  socket.set_option(net::socket_base::linger(true, 0), ignored);
  socket.close(ignored);
}

// FIN without a TLS close_notify: to a TLS client this is a truncated stream.
void fin(tcp::socket& socket) {
  error_code ignored;
  socket.shutdown(tcp::socket::shutdown_send, ignored);
  socket.close(ignored);
}

template <class Stream>
constexpr bool kIsTls = !std::is_same_v<Stream, beast::tcp_stream>;

}  // namespace

std::string ReceivedRequest::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (beast::iequals(n, name)) return v;
  }
  return "";
}

struct TlsReceiver::Impl {
  // What stop() must be able to interrupt in a live session.
  struct Live {
    beast::tcp_stream* stream = nullptr;
    net::steady_timer* timer = nullptr;
  };
  struct LiveGuard {
    Impl* impl;
    Live* live;
    LiveGuard(Impl* i, Live* l) : impl(i), live(l) { impl->live.insert(live); }
    ~LiveGuard() { impl->live.erase(live); }
  };

  explicit Impl(ReceiverOptions o) : options(std::move(o)) {}

  ReceiverOptions options;
  net::io_context ioc{1};
  ssl::context ctx{ssl::context::tls_server};
  tcp::acceptor acceptor{ioc};
  std::uint16_t port = 0;

  // io thread only
  std::set<Live*> live;
  bool stopping = false;

  // any thread
  mutable std::mutex mu;
  mutable std::condition_variable cv;
  std::deque<std::pair<Reply, std::size_t>> replies;
  std::deque<std::pair<ConnectionFault, std::size_t>> connection_faults;
  Responder responder;
  std::vector<ReceivedRequest> received;
  std::size_t connections = 0;
  std::size_t closes_begun = 0;  // connections the receiver began to close after a response
  std::size_t handshakes = 0;

  std::promise<void> exited;
  std::thread thread;
  std::mutex stop_mu;
  bool joined = false;

  void configure_tls();
  net::awaitable<void> accept_loop();
  net::awaitable<void> session(tcp::socket socket, std::size_t id);
  template <class Stream>
  net::awaitable<void> serve(Stream& stream, std::size_t id, ConnectionFault fault);
  template <class Stream>
  net::awaitable<void> wait_until_peer_closes(Stream& stream);
  ConnectionFault next_connection_fault();
  Reply decide(const ReceivedRequest& request);
  ReceivedRequest record(const http::request<http::string_body>& req, std::size_t id,
                         std::size_t index);
};

void TlsReceiver::Impl::configure_tls() {
  const TestCerts& certs = test_certs();
  const CertAndKey* ck = &certs.trusted;
  switch (options.cert) {
    case ServedCert::Trusted:
      ck = &certs.trusted;
      break;
    case ServedCert::WrongHost:
      ck = &certs.wrong_host;
      break;
    case ServedCert::Expired:
      ck = &certs.expired;
      break;
    case ServedCert::Untrusted:
      ck = &certs.untrusted;
      break;
  }
  ctx.use_certificate_chain(net::buffer(ck->cert_pem));
  ctx.use_private_key(net::buffer(ck->key_pem), ssl::context::pem);
  if (options.tls_1_1_only) {
    // OpenSSL 3 refuses TLS < 1.2 at security level 1 and above; level 0 lets this
    // server offer them, so the refusal under test comes from the client's minimum.
    SSL_CTX* native = ctx.native_handle();
    SSL_CTX_set_security_level(native, 0);
    SSL_CTX_set_cipher_list(native, "DEFAULT:@SECLEVEL=0");
    SSL_CTX_set_min_proto_version(native, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(native, TLS1_1_VERSION);
  }
}

net::awaitable<void> TlsReceiver::Impl::accept_loop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(kUseTuple);
    if (stopping || !acceptor.is_open()) co_return;
    if (ec) continue;
    std::size_t id;
    {
      std::lock_guard lk(mu);
      id = ++connections;
    }
    cv.notify_all();
    net::co_spawn(ioc, session(std::move(socket), id), net::detached);
  }
}

ConnectionFault TlsReceiver::Impl::next_connection_fault() {
  std::lock_guard lk(mu);
  if (connection_faults.empty()) return ConnectionFault::None;
  auto fault = connection_faults.front().first;
  if (--connection_faults.front().second == 0) connection_faults.pop_front();
  return fault;
}

Reply TlsReceiver::Impl::decide(const ReceivedRequest& request) {
  Responder r;
  {
    std::lock_guard lk(mu);
    if (!replies.empty()) {
      Reply reply = replies.front().first;
      if (--replies.front().second == 0) replies.pop_front();
      return reply;
    }
    r = responder;
  }
  if (r) {
    if (auto reply = r(request)) return *reply;
  }
  return Reply{};
}

ReceivedRequest TlsReceiver::Impl::record(const http::request<http::string_body>& req,
                                          std::size_t id, std::size_t index) {
  ReceivedRequest rr;
  rr.method = std::string(req.method_string());
  rr.target = std::string(req.target());
  for (const auto& field : req) {
    rr.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  rr.wire_body_bytes = req.body().size();
  rr.gzipped = beast::iequals(rr.header("Content-Encoding"), "gzip");
  if (rr.gzipped) {
    try {
      rr.body = detail::gunzip(req.body());
    } catch (const std::exception& e) {
      rr.gunzip_error = e.what();
      rr.body = req.body();
    }
  } else {
    rr.body = req.body();
  }
  rr.connection = id;
  rr.index_on_connection = index;
  rr.received_at = std::chrono::steady_clock::now();
  {
    std::lock_guard lk(mu);
    received.push_back(rr);
  }
  cv.notify_all();
  return rr;
}

net::awaitable<void> TlsReceiver::Impl::session(tcp::socket socket, std::size_t id) {
  if (stopping) co_return;
  ConnectionFault fault = next_connection_fault();
  if (fault == ConnectionFault::ResetOnAccept) {
    reset(socket);
    co_return;
  }
  if (options.tls) {
    beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(socket)), ctx);
    co_await serve(stream, id, fault);
  } else {
    beast::tcp_stream stream(std::move(socket));
    co_await serve(stream, id, fault);
  }
}

template <class Stream>
net::awaitable<void> TlsReceiver::Impl::wait_until_peer_closes(Stream& stream) {
  char byte[256];
  for (;;) {
    auto [ec, n] = co_await stream.async_read_some(net::buffer(byte), kUseTuple);
    if (ec || stopping) co_return;
  }
}

template <class Stream>
net::awaitable<void> TlsReceiver::Impl::serve(Stream& stream, std::size_t id,
                                              ConnectionFault fault) {
  beast::tcp_stream& low = beast::get_lowest_layer(stream);
  net::steady_timer timer(ioc);
  Live me{&low, &timer};
  LiveGuard guard(this, &me);

  if (fault == ConnectionFault::SilentOnAccept) {
    co_await wait_until_peer_closes(low);
    co_return;
  }
  if constexpr (kIsTls<Stream>) {
    low.expires_after(std::chrono::seconds(10));
    auto [ec] = co_await stream.async_handshake(ssl::stream_base::server, kUseTuple);
    if (ec || stopping) co_return;
    low.expires_never();
    {
      std::lock_guard lk(mu);
      ++handshakes;
    }
  }
  if (fault == ConnectionFault::ResetAfterHandshake) {
    reset(low.socket());
    co_return;
  }

  beast::flat_buffer buffer;
  for (std::size_t index = 0;; ++index) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(options.max_body);
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, kUseTuple);
    if (ec || stopping) co_return;  // the client closed (or broke) the connection
    const auto& req = parser.get();
    Reply reply = decide(record(req, id, index));

    if (reply.delay.count() > 0) {
      timer.expires_after(reply.delay);
      co_await timer.async_wait(kUseTuple);
      if (stopping) co_return;
    }
    switch (reply.fault) {
      case Fault::ResetAfterRequest:
        reset(low.socket());
        co_return;
      case Fault::Hang:
        co_await wait_until_peer_closes(stream);
        co_return;
      case Fault::Truncate: {
        std::string partial = "HTTP/1.1 " + std::to_string(reply.status) +
                              " OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n" +
                              std::string(100, 'x');
        co_await net::async_write(stream, net::buffer(partial), kUseTuple);
        fin(low.socket());
        co_return;
      }
      default:
        break;
    }

    for (unsigned status : reply.interim) {
      std::string interim = "HTTP/1.1 " + std::to_string(status) + " " +
                            std::string(http::obsolete_reason(static_cast<http::status>(status))) +
                            "\r\n\r\n";
      auto [iec, in] = co_await net::async_write(stream, net::buffer(interim), kUseTuple);
      if (iec || stopping) co_return;
    }
    http::response<http::string_body> res;
    res.version(req.version());
    res.result(reply.status);
    res.set(http::field::server, "flightlog-test-receiver");
    res.set(http::field::content_type, "text/plain");
    for (const auto& [name, value] : reply.headers) res.set(name, value);
    res.body() = reply.body;
    const bool close_delimited = reply.fault == Fault::CloseDelimited;
    res.keep_alive(req.keep_alive() && !reply.connection_close && !close_delimited);
    // Without a Content-Length (or chunked coding) the body ends at the close.
    if (!close_delimited) res.prepare_payload();
    auto [wec, written] = co_await http::async_write(stream, res, kUseTuple);
    if (wec || stopping) co_return;

    auto close_begun = [&] {
      std::lock_guard lk(mu);
      ++closes_begun;
      cv.notify_all();
    };
    if (reply.fault == Fault::CloseAfterResponse || close_delimited) {
      fin(low.socket());
      close_begun();  // the FIN is sent
      co_return;
    }
    if (reply.fault == Fault::ShutdownAfterResponse || !res.keep_alive()) {
      // Counted before the TLS shutdown, which sends close_notify first thing but then
      // waits for the peer's (which an idle client never sends) before returning.
      close_begun();
      if constexpr (kIsTls<Stream>) {
        low.expires_after(std::chrono::seconds(2));
        co_await stream.async_shutdown(kUseTuple);
      }
      fin(low.socket());
      co_return;
    }
  }
}

TlsReceiver::TlsReceiver(ReceiverOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {
  Impl& im = *impl_;
  if (im.options.tls) im.configure_tls();
  tcp::endpoint ep(net::ip::make_address("127.0.0.1"), 0);
  im.acceptor.open(ep.protocol());
  im.acceptor.set_option(net::socket_base::reuse_address(true));
  im.acceptor.bind(ep);
  im.acceptor.listen();
  im.port = im.acceptor.local_endpoint().port();
  net::co_spawn(im.ioc, im.accept_loop(), net::detached);
  im.thread = std::thread([&im] {
    im.ioc.run();
    im.exited.set_value();
  });
}

TlsReceiver::~TlsReceiver() {
  stop();
}

std::uint16_t TlsReceiver::port() const {
  return impl_->port;
}

std::string TlsReceiver::url(std::string_view host, std::string_view target) const {
  return std::string(impl_->options.tls ? "https://" : "http://") + std::string(host) + ":" +
         std::to_string(impl_->port) + std::string(target);
}

void TlsReceiver::script(Reply reply, std::size_t times) {
  if (times == 0) return;
  std::lock_guard lk(impl_->mu);
  impl_->replies.emplace_back(std::move(reply), times);
}

void TlsReceiver::script_connection(ConnectionFault fault, std::size_t times) {
  if (times == 0) return;
  std::lock_guard lk(impl_->mu);
  impl_->connection_faults.emplace_back(fault, times);
}

void TlsReceiver::set_responder(Responder responder) {
  std::lock_guard lk(impl_->mu);
  impl_->responder = std::move(responder);
}

std::vector<ReceivedRequest> TlsReceiver::requests() const {
  std::lock_guard lk(impl_->mu);
  return impl_->received;
}

std::size_t TlsReceiver::request_count() const {
  std::lock_guard lk(impl_->mu);
  return impl_->received.size();
}

std::size_t TlsReceiver::connections() const {
  std::lock_guard lk(impl_->mu);
  return impl_->connections;
}

std::size_t TlsReceiver::handshakes() const {
  std::lock_guard lk(impl_->mu);
  return impl_->handshakes;
}

bool TlsReceiver::wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lk(impl_->mu);
  return impl_->cv.wait_for(lk, timeout, [&] { return impl_->received.size() >= n; });
}

bool TlsReceiver::wait_for_connections(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lk(impl_->mu);
  return impl_->cv.wait_for(lk, timeout, [&] { return impl_->connections >= n; });
}

bool TlsReceiver::wait_for_closes(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lk(impl_->mu);
  return impl_->cv.wait_for(lk, timeout, [&] { return impl_->closes_begun >= n; });
}

void TlsReceiver::stop() {
  Impl& im = *impl_;
  std::lock_guard lk(im.stop_mu);
  if (im.joined) return;
  net::post(im.ioc, [&im] {
    im.stopping = true;
    error_code ignored;
    im.acceptor.close(ignored);
    for (Impl::Live* l : im.live) {
      l->stream->close();
      l->timer->cancel();
    }
  });
  auto exited = im.exited.get_future();
  if (exited.wait_for(std::chrono::seconds(5)) != std::future_status::ready) im.ioc.stop();
  im.thread.join();
  im.joined = true;
}

// ---- BlackholeListener -------------------------------------------------------------------

BlackholeListener::BlackholeListener() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 0) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return;
  }
  port_ = ntohs(addr.sin_port);
  // Connect until a connect gets no answer: the accept queue is then full and the
  // kernel drops further SYNs.
  for (int i = 0; i < 64 && !saturated_; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    if (rc != 0 && errno != EINPROGRESS) {
      ::close(fd);
      return;
    }
    pollfd p{fd, POLLOUT, 0};
    int ready = rc == 0 ? 1 : ::poll(&p, 1, 300);
    int err = 0;
    socklen_t errlen = sizeof err;
    if (ready == 1) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen);
    if (ready == 1 && err == 0) {
      fillers_.push_back(fd);
    } else {
      ::close(fd);
      saturated_ = ready == 0;
    }
  }
}

BlackholeListener::~BlackholeListener() {
  for (int fd : fillers_) ::close(fd);
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

}  // namespace flightlog::test

// Fuzz target: what the uploader makes of a server's answer. Any bytes, as a response
// stream, go through a beast::http::response_parser<string_body> configured and driven
// as HttpsClient's exchange() does (src/uploader/https_client.cpp): a fresh parser per
// message with header_limit(kMaxResponseHeader) and body_limit(max_response_body),
// interim 1xx responses skipped (kMaxInterimResponses at most, more is malformed; 101
// ends it), a body over the limit after a complete header still a response, and so is
// a body that runs to the close when TLS reports the close as truncated (no
// close_notify); then the outcome is built as there (body kept up to kept_response_body,
// Retry-After through parse_retry_after), mapped to a PostOutcome as HttpsTransport
// does, and classified (src/uploader/uploader.hpp), for both upload formats.
//
// Checks: nothing crashes or reads out of bounds; the outcome does not depend on how
// the bytes are split into reads (whole, or in small pieces), and an end without TLS
// close_notify changes no more than body_truncated; a response's status has
// three digits, its kept body within the limit, its Retry-After >= 0; classify()
// gives None exactly for 2xx, Misconfigured for a final status outside 200..599, and a
// SentNoResponse is retryable. Runs with the
// client's default limits, and once more with tiny ones (body limit and kept body).
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "check.hpp"
#include "uploader/https_client.hpp"
#include "uploader/transport.hpp"
#include "uploader/uploader.hpp"

namespace {

namespace fd = flightlog::detail;
namespace net = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;

// A SyncReadStream over the input, `piece` bytes per read at most, then `end`: end of
// file, or stream_truncated as a TLS stream reports a close without close_notify.
class InputStream {
 public:
  InputStream(std::span<const std::uint8_t> bytes, std::size_t piece,
              error_code end = net::error::eof)
      : bytes_(bytes), piece_(piece), end_(end) {}

  template <typename MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers, error_code& ec) {
    if (pos_ == bytes_.size()) {
      ec = end_;
      return 0;
    }
    ec = {};
    const std::size_t n = std::min(piece_, bytes_.size() - pos_);
    const std::size_t copied = net::buffer_copy(buffers, net::buffer(bytes_.data() + pos_, n));
    pos_ += copied;
    return copied;
  }

  template <typename MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers) {
    error_code ec;
    const std::size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  std::span<const std::uint8_t> bytes_;
  std::size_t piece_;
  error_code end_;
  std::size_t pos_ = 0;
};

struct Outcome {
  fd::HttpOutcome http;
  bool keeps_connection = false;
};

// exchange()'s reading and outcome, over `stream`.
Outcome receive(InputStream& stream, const fd::HttpClientConfig& cfg,
                std::chrono::system_clock::time_point now) {
  Outcome out;
  boost::beast::flat_buffer buffer;
  std::optional<http::response_parser<http::string_body>> parser;
  error_code ec;
  for (int message = 0; message <= fd::kMaxInterimResponses; ++message) {
    parser.emplace();
    parser->header_limit(fd::kMaxResponseHeader);
    parser->body_limit(cfg.max_response_body);
    http::read(stream, buffer, *parser, ec);
    if (ec || !fd::is_interim_status(parser->get().result_int())) break;
  }
  const bool header_done = parser->is_header_done();
  const bool body_ends_at_close =
      ec == net::ssl::error::stream_truncated && header_done && parser->need_eof();
  const bool answered = header_done && (ec == http::error::body_limit || body_ends_at_close);
  const bool too_many_interim = !ec && fd::is_interim_status(parser->get().result_int());
  if ((ec && !answered) || too_many_interim) {
    out.http.result = fd::HttpResult::SentNoResponse;
    out.http.error = too_many_interim ? "too many interim responses" : ec.message();
    return out;
  }
  auto& res = parser->get();
  fd::HttpOutcome& o = out.http;
  o.result = fd::HttpResult::Response;
  o.status = res.result_int();
  o.body = std::move(res.body());
  if (o.body.size() > cfg.kept_response_body) {
    o.body.resize(cfg.kept_response_body);
    o.body_truncated = true;
  }
  if (auto it = res.find(http::field::retry_after); it != res.end()) {
    o.retry_after = fd::parse_retry_after(it->value(), now);
  }
  out.keeps_connection = !ec && res.keep_alive() && !res.need_eof();
  o.body_truncated = o.body_truncated || static_cast<bool>(ec);
  return out;
}

// HttpsTransport's mapping.
fd::PostOutcome to_post_outcome(const fd::HttpOutcome& o) {
  fd::PostOutcome p;
  p.kind = o.result == fd::HttpResult::Response ? fd::PostOutcome::Kind::Response
                                                : fd::PostOutcome::Kind::SentNoResponse;
  p.status = static_cast<int>(o.status);
  p.body = o.body;
  if (o.retry_after) p.retry_after = std::chrono::milliseconds(*o.retry_after);
  p.error = o.error;
  return p;
}

void check(const Outcome& got, const fd::HttpClientConfig& cfg) {
  const fd::HttpOutcome& o = got.http;
  const fd::PostOutcome p = to_post_outcome(o);
  for (bool clickhouse : {false, true}) {
    const fd::FailureClass c = fd::classify(p, clickhouse);
    if (o.result != fd::HttpResult::Response) {
      FUZZ_CHECK(c == fd::FailureClass::Retryable, "a response cut short is not retryable");
      continue;
    }
    FUZZ_CHECK((c == fd::FailureClass::None) == (o.status >= 200 && o.status < 300),
               "class None for status " + std::to_string(o.status));
    FUZZ_CHECK(c == fd::FailureClass::None || c == fd::FailureClass::Rejected ||
                   c == fd::FailureClass::Retryable || c == fd::FailureClass::Misconfigured,
               "a response classified offline or cancelled");
    if (o.status < 200 || o.status >= 600) {
      FUZZ_CHECK(c == fd::FailureClass::Misconfigured,
                 "status " + std::to_string(o.status) + " not a misconfiguration");
    }
  }
  if (o.result != fd::HttpResult::Response) {
    FUZZ_CHECK(!o.error.empty(), "a failure without an error text");
    return;
  }
  // Beast takes any three digits (000..999) as a status; classify() calls a final one
  // outside 200..599 a misconfiguration (checked above).
  FUZZ_CHECK(o.status <= 999, "status " + std::to_string(o.status));
  FUZZ_CHECK(o.body.size() <= cfg.kept_response_body, "a kept body over the limit");
  if (o.retry_after) {
    FUZZ_CHECK(o.retry_after->count() >= 0, "a negative Retry-After");
    FUZZ_CHECK(p.retry_after && p.retry_after->count() >= 0, "a Retry-After overflows in ms");
  }
}

// Equal but, when `truncated_end` says `b` ended without close_notify, for b's
// body_truncated, which may then be set where a's is not.
bool same(const Outcome& a, const Outcome& b, bool truncated_end = false) {
  const bool flag_ok = truncated_end ? b.http.body_truncated >= a.http.body_truncated
                                     : a.http.body_truncated == b.http.body_truncated;
  return a.http.result == b.http.result && a.http.status == b.http.status &&
         a.http.body == b.http.body && flag_ok && a.http.retry_after == b.http.retry_after &&
         a.keeps_connection == b.keeps_connection;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  // Half a second past a whole second, so that dates round up.
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'767'225'600)) +
                   std::chrono::milliseconds(500);

  const fd::HttpClientConfig defaults;
  InputStream whole(bytes, size + 1);
  const Outcome a = receive(whole, defaults, now);
  check(a, defaults);
  InputStream pieces(bytes, 1 + size % 7);
  const Outcome b = receive(pieces, defaults, now);
  check(b, defaults);
  FUZZ_CHECK(same(a, b), "the outcome depends on how the response is split into reads");
  // All a truncation attacker can do to a TLS stream: end it early, without close_notify.
  InputStream truncated(bytes, 1 + size % 3, net::ssl::error::stream_truncated);
  const Outcome c = receive(truncated, defaults, now);
  check(c, defaults);
  FUZZ_CHECK(same(a, c, /*truncated_end=*/true),
             "an end without close_notify changes more than body_truncated");

  fd::HttpClientConfig tiny;
  tiny.max_response_body = size % 64;
  tiny.kept_response_body = size % 16;
  InputStream again(bytes, 1 + size % 5);
  check(receive(again, tiny, now), tiny);
  return 0;
}

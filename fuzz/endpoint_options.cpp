// Fuzz target: the endpoint URL parser (src/uploader/endpoint.hpp) and the validation of
// Options (src/core/options_check.hpp), with a fuzz-derived URL and every option drawn
// from the input (any value, out-of-range enums included, or its default).
//
// Both must accept or throw flightlog::Error with a message; nothing else, no crash.
// A refused URL's message starts "invalid endpoint" and never shows its userinfo or
// query (each replaced here by a marker that must not appear in the message). An
// accepted URL: scheme https (http only where allowed), a non-empty lower-case host of
// host characters or a valid IP literal, a port in 1..65535, a target that starts with
// '/' and holds no '#', space, control or non-ASCII byte; its canonical form parses to
// the same endpoint. A refused option names an Options member and never shows the
// api_key. Accepted options hold what the uploader and writer rely on: no control
// characters in header values, a table name fit for an unquoted INSERT, positive
// timeouts and sizes, base <= cap backoff whose delays stay within the cap, and the
// endpoint (when set) accepted by the parser as the transport will call it.
#include <arpa/inet.h>
#include <fuzzer/FuzzedDataProvider.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "check.hpp"
#include "core/options_check.hpp"
#include "flightlog/error.hpp"
#include "flightlog/options.hpp"
#include "uploader/backoff.hpp"
#include "uploader/endpoint.hpp"

namespace {

namespace fd = flightlog::detail;
using flightlog::Options;

constexpr std::string_view kMark = "Zq7SecretMark";

std::size_t count(std::string_view s, std::string_view part) {
  std::size_t n = 0;
  for (auto at = s.find(part); at != std::string_view::npos; at = s.find(part, at + 1)) ++n;
  return n;
}

// `url` with its userinfo (the part of the authority after "://" before its last '@')
// replaced by kMark and its query (RFC 3986: after the first '?' that comes before any
// '#', up to the '#') by kMark@kMark (an '@' in a query must not end its masking).
// `planted` is how many marks went in.
std::string with_marks(std::string_view url, std::size_t& planted) {
  std::string out(url);
  planted = 0;
  const auto scheme_end = out.find("://");
  const std::size_t begin = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  auto end = out.find_first_of("/?#", begin);
  if (end == std::string::npos) end = out.size();
  const auto at = std::string_view(out).substr(begin, end - begin).rfind('@');
  if (at != std::string_view::npos) {
    out.replace(begin, at, kMark);
    ++planted;
  }
  const auto q = out.find('?');
  const auto hash = out.find('#');
  if (q != std::string::npos && (hash == std::string::npos || q < hash)) {
    out.replace(q + 1, (hash == std::string::npos ? out.size() : hash) - q - 1,
                std::string(kMark) + "@" + std::string(kMark));
    planted += 2;
  }
  return out;
}

bool host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

std::string bracketed(const std::string& host) {
  return host.find(':') == std::string::npos ? host : "[" + host + "]";
}

void check_accepted(const fd::ParsedEndpoint& ep, std::string_view url, bool allow_http) {
  FUZZ_CHECK(ep.scheme == "https" || (ep.scheme == "http" && allow_http),
             "scheme " + ep.scheme + " accepted");
  FUZZ_CHECK(ep.tls() == (ep.scheme == "https"), "tls()");
  FUZZ_CHECK(!ep.host.empty() && ep.port != 0, "empty host or port 0");
  if (ep.host.find(':') != std::string::npos) {
    in6_addr a{};
    FUZZ_CHECK(ep.host_is_ip && inet_pton(AF_INET6, ep.host.c_str(), &a) == 1,
               "an invalid IPv6 host: " + ep.host);
  } else {
    for (char c : ep.host) FUZZ_CHECK(host_char(c), "a host character: " + ep.host);
    in_addr a{};
    FUZZ_CHECK(ep.host_is_ip == (inet_pton(AF_INET, ep.host.c_str(), &a) == 1), "host_is_ip");
  }
  FUZZ_CHECK(!ep.target.empty() && ep.target.front() == '/', "target: " + ep.target);
  for (char c : ep.target) {
    FUZZ_CHECK(c > 0x20 && c < 0x7f && c != '#', "a target byte: " + ep.target);
  }
  FUZZ_CHECK(ep.target == "/" || url.ends_with(ep.target) ||
                 (ep.target.starts_with("/?") && url.ends_with(ep.target.substr(1))),
             "the target is not the URL's path and query: " + ep.target);
  const std::string port = std::to_string(ep.port);
  FUZZ_CHECK(ep.authority() == bracketed(ep.host) + ":" + port, "authority: " + ep.authority());
  const std::string host_header = ep.host_header();
  FUZZ_CHECK(host_header == bracketed(ep.host) || host_header == bracketed(ep.host) + ":" + port,
             "host_header: " + host_header);

  const std::string canonical = ep.scheme + "://" + ep.authority() + ep.target;
  const fd::ParsedEndpoint again = fd::parse_endpoint(canonical, allow_http);
  FUZZ_CHECK(again.scheme == ep.scheme && again.host == ep.host && again.port == ep.port &&
                 again.target == ep.target && again.host_is_ip == ep.host_is_ip,
             "the canonical form parses differently: " + canonical);
}

void check_endpoint(std::string_view url, bool allow_http) {
  std::size_t planted = 0;
  const std::string marked = with_marks(url, planted);
  const std::string plain(url);
  for (const std::string* u : {&plain, &marked}) {
    try {
      check_accepted(fd::parse_endpoint(*u, allow_http), *u, allow_http);
    } catch (const flightlog::Error& e) {
      const std::string_view what = e.what();
      FUZZ_CHECK(what.starts_with("invalid endpoint"), "message: " + std::string(what));
      // Only marks this function planted count: a mark the input already held may sit
      // anywhere, and a query's mark can overwrite the userinfo's (then the counts match
      // by accident, as with fixed-mark-already-in-input in the corpus).
      if (u == &marked && count(plain, kMark) == 0 && count(marked, kMark) == planted) {
        FUZZ_CHECK(what.find(kMark) == std::string_view::npos,
                   "a refusal shows the URL's userinfo or query: " + std::string(what));
      }
    }
  }
}

// The default, or any value (an enum: any byte, out-of-range ones included).
template <typename T>
void draw(FuzzedDataProvider& in, T& field) {
  if (!in.ConsumeBool()) return;
  if constexpr (std::is_enum_v<T>) {
    field = static_cast<T>(in.ConsumeIntegral<std::underlying_type_t<T>>());
  } else if constexpr (std::is_same_v<T, bool>) {
    field = in.ConsumeBool();
  } else if constexpr (std::is_integral_v<T>) {
    field = in.ConsumeIntegral<T>();
  } else {  // a std::chrono::duration
    field = T(in.ConsumeIntegral<typename T::rep>());
  }
}

void draw_text(FuzzedDataProvider& in, std::string& field) {
  if (in.ConsumeBool()) field = in.ConsumeRandomLengthString(256);
}

constexpr std::string_view kOptionNames[] = {
    "api_key",
    "endpoint",
    "enable_offline",
    "offline_dir",
    "offline_auto_sync",
    "offline_sync_interval",
    "offline_max_queue_size",
    "upload_format",
    "clickhouse_table",
    "clickhouse_user",
    "upload_batch_max_records",
    "upload_batch_max_bytes",
    "upload_gzip",
    "max_attempts",
    "backoff_base",
    "backoff_cap",
    "connect_timeout",
    "handshake_timeout",
    "request_timeout",
    "shutdown_timeout",
    "ca_file",
    "allow_insecure_http",
    "max_producer_threads",
    "full_policy",
    "max_record_bytes",
    "durability",
    "batch_max_records",
    "batch_max_delay",
    "writer_poll_interval",
    "periodic_sync_interval",
    "journal_initial_bytes",
    "journal_max_bytes",
};

bool names_an_option(std::string_view what) {
  constexpr std::string_view kPrefix = "invalid option ";
  if (!what.starts_with(kPrefix)) return false;
  what.remove_prefix(kPrefix.size());
  for (std::string_view name : kOptionNames) {
    if (what.starts_with(name) && what.substr(name.size()).starts_with(": ")) return true;
  }
  return false;
}

bool has_control(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

void check_options(FuzzedDataProvider& in, std::string_view url) {
  Options o;
  if (in.ConsumeBool()) o.endpoint = std::string(url);
  o.api_key = "KEY-" + in.ConsumeRandomLengthString(64);
  draw(in, o.enable_offline);
  if (in.ConsumeBool()) o.offline_dir = in.ConsumeRandomLengthString(64);
  draw(in, o.offline_auto_sync);
  draw(in, o.offline_sync_interval);
  draw(in, o.offline_max_queue_size);
  draw(in, o.upload_format);
  draw_text(in, o.clickhouse_table);
  draw_text(in, o.clickhouse_user);
  draw(in, o.upload_batch_max_records);
  draw(in, o.upload_batch_max_bytes);
  draw(in, o.upload_gzip);
  draw(in, o.max_attempts);
  draw(in, o.backoff_base);
  draw(in, o.backoff_cap);
  draw(in, o.connect_timeout);
  draw(in, o.handshake_timeout);
  draw(in, o.request_timeout);
  draw(in, o.shutdown_timeout);
  if (in.ConsumeBool()) o.ca_file = in.ConsumeRandomLengthString(64);
  draw(in, o.allow_insecure_http);
  draw(in, o.max_producer_threads);
  for (auto& p : o.full_policy) draw(in, p);
  draw(in, o.max_record_bytes);
  draw(in, o.durability);
  draw(in, o.batch_max_records);
  draw(in, o.batch_max_delay);
  draw(in, o.writer_poll_interval);
  draw(in, o.periodic_sync_interval);
  draw(in, o.journal_initial_bytes);
  draw(in, o.journal_max_bytes);

  try {
    fd::validate_options(o);
  } catch (const flightlog::Error& e) {
    const std::string_view what = e.what();
    FUZZ_CHECK(names_an_option(what), "the message names no option: " + std::string(what));
    FUZZ_CHECK(what.find(o.api_key) == std::string_view::npos, "the message shows the api_key");
    return;
  }
  using namespace std::chrono;
  FUZZ_CHECK(
      !has_control(o.api_key) && !has_control(o.clickhouse_user) && !o.clickhouse_user.empty(),
      "a header value with a control character was accepted");
  FUZZ_CHECK(!o.clickhouse_table.empty(), "an empty clickhouse_table was accepted");
  for (char c : o.clickhouse_table) {
    FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '_' || c == '.',
               "clickhouse_table '" + o.clickhouse_table + "' was accepted");
  }
  FUZZ_CHECK(!o.enable_offline || !o.offline_dir.empty(), "an empty offline_dir was accepted");
  for (auto t : {o.connect_timeout, o.handshake_timeout, o.request_timeout, o.shutdown_timeout,
                 o.periodic_sync_interval}) {
    FUZZ_CHECK(t > milliseconds(0), "a timeout or interval <= 0 was accepted");
  }
  FUZZ_CHECK(o.offline_sync_interval > seconds(0) && o.batch_max_delay > microseconds(0) &&
                 o.writer_poll_interval > microseconds(0),
             "an interval <= 0 was accepted");
  FUZZ_CHECK(o.upload_batch_max_records >= 1 && o.upload_batch_max_bytes >= 1 &&
                 o.max_attempts >= 1 && o.max_producer_threads >= 1 && o.batch_max_records >= 1 &&
                 o.max_record_bytes >= 1,
             "a count or size of 0 was accepted");
  FUZZ_CHECK(o.journal_initial_bytes <= o.journal_max_bytes, "journal sizes out of order");
  FUZZ_CHECK(milliseconds(0) < o.backoff_base && o.backoff_base <= o.backoff_cap,
             "backoff_base is not in (0, backoff_cap]");
  fd::Backoff backoff(o.backoff_base, o.backoff_cap, in.ConsumeIntegral<std::uint64_t>());
  for (int i = in.ConsumeIntegralInRange<int>(0, 80); i > 0; --i) {
    const auto d = backoff.next();
    FUZZ_CHECK(d >= milliseconds(0) && d <= o.backoff_cap, "a backoff delay beyond the cap");
  }
  if (!o.endpoint.empty()) {
    // As make_https_transport() parses it.
    try {
      check_accepted(fd::parse_endpoint(o.endpoint, o.allow_insecure_http), o.endpoint,
                     o.allow_insecure_http);
    } catch (const flightlog::Error& e) {
      FUZZ_CHECK(std::string_view(e.what()).starts_with("invalid endpoint"), e.what());
    }
  }
}

}  // namespace

// The input: the URL (a string from the front), then the rest drawn from the back.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  const std::string url = in.ConsumeRandomLengthString(2048);
  const bool allow_http = in.ConsumeBool();
  check_endpoint(url, allow_http);
  check_options(in, url);
  return 0;
}

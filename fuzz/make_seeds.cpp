// Writes the seed corpora: make_seeds <dir> fills <dir>/<target>/seed-*. Records are
// made by RecordEncoder (through the test support's encoder, as the writer lays them
// out); URLs, responses and Retry-After values are written out by hand. The fuzz
// targets that draw their input through FuzzedDataProvider get inputs laid out for it:
// strings from the front, numbers and choices from the back.
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "format/record.hpp"
#include "records.hpp"

namespace {

namespace fd = flightlog::detail;
namespace ft = flightlog::test;
using flightlog::Priority;
using flightlog::Value;
using namespace std::literals;

std::filesystem::path g_root;

void write(const std::string& target, const std::string& name, std::string_view bytes) {
  const auto dir = g_root / target;
  std::filesystem::create_directories(dir);
  std::ofstream(dir / ("seed-" + name), std::ios::binary).write(bytes.data(), bytes.size());
}

std::string_view as_text(const std::vector<std::byte>& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

void records() {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::pair<std::string, std::vector<std::byte>>> recs;
  recs.emplace_back(
      "prediction",
      ft::encode_record(
          fd::kKindPrediction, Priority::Normal, 1'767'225'600'123'456'789, "",
          {{"price", Value(101.25)}, {"qty", Value(std::int64_t{300})}, {"side", Value("buy")}},
          {{"score", Value(0.8125)}}));
  recs.emplace_back(
      "event",
      ft::encode_record(fd::kKindEvent, Priority::High, 1'767'225'601'000'000'000, "model_reloaded",
                        {{"version", Value("v2.1")}, {"warm", Value(true)}}, {}));
  recs.emplace_back("odd-values",
                    ft::encode_record(fd::kKindPrediction, Priority::Critical, -1, "",
                                      {{"nan", Value(nan)},
                                       {"inf", Value(-inf)},
                                       {"neg0", Value(-0.0)},
                                       {"min", Value(std::numeric_limits<std::int64_t>::min())},
                                       {"bad\xff utf8", Value("\xc0\xaf \xed\xa0\x80 \x01\"\\")}},
                                      {{"tiny", Value(5e-324)}}));
  recs.emplace_back("empty", ft::encode_record(fd::kKindPrediction, Priority::Low, 0, "", {}, {}));
  const auto base = recs[0].second;
  recs.emplace_back("failed",
                    fd::with_failure(base, 3, 503, "server error: 503 Service Unavailable"));
  auto truncated = base;
  truncated.resize(truncated.size() - 5);
  recs.emplace_back("truncated", truncated);
  auto bad_crc = base;
  bad_crc[4] ^= std::byte{0x01};
  recs.emplace_back("bad-crc", bad_crc);
  auto v2 = base;
  v2[0] = std::byte{2};
  recs.emplace_back("version-2", v2);
  for (const auto& [name, bytes] : recs) {
    write("record_decode", name, as_text(bytes));
    // Arbitrary bytes to the input-drawing targets, with names and strings in them.
    write("record_roundtrip", name, as_text(bytes));
    write("json_render", name, as_text(bytes));
  }
  write("json_render", "utf8",
        "journal-0123\\\x00\xff\xff\xff\xff\xff\xff\xff\xff"
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x90\x80\x80 \xe0\x80\xaf\\\x01\x02\x03"sv);
}

// An input for endpoint_options: the URL, its end, then bytes for the options (drawn
// from the back: all 0 keeps every default, all 0xff draws every option).
std::string url_input(std::string_view url, char options_byte, bool allow_http) {
  std::string in(url);
  in += "\\;";
  in.append(96, options_byte);
  in.push_back(allow_http ? '\x01' : '\x00');
  return in;
}

void urls() {
  const std::pair<const char*, const char*> kUrls[] = {
      {"https", "https://ingest.example.com/v1/records"},
      {"port-query", "https://logs.example.com:8443/v1/records?tenant=a&token=s3cret"},
      {"clickhouse", "http://127.0.0.1:8123/?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow"},
      {"ipv6", "https://[::1]:9443/ingest"},
      {"ipv4", "https://10.1.2.3/"},
      {"userinfo", "https://user:password@example.com/x"},
      {"fragment", "https://example.com/x#frag"},
      {"upper", "HTTPS://EXAMPLE.COM"},
      {"port-0", "https://example.com:0/"},
      {"port-big", "https://example.com:65536/"},
      {"port-empty", "https://example.com:/"},
      {"scheme", "ftp://example.com/"},
      {"space", "https://exa mple.com/"},
      {"zone", "https://[fe80::1%25eth0]:443/"},
      {"control", "https://example.com/\r\nX-Injected: 1"},
      {"non-ascii", "https://ex\xc3\xa4mple.com/"},
      {"query-only", "https://example.com?x=1"},
      {"no-scheme", "example.com/path"},
  };
  for (const auto& [name, url] : kUrls) {
    write("endpoint_options", name, url_input(url, '\0', true));
    write("endpoint_options", std::string(name) + "-options", url_input(url, '\xff', false));
  }
}

void responses() {
  const std::pair<const char*, const char*> kResponses[] = {
      {"200", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
      {"200-json",
       "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n"
       "\r\n{\"accepted\":2}\n"},
      {"429-seconds",
       "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 120\r\nContent-Length: 0\r\n\r\n"},
      {"503-imf",
       "HTTP/1.1 503 Service Unavailable\r\nRetry-After: Wed, 21 Oct 2026 07:28:00 GMT\r\n"
       "Content-Length: 4\r\n\r\nbusy"},
      {"503-rfc850",
       "HTTP/1.1 503 Service Unavailable\r\nRetry-After: Wednesday, 21-Oct-26 "
       "07:28:00 GMT\r\nContent-Length: 0\r\n\r\n"},
      {"503-asctime",
       "HTTP/1.1 503 Service Unavailable\r\nRetry-After: Wed Oct 21 07:28:00 2026\r\n"
       "Connection: close\r\n\r\n"},
      {"100-then-200",
       "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
      {"103-then-201",
       "HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"
       "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"},
      {"400", "HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\n\r\nbad records"},
      {"401", "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Length: 0\r\n\r\n"},
      {"301",
       "HTTP/1.1 301 Moved Permanently\r\nLocation: https://elsewhere/\r\nContent-Length: "
       "0\r\n\r\n"},
      {"http10-eof", "HTTP/1.0 200 OK\r\n\r\nbody until the connection closes"},
      {"500-close-delimited",
       "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\nCode: 60. DB::E"},
      {"102x5-then-200",
       "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
       "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
       "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
      {"cut-short", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b"},
      {"bad-status", "HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n"},
      {"101",
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"},
  };
  for (const auto& [name, text] : kResponses) write("http_response", name, text);
  // ClickHouse's answer to a row it cannot parse, chunked as it sends it.
  const std::string exception =
      "Code: 27. DB::Exception: Cannot parse input: expected '\"' before: 'x' (at row 1)\n";
  char size[16];
  std::snprintf(size, sizeof size, "%zx", exception.size());
  write("http_response", "500-clickhouse",
        "HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n"
        "X-ClickHouse-Exception-Code: 27\r\n\r\n" +
            std::string(size) + "\r\n" + exception + "\r\n0\r\n\r\n");
}

// An input for retry_after's any-text mode: the value, "now" (8 bytes), mode byte 0.
std::string retry_input(std::string_view value, std::uint64_t now_bytes) {
  std::string in(value);
  for (int i = 0; i < 8; ++i) in.push_back(static_cast<char>(now_bytes >> (8 * i)));
  in.push_back('\0');
  return in;
}

void retry_afters() {
  const std::pair<const char*, const char*> kValues[] = {
      {"seconds", "120"},
      {"blanks", " \t0 "},
      {"huge", "99999999999999999999"},
      {"imf", "Sun, 06 Nov 1994 08:49:37 GMT"},
      {"rfc850", "Sunday, 06-Nov-94 08:49:37 GMT"},
      {"asctime", "Sun Nov  6 08:49:37 1994"},
      {"future", "Fri, 31 Dec 2100 23:59:59 GMT"},
      {"negative", "-5"},
      {"fraction", "1.5"},
      {"feb-30", "Mon, 30 Feb 2026 10:00:00 GMT"},
      {"leap-second", "Wed, 31 Dec 2025 23:59:60 GMT"},
  };
  for (const auto& [name, value] : kValues) {
    write("retry_after", name, retry_input(value, 0x1234'5678'9abc'def0ULL));
  }
  // The made-date mode (last byte odd): the bytes before it pick "now", the form and
  // the instant.
  for (int form = 0; form < 3; ++form) {
    std::string in(24, static_cast<char>(0x40 + form));
    in.push_back('\x01');
    write("retry_after", "made-" + std::to_string(form), in);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_seeds <corpus dir>\n";
    return 2;
  }
  g_root = argv[1];
  records();
  urls();
  responses();
  retry_afters();
  return 0;
}

// The uploader's transport against the scriptable loopback receiver: URL parsing, gzip,
// Retry-After, and for every fault the receiver can stage, the class of the outcome
// (response / offline / sent-no-response / TLS failure / cancelled), connection reuse,
// the one-time retry of a stale kept-alive connection, timeouts, and prompt shutdown.
//
// Timing bounds are loose on purpose (a loaded 2-core machine, sanitizers): a timeout
// must not fire early and must fire within a few seconds.
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <ctime>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>

#include "flightlog/error.hpp"
#include "support/temp_dir.hpp"
#include "support/test_certs.hpp"
#include "support/tls_receiver.hpp"
#include "uploader/endpoint.hpp"
#include "uploader/gzip.hpp"
#include "uploader/https_client.hpp"

namespace fl = flightlog;
namespace d = flightlog::detail;
namespace t = flightlog::test;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using d::HttpResult;

namespace {

constexpr const char* kSecret = "sk-live-7Hq2SECRETzz91";

d::HttpClientConfig config_for(const t::TlsReceiver& receiver,
                               std::string_view host = "127.0.0.1") {
  d::HttpClientConfig c;
  c.endpoint = d::parse_endpoint(receiver.url(host), /*allow_plain_http=*/true);
  c.ca_pem = t::test_certs().ca_pem;
  // Generous: only the tests about timeouts rely on one firing, and they set their own.
  c.connect_timeout = 10s;
  c.handshake_timeout = 10s;
  c.request_timeout = 20s;
  c.shutdown_timeout = 1s;
  return c;
}

d::HttpRequest make_request(std::string body = "{\"id\":\"j-1\"}\n") {
  d::HttpRequest r;
  r.body = std::move(body);
  r.headers = {{"Authorization", std::string("Bearer ") + kSecret},
               {"Idempotency-Key", "batch-0001"}};
  return r;
}

// Every outcome in this file goes through here: the secret must never show.
d::HttpOutcome post(d::HttpsClient& client, d::HttpRequest r = make_request()) {
  d::HttpOutcome o = client.post(std::move(r));
  EXPECT_EQ(o.error.find(kSecret), std::string::npos) << o.error;
  EXPECT_EQ(o.error.find("Bearer"), std::string::npos) << o.error;
  return o;
}

std::string describe(const d::HttpOutcome& o) {
  return std::string(d::http_result_name(o.result)) + " status=" + std::to_string(o.status) +
         " error='" + o.error + "'";
}

// For the tests that run over TLS and over plain HTTP.
t::ReceiverOptions tls_or_plain(bool tls) {
  t::ReceiverOptions o;
  o.tls = tls;
  return o;
}

std::uint16_t closed_port() {
  // A port that had a listener a moment ago: connecting to it is refused.
  std::uint16_t port;
  {
    t::TlsReceiver r;
    port = r.port();
  }
  return port;
}

std::string http_date(std::chrono::system_clock::time_point tp, const char* format) {
  std::time_t tt = std::chrono::system_clock::to_time_t(tp);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

std::string ndjson(std::size_t lines) {
  std::string s;
  for (std::size_t i = 0; i < lines; ++i) {
    s += "{\"id\":\"j-" + std::to_string(i) +
         "\",\"model\":\"m\",\"score\":" + std::to_string(i % 97) + ".25}\n";
  }
  return s;
}

}  // namespace

// ---- Endpoint ----------------------------------------------------------------------------

TEST(HttpsEndpoint, ParsesHttpsWithDefaults) {
  auto ep = d::parse_endpoint("https://Example.COM", false);
  EXPECT_EQ(ep.scheme, "https");
  EXPECT_EQ(ep.host, "example.com");
  EXPECT_EQ(ep.port, 443);
  EXPECT_EQ(ep.target, "/");
  EXPECT_FALSE(ep.host_is_ip);
  EXPECT_TRUE(ep.tls());
  EXPECT_EQ(ep.host_header(), "example.com");
  EXPECT_EQ(ep.authority(), "example.com:443");
}

TEST(HttpsEndpoint, ParsesPortPathQueryAndIpLiterals) {
  auto a = d::parse_endpoint("https://127.0.0.1:8443/v1/ingest?db=x&y=1", false);
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_TRUE(a.host_is_ip);
  EXPECT_EQ(a.port, 8443);
  EXPECT_EQ(a.target, "/v1/ingest?db=x&y=1");
  EXPECT_EQ(a.host_header(), "127.0.0.1:8443");

  auto b = d::parse_endpoint("https://[::1]:9000/x", false);
  EXPECT_EQ(b.host, "::1");
  EXPECT_TRUE(b.host_is_ip);
  EXPECT_EQ(b.host_header(), "[::1]:9000");
  EXPECT_EQ(b.authority(), "[::1]:9000");

  EXPECT_EQ(d::parse_endpoint("https://h?x=1", false).target, "/?x=1");
  EXPECT_EQ(d::parse_endpoint("https://[2001:DB8::1]", false).host, "2001:db8::1");

  auto c = d::parse_endpoint("http://localhost:8123/", true);
  EXPECT_EQ(c.scheme, "http");
  EXPECT_FALSE(c.tls());
  EXPECT_EQ(c.port, 8123);
  EXPECT_EQ(d::parse_endpoint("HTTP://localhost", true).port, 80);
  // Plain http to any loopback host: by name, all of 127.0.0.0/8, and ::1.
  for (const char* url :
       {"http://127.0.0.1/", "http://127.255.0.9:81/x", "http://[::1]:80/", "http://[0:0::1]/"}) {
    EXPECT_TRUE(d::parse_endpoint(url, true).is_loopback()) << url;
  }
}

TEST(HttpsEndpoint, RefusesBadUrlsNamingTheProblem) {
  struct Case {
    std::string url;
    bool allow_http;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"", false, "empty"},
      {"localhost:443/x", false, "no scheme"},
      {"://h/", false, "no scheme"},
      {"ftp://h/", false, "unknown scheme 'ftp'"},
      {"http://h/", false, "plain http is refused"},
      // Allowed, plain http still goes to this machine only.
      {"http://h/", true, "loopback hosts only"},
      {"http://198.51.100.7/", true, "loopback hosts only"},
      {"http://127.0.0.1.example.com/", true, "loopback hosts only"},
      {"http://[::2]/", true, "loopback hosts only"},
      {"https://user:hunter2@h/", false, "credentials"},
      {"https://h:0/", false, "out of range"},
      {"https://h:70000/", false, "out of range"},
      {"https://h:4a3/", false, "not a number"},
      {"https://h:/", false, "empty port"},
      {"https:///path", false, "empty host"},
      {"https://:443/", false, "empty host"},
      {"https://h/a b", false, "space"},
      {"https://h/a\tb", false, "control character"},
      {"https://h/a\r\nX: y", false, "control character"},
      {"https://h/\xc3\xa9", false, "non-ASCII"},
      {"https://h/#frag", false, "fragment"},
      {"https://[::1/", false, "']'"},
      {"https://[zz::1]/", false, "invalid IPv6"},
      {"https://[::1]x/", false, "after the IPv6"},
      {"https://h%41/", false, "character '%'"},
  };
  for (const auto& c : cases) {
    try {
      d::parse_endpoint(c.url, c.allow_http);
      ADD_FAILURE() << "accepted: " << c.url;
    } catch (const fl::Error& e) {
      std::string what = e.what();
      EXPECT_NE(what.find(c.expected), std::string::npos) << c.url << " -> " << what;
      EXPECT_EQ(what.find("hunter2"), std::string::npos) << what;
    }
  }
}

TEST(HttpsEndpoint, MasksUserinfoAndQueryInMessages) {
  try {
    d::parse_endpoint("https://h/ingest?password=hunter2&x=a b", false);
    ADD_FAILURE();
  } catch (const fl::Error& e) {
    std::string what = e.what();
    EXPECT_EQ(what.find("hunter2"), std::string::npos) << what;
    EXPECT_NE(what.find("https://h/ingest?***"), std::string::npos) << what;
  }
  // Each URL is refused; the secret parts (upper case, or "admin"/"hun"/"ter2") must not
  // show. A password with an unescaped '/', '?' or '#' must not end the userinfo early
  // (all before the last '@' is masked); an '@' in the query must not end its masking
  // (all after the scheme goes); nor may a "://" further on pass for the scheme's end.
  for (const char* url :
       {"https://admin:hunter2@h:443/x", "https://admin:hun/ter2@h/x", "https://admin:hun?ter2@h/x",
        "https://admin:hun#ter2@h/x", "https://admin:hun@ter2@h/x",
        "http://ch.internal:8123/?user=u&password=s3cr@tPASS",
        "https://h/x?password=abc@defSECRET#frag", "http:/u:PASS?SECRET@x#/h.http://127.0.0.1/",
        "h.example:8443/?password=SECRET&next=https://y", "admin:SECRET@h/?r=https://x"}) {
    try {
      d::parse_endpoint(url, false);
      ADD_FAILURE() << "accepted: " << url;
    } catch (const fl::Error& e) {
      const std::string what = e.what();
      for (const char* secret : {"admin", "hun", "ter2", "PASS", "SECRET"}) {
        EXPECT_EQ(what.find(secret), std::string::npos) << secret << " in: " << what;
      }
      std::string lowered = what;  // parts of a URL may be shown lower-cased
      for (char& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      EXPECT_EQ(lowered.find("secret"), std::string::npos) << what;
    }
  }
}

// ---- gzip --------------------------------------------------------------------------------

TEST(HttpsGzip, RoundTrips) {
  std::string big = ndjson(20000);  // ~1 MB
  std::string noise(256 << 10, '\0');
  std::uint64_t x = 88172645463325252ULL;
  for (char& c : noise) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    c = static_cast<char>(x);
  }
  for (const std::string* s : {&big, &noise}) {
    for (int level : {1, 9}) {
      std::string z = d::gzip_compress(*s, level);
      ASSERT_GE(z.size(), 18u);
      EXPECT_EQ(static_cast<unsigned char>(z[0]), 0x1f);
      EXPECT_EQ(static_cast<unsigned char>(z[1]), 0x8b);
      EXPECT_EQ(d::gunzip(z), *s);
    }
  }
  EXPECT_LT(d::gzip_compress(big, 1).size(), big.size() / 4);
  EXPECT_EQ(d::gunzip(d::gzip_compress("", 1)), "");
  EXPECT_EQ(d::gunzip(d::gzip_compress("hello", -1)), "hello");
}

TEST(HttpsGzip, RejectsDamagedTruncatedTrailingAndBombs) {
  std::string z = d::gzip_compress(ndjson(1000), 6);
  EXPECT_THROW(d::gunzip("not gzip at all"), fl::Error);
  EXPECT_THROW(d::gunzip(""), fl::Error);
  EXPECT_THROW(d::gunzip(z.substr(0, z.size() / 2)), fl::Error);
  EXPECT_THROW(d::gunzip(z + "trailing"), fl::Error);
  std::string damaged = z;
  damaged[damaged.size() / 2] ^= 0x55;
  EXPECT_THROW(d::gunzip(damaged), fl::Error);
  std::string zeros = d::gzip_compress(std::string(8 << 20, '\0'), 9);
  try {
    d::gunzip(zeros, 1 << 20);
    ADD_FAILURE();
  } catch (const fl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("beyond"), std::string::npos) << e.what();
  }
  EXPECT_THROW(d::gzip_compress("x", 42), fl::Error);
}

// ---- Retry-After -------------------------------------------------------------------------

TEST(HttpsRetryAfter, ParsesSecondsAndEveryDateForm) {
  auto now = std::chrono::system_clock::now();
  EXPECT_EQ(d::parse_retry_after("120", now), 120s);
  EXPECT_EQ(d::parse_retry_after(" 7 ", now), 7s);
  EXPECT_EQ(d::parse_retry_after("0", now), 0s);
  auto later = now + 90s;
  for (const char* format :
       {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
    std::string date = http_date(later, format);
    auto v = d::parse_retry_after(date, now);
    ASSERT_TRUE(v.has_value()) << date;
    EXPECT_GE(*v, 89s) << date;
    EXPECT_LE(*v, 91s) << date;
  }
  EXPECT_EQ(d::parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), 0s);
  // Dates beyond what the clock's nanoseconds hold (found by fuzzing): the longest and
  // the shortest delay, not a wrapped-around one.
  const auto far = d::parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now);
  ASSERT_TRUE(far.has_value());
  EXPECT_GT(*far, std::chrono::seconds{std::int64_t{200} * 365 * 86400});
  EXPECT_EQ(d::parse_retry_after("Wed, 04 Feb 1739 00:00:00 GMT", now), 0s);
  for (const char* bad : {"", "soon", "-5", "1.5", "Sun, 31 Feb 2030 08:49:37 GMT",
                          "Sun, 06 Nov 1994 25:49:37 GMT", "Sun, 06 Nov 1994"}) {
    EXPECT_FALSE(d::parse_retry_after(bad, now).has_value()) << bad;
  }
}

// ---- Requests and responses ----------------------------------------------------------------

TEST(HttpsClient, PostsAndTheReceiverRecordsEverything) {
  t::TlsReceiver receiver;
  d::HttpsClient client(config_for(receiver));
  auto o = post(client);
  ASSERT_EQ(o.result, HttpResult::Response) << describe(o);
  EXPECT_EQ(o.status, 200u);
  EXPECT_EQ(o.body, "ok");
  EXPECT_FALSE(o.reused_connection);
  auto reqs = receiver.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].target, "/ingest");
  EXPECT_EQ(reqs[0].header("authorization"), std::string("Bearer ") + kSecret);
  EXPECT_EQ(reqs[0].header("Idempotency-Key"), "batch-0001");
  EXPECT_EQ(reqs[0].header("Content-Type"), "application/x-ndjson");
  EXPECT_EQ(reqs[0].header("Host"), "127.0.0.1:" + std::to_string(receiver.port()));
  EXPECT_EQ(reqs[0].body, "{\"id\":\"j-1\"}\n");
  EXPECT_FALSE(reqs[0].gzipped);
}

TEST(HttpsClient, HostNameEndpointResolvesAndVerifiesTheDnsName) {
  t::TlsReceiver receiver;
  d::HttpsClient client(config_for(receiver, "localhost"));
  auto r = make_request();
  r.target = "/other?x=1";
  auto o = post(client, r);
  ASSERT_EQ(o.result, HttpResult::Response) << describe(o);
  EXPECT_EQ(receiver.requests().at(0).target, "/other?x=1");
  EXPECT_EQ(receiver.requests().at(0).header("Host"),
            "localhost:" + std::to_string(receiver.port()));
}

TEST(HttpsClient, KeepAliveReusesOneConnection) {
  t::TlsReceiver receiver;
  d::HttpsClient client(config_for(receiver));
  for (int i = 0; i < 5; ++i) {
    auto o = post(client);
    ASSERT_EQ(o.result, HttpResult::Response) << describe(o);
    EXPECT_EQ(o.reused_connection, i > 0);
  }
  EXPECT_EQ(receiver.connections(), 1u);
  EXPECT_EQ(receiver.handshakes(), 1u);
  auto reqs = receiver.requests();
  ASSERT_EQ(reqs.size(), 5u);
  EXPECT_EQ(reqs[4].index_on_connection, 4u);
  auto s = client.stats();
  EXPECT_EQ(s.connections_opened, 1u);
  EXPECT_EQ(s.requests_sent, 5u);
  EXPECT_EQ(s.stale_retries, 0u);
  EXPECT_TRUE(s.connected);
  client.close();
  EXPECT_FALSE(client.stats().connected);
}

TEST(HttpsClient, InterimResponsesAreSkipped) {
  t::TlsReceiver receiver;
  auto r = t::Reply::status_only(202);
  r.interim = {100, 102, 103, 103};  // as many as the client reads past
  receiver.script(r);
  d::HttpsClient client(config_for(receiver));
  auto o = post(client);
  ASSERT_EQ(o.result, HttpResult::Response) << describe(o);
  EXPECT_EQ(o.status, 202u);
  EXPECT_EQ(o.body, "status 202");
  EXPECT_EQ(post(client).status, 200u);  // the connection is still in step
  EXPECT_EQ(receiver.connections(), 1u);
}

TEST(HttpsClient, LargeResponseHeadersAreReadUpToTheLimit) {
  t::TlsReceiver receiver;
  t::Reply padded;
  padded.headers = {{"X-Pad", std::string(9000, 'p')}};  // over Beast's default 8 KiB
  receiver.script(padded);
  t::Reply oversized;  // over the client's 64 KiB (one field holds at most 64 KiB)
  oversized.headers = {{"X-Pad-1", std::string(40000, 'p')}, {"X-Pad-2", std::string(40000, 'q')}};
  receiver.script(oversized);
  d::HttpsClient client(config_for(receiver));
  auto a = post(client);
  ASSERT_EQ(a.result, HttpResult::Response) << describe(a);
  EXPECT_EQ(a.status, 200u);
  EXPECT_EQ(a.body, "ok");
  auto b = post(client);
  EXPECT_EQ(b.result, HttpResult::SentNoResponse) << describe(b);
  EXPECT_NE(b.error.find("malformed response from 127.0.0.1:"), std::string::npos) << b.error;
  EXPECT_NE(b.error.find("header limit exceeded (64 KiB)"), std::string::npos) << b.error;
  // The rest of that answer is left unread: the next request goes over a fresh connection.
  auto c = post(client);
  ASSERT_EQ(c.result, HttpResult::Response) << describe(c);
  EXPECT_FALSE(c.reused_connection);
  EXPECT_EQ(receiver.connections(), 2u);
}

TEST(HttpsClient, BodyThatRunsToACloseWithoutCloseNotifyIsAResponse) {
  // No Content-Length, Connection: close, then FIN without close_notify. The status and
  // headers came whole; only the body's end is unconfirmed, which body_truncated says.
  for (bool tls : {true, false}) {
    t::TlsReceiver receiver(tls_or_plain(tls));
    receiver.script(t::Reply::with_fault(t::Fault::CloseDelimited));
    auto error = t::Reply::status_only(500);
    error.body = "Code: 241. DB::Exception: Memory limit exceeded";
    error.fault = t::Fault::CloseDelimited;
    receiver.script(error);
    d::HttpsClient client(config_for(receiver));
    auto ok = post(client);
    ASSERT_EQ(ok.result, HttpResult::Response) << describe(ok);
    EXPECT_EQ(ok.status, 200u);
    EXPECT_EQ(ok.body, "ok");
    EXPECT_EQ(ok.body_truncated, tls);  // plain HTTP has no close_notify to miss
    // Not an error status's reason either: the body read is kept.
    auto failed = post(client);
    ASSERT_EQ(failed.result, HttpResult::Response) << describe(failed);
    EXPECT_EQ(failed.status, 500u);
    EXPECT_EQ(failed.body, error.body);
    EXPECT_EQ(failed.body_truncated, tls);
    EXPECT_FALSE(failed.reused_connection);  // the closed connection was not reused
    EXPECT_FALSE(failed.stale_retried);
    EXPECT_EQ(receiver.connections(), 2u);
  }
}

TEST(HttpsClient, AsyncPostsCompleteOnceEachInSubmissionOrder) {
  t::TlsReceiver receiver;
  d::HttpsClient client(config_for(receiver));
  std::mutex mu;
  std::vector<int> order;
  std::promise<void> all_done;
  constexpr int kCount = 20;
  for (int i = 0; i < kCount; ++i) {
    client.async_post(make_request(std::to_string(i)), [&, i](d::HttpOutcome o) {
      EXPECT_EQ(o.result, HttpResult::Response) << describe(o);
      std::lock_guard lk(mu);
      order.push_back(i);
      if (order.size() == kCount) all_done.set_value();
    });
  }
  ASSERT_EQ(all_done.get_future().wait_for(20s), std::future_status::ready);
  std::lock_guard lk(mu);
  for (int i = 0; i < kCount; ++i) EXPECT_EQ(order[i], i);
  auto reqs = receiver.requests();
  ASSERT_EQ(reqs.size(), std::size_t{kCount});
  for (int i = 0; i < kCount; ++i) EXPECT_EQ(reqs[i].body, std::to_string(i));
  EXPECT_EQ(receiver.connections(), 1u);
}

TEST(HttpsClient, GzipBodyArrivesIntact) {
  t::TlsReceiver receiver;
  d::HttpsClient client(config_for(receiver));
  std::string body = ndjson(20000);
  auto r = make_request(body);
  r.gzip = true;
  auto o = post(client, r);
  ASSERT_EQ(o.result, HttpResult::Response) << describe(o);
  auto req = receiver.requests().at(0);
  EXPECT_TRUE(req.gzipped);
  EXPECT_EQ(req.gunzip_error, "");
  EXPECT_EQ(req.header("Content-Encoding"), "gzip");
  EXPECT_LT(req.wire_body_bytes, body.size() / 4);
  EXPECT_EQ(req.body, body);
}

TEST(HttpsClient, LargeBodyOfManyMegabytes) {
  t::TlsReceiver receiver;
  auto cfg = config_for(receiver);
  cfg.request_timeout = 60s;  // sanitizers on a loaded machine are slow
  d::HttpsClient client(cfg);
  std::string body = ndjson(160000);  // ~8 MB
  auto o = post(client, make_request(body));
  ASSERT_EQ(o.result, HttpResult::Response) << describe(o);
  EXPECT_EQ(receiver.requests().at(0).body.size(), body.size());
}

TEST(HttpsClient, EveryStatusIsAResponseAndRetryAfterIsParsed) {
  t::TlsReceiver receiver;
  auto with_retry = [](unsigned status, std::string value) {
    auto r = t::Reply::status_only(status);
    r.headers = {{"Retry-After", std::move(value)}};
    return r;
  };
  receiver.script(t::Reply::status_only(500));
  receiver.script(with_retry(503, "3"));
  receiver.script(with_retry(
      429, http_date(std::chrono::system_clock::now() + 60s, "%a, %d %b %Y %H:%M:%S GMT")));
  receiver.script(t::Reply::status_only(400));
  receiver.script(t::Reply::status_only(413));
  receiver.script(t::Reply::status_only(401));
  receiver.script(with_retry(503, "whenever"));
  d::HttpsClient client(config_for(receiver));
  std::vector<d::HttpOutcome> outcomes;
  for (int i = 0; i < 7; ++i) outcomes.push_back(post(client));
  const unsigned expected[] = {500, 503, 429, 400, 413, 401, 503};
  for (int i = 0; i < 7; ++i) {
    ASSERT_EQ(outcomes[i].result, HttpResult::Response) << describe(outcomes[i]);
    EXPECT_EQ(outcomes[i].status, expected[i]);
    EXPECT_EQ(outcomes[i].error, "");
  }
  EXPECT_EQ(outcomes[0].body, "status 500");
  EXPECT_FALSE(outcomes[0].retry_after.has_value());
  EXPECT_EQ(outcomes[1].retry_after, 3s);
  ASSERT_TRUE(outcomes[2].retry_after.has_value());
  EXPECT_GE(*outcomes[2].retry_after, 55s);
  EXPECT_LE(*outcomes[2].retry_after, 61s);
  EXPECT_FALSE(outcomes[6].retry_after.has_value());  // unparsable: ignored
  EXPECT_EQ(receiver.connections(), 1u);              // error statuses keep the connection
}

TEST(HttpsClient, ResponderChoosesTheStatusFromTheBody) {
  t::TlsReceiver receiver;
  receiver.set_responder([](const t::ReceivedRequest& req) -> std::optional<t::Reply> {
    if (req.body.find("POISON") == std::string::npos) return std::nullopt;
    auto r = t::Reply::status_only(400);
    r.body = "record j-2 is bad";
    return r;
  });
  d::HttpsClient client(config_for(receiver));
  EXPECT_EQ(post(client, make_request("{\"id\":\"j-1\"}\n")).status, 200u);
  auto bad = post(client, make_request("{\"id\":\"j-2\",\"x\":\"POISON\"}\n"));
  EXPECT_EQ(bad.status, 400u);
  EXPECT_EQ(bad.body, "record j-2 is bad");
  auto r = make_request("POISON");
  r.gzip = true;  // the receiver decides on the gunzipped body
  EXPECT_EQ(post(client, r).status, 400u);
}

TEST(HttpsClient, ResponseBodiesAreCapped) {
  t::TlsReceiver receiver;
  auto big = t::Reply::status_only(500);
  big.body = std::string(200 << 10, 'e');
  receiver.script(big);
  auto huge = t::Reply::status_only(500);
  huge.body = std::string(3 << 20, 'h');
  receiver.script(huge);
  auto cfg = config_for(receiver);
  cfg.max_response_body = 1 << 20;
  d::HttpsClient client(cfg);

  auto a = post(client);
  ASSERT_EQ(a.result, HttpResult::Response) << describe(a);
  EXPECT_EQ(a.body.size(), std::size_t{64} << 10);
  EXPECT_TRUE(a.body_truncated);

  // Beyond max_response_body: still the status, but the connection is given up.
  auto b = post(client);
  ASSERT_EQ(b.result, HttpResult::Response) << describe(b);
  EXPECT_EQ(b.status, 500u);
  EXPECT_TRUE(b.body_truncated);

  auto c = post(client);
  ASSERT_EQ(c.result, HttpResult::Response) << describe(c);
  EXPECT_FALSE(c.reused_connection);
  EXPECT_EQ(receiver.connections(), 2u);
}

TEST(HttpsClient, PlainHttpWorksWhenTheEndpointAllowsIt) {
  t::ReceiverOptions opts;
  opts.tls = false;
  t::TlsReceiver receiver(opts);
  d::HttpsClient client(config_for(receiver));
  ASSERT_FALSE(client.stats().connections_opened);
  for (int i = 0; i < 3; ++i) {
    auto o = post(client);
    ASSERT_EQ(o.result, HttpResult::Response) << describe(o);
  }
  EXPECT_EQ(receiver.connections(), 1u);
  EXPECT_EQ(receiver.requests().at(2).header("Authorization"), std::string("Bearer ") + kSecret);
}

TEST(HttpsClient, CaFileIsTrusted) {
  fl::test::TempDir tmp;
  auto path = tmp / "ca.pem";
  std::ofstream(path) << t::test_certs().ca_pem;
  t::TlsReceiver receiver;
  auto cfg = config_for(receiver);
  cfg.ca_pem.clear();
  cfg.ca_file = path.string();
  d::HttpsClient client(cfg);
  auto o = post(client);
  EXPECT_EQ(o.result, HttpResult::Response) << describe(o);
}

TEST(HttpsClient, BadConfigurationThrowsNamingIt) {
  t::TlsReceiver receiver;
  auto cfg = config_for(receiver);
  cfg.ca_file = "/nonexistent/flightlog-ca.pem";
  try {
    d::HttpsClient client(cfg);
    ADD_FAILURE();
  } catch (const fl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/flightlog-ca.pem"), std::string::npos);
  }
  cfg = config_for(receiver);
  cfg.ca_pem = "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n";
  EXPECT_THROW(d::HttpsClient{cfg}, fl::Error);
  cfg = config_for(receiver);
  cfg.request_timeout = 0ms;
  EXPECT_THROW(d::HttpsClient{cfg}, fl::Error);
}

TEST(HttpsClient, RefusesInjectedOrReservedHeadersWithoutQuotingValues) {
  t::TlsReceiver receiver;
  d::HttpsClient client(config_for(receiver));
  auto r = make_request();
  r.headers.emplace_back("X-Api-Key", std::string(kSecret) + "\r\nX-Injected: 1");
  try {
    client.async_post(r, [](d::HttpOutcome) {});
    ADD_FAILURE();
  } catch (const fl::Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("X-Api-Key"), std::string::npos) << what;
    EXPECT_EQ(what.find(kSecret), std::string::npos) << what;
  }
  r = make_request();
  r.headers.emplace_back("Content-Length", "5");
  EXPECT_THROW(client.post(r), fl::Error);
  r = make_request();
  r.headers.emplace_back("Bad Name", "x");
  EXPECT_THROW(client.post(r), fl::Error);
  EXPECT_EQ(receiver.request_count(), 0u);
}

// ---- Faults: each lands in its class ---------------------------------------------------------

TEST(HttpsFaults, ConnectionRefusedIsOffline) {
  d::HttpClientConfig cfg;
  cfg.endpoint =
      d::parse_endpoint("https://127.0.0.1:" + std::to_string(closed_port()) + "/", false);
  cfg.ca_pem = t::test_certs().ca_pem;
  d::HttpsClient client(cfg);
  auto o = post(client);
  EXPECT_EQ(o.result, HttpResult::Offline) << describe(o);
  EXPECT_NE(o.error.find("cannot connect to 127.0.0.1:"), std::string::npos) << o.error;
  EXPECT_EQ(client.stats().requests_sent, 0u);
}

TEST(HttpsFaults, ResetOnAcceptIsOffline) {
  t::TlsReceiver receiver;
  receiver.script_connection(t::ConnectionFault::ResetOnAccept);
  d::HttpsClient client(config_for(receiver));
  auto o = post(client);
  EXPECT_EQ(o.result, HttpResult::Offline) << describe(o);
  EXPECT_EQ(client.stats().requests_sent, 0u);
  // The next connection is served normally.
  EXPECT_EQ(post(client).result, HttpResult::Response);
}

TEST(HttpsFaults, ResetBeforeTheRequestIsReadIsSentNoResponse) {
  t::TlsReceiver receiver;
  receiver.script_connection(t::ConnectionFault::ResetAfterHandshake);
  d::HttpsClient client(config_for(receiver));
  auto o = post(client);
  EXPECT_EQ(o.result, HttpResult::SentNoResponse) << describe(o);
  EXPECT_FALSE(o.stale_retried);  // a fresh connection is never retried here
  EXPECT_EQ(receiver.request_count(), 0u);
}

TEST(HttpsFaults, ResetAfterTheRequestIsSentNoResponse) {
  t::TlsReceiver receiver;
  receiver.script(t::Reply::with_fault(t::Fault::ResetAfterRequest));
  d::HttpsClient client(config_for(receiver));
  auto o = post(client);
  EXPECT_EQ(o.result, HttpResult::SentNoResponse) << describe(o);
  EXPECT_NE(o.error.find("lost after the request was sent"), std::string::npos) << o.error;
  EXPECT_EQ(receiver.request_count(), 1u);
  EXPECT_EQ(client.stats().stale_retries, 0u);
}

TEST(HttpsFaults, TruncatedResponseIsSentNoResponse) {
  for (bool tls : {true, false}) {
    t::TlsReceiver receiver(tls_or_plain(tls));
    receiver.script(t::Reply::with_fault(t::Fault::Truncate));
    d::HttpsClient client(config_for(receiver));
    auto o = post(client);
    EXPECT_EQ(o.result, HttpResult::SentNoResponse) << describe(o);
    EXPECT_NE(o.error.find("cut short"), std::string::npos) << o.error;
    EXPECT_EQ(o.status, 0u);
    // Even on a kept-alive connection a cut-short response is not "stale": bytes came.
    auto again = post(client);
    EXPECT_EQ(again.result, HttpResult::Response) << describe(again);
    receiver.script(t::Reply::with_fault(t::Fault::Truncate));
    auto reused = post(client);
    EXPECT_EQ(reused.result, HttpResult::SentNoResponse) << describe(reused);
    EXPECT_FALSE(reused.stale_retried);
  }
}

TEST(HttpsFaults, EndlessInterimResponsesAreMalformedAndEndTheConnection) {
  t::TlsReceiver receiver;
  t::Reply processing;
  processing.interim = std::vector<unsigned>(5, 102);  // one more than the client reads past
  receiver.script(processing);
  receiver.script(t::Reply::status_only(400));
  d::HttpsClient client(config_for(receiver));
  auto first = post(client);
  EXPECT_EQ(first.result, HttpResult::SentNoResponse) << describe(first);
  EXPECT_EQ(first.status, 0u);  // not a final 102, not an acknowledgement
  EXPECT_NE(first.error.find("malformed response"), std::string::npos) << first.error;
  EXPECT_NE(first.error.find("interim (1xx)"), std::string::npos) << first.error;
  // The 200 that came after them is never read as the answer to the next request.
  auto second = post(client);
  ASSERT_EQ(second.result, HttpResult::Response) << describe(second);
  EXPECT_EQ(second.status, 400u);
  EXPECT_FALSE(second.reused_connection);
  EXPECT_FALSE(second.stale_retried);
  EXPECT_EQ(receiver.connections(), 2u);
  EXPECT_EQ(receiver.request_count(), 2u);
}

class HttpsStale : public ::testing::TestWithParam<t::Fault> {};

TEST_P(HttpsStale, StaleKeptAliveConnectionIsReplacedTransparently) {
  for (bool tls : {true, false}) {
    t::TlsReceiver receiver(tls_or_plain(tls));
    receiver.script(t::Reply::with_fault(GetParam()));  // answers, then closes
    d::HttpsClient client(config_for(receiver));
    auto first = post(client);
    ASSERT_EQ(first.result, HttpResult::Response) << describe(first);
    // Let the close reach the client: the receiver's thread may be slow to send it on a
    // loaded machine, and the client can only see a close that arrived.
    ASSERT_TRUE(receiver.wait_for_closes(1, 10s));
    std::this_thread::sleep_for(300ms);  // a close_notify is sent just after the count

    auto second = post(client);
    ASSERT_EQ(second.result, HttpResult::Response) << describe(second);
    EXPECT_TRUE(second.stale_retried);
    EXPECT_FALSE(second.reused_connection);  // the retry went over a fresh one
    EXPECT_EQ(client.stats().stale_retries, 1u);
    EXPECT_EQ(client.stats().connections_opened, 2u);
    EXPECT_EQ(receiver.connections(), 2u);
    EXPECT_EQ(receiver.request_count(), 2u);  // the stale attempt never reached it
    EXPECT_FALSE(second.resent_after_write);  // found closed before it was written
  }
}

INSTANTIATE_TEST_SUITE_P(CloseKinds, HttpsStale,
                         ::testing::Values(t::Fault::CloseAfterResponse,
                                           t::Fault::ShutdownAfterResponse),
                         [](const auto& info) {
                           return info.param == t::Fault::CloseAfterResponse ? "Fin"
                                                                             : "CloseNotify";
                         });

TEST(HttpsFaults, StaleRetryHappensOnlyOnce) {
  t::TlsReceiver receiver;
  receiver.script(t::Reply::with_fault(t::Fault::CloseAfterResponse));
  receiver.script(t::Reply::with_fault(t::Fault::ResetAfterRequest));  // hits the retry
  d::HttpsClient client(config_for(receiver));
  ASSERT_EQ(post(client).result, HttpResult::Response);
  std::this_thread::sleep_for(100ms);
  auto o = post(client);
  EXPECT_EQ(o.result, HttpResult::SentNoResponse) << describe(o);
  EXPECT_TRUE(o.stale_retried);
  EXPECT_EQ(client.stats().stale_retries, 1u);
  EXPECT_EQ(receiver.request_count(), 2u);
}

TEST(HttpsFaults, ResetWithoutAnswerOnAReusedConnectionIsResentOnce) {
  // Indistinguishable from a stale connection, so it is resent: the receiver sees the
  // request twice. This is why batches must be idempotent (stable record ids).
  t::TlsReceiver receiver;
  receiver.script(t::Reply{});
  receiver.script(t::Reply::with_fault(t::Fault::ResetAfterRequest));
  d::HttpsClient client(config_for(receiver));
  ASSERT_EQ(post(client).result, HttpResult::Response);
  auto o = post(client, make_request("second"));
  EXPECT_EQ(o.result, HttpResult::Response) << describe(o);
  EXPECT_TRUE(o.stale_retried);
  EXPECT_TRUE(o.resent_after_write);  // the first copy was written whole
  auto reqs = receiver.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[1].body, "second");
  EXPECT_EQ(reqs[2].body, "second");
}

// ---- Timeouts and shutdown ------------------------------------------------------------------

// Posts once on a client whose timeout under test is 400 ms: the post must fail as
// `result`, with an error naming `reason`, not before the timeout and well before the
// 4 s or more it would take without it.
void expect_times_out(d::HttpsClient& client, HttpResult result, std::string_view reason) {
  auto start = Clock::now();
  auto o = post(client);
  auto took = Clock::now() - start;
  EXPECT_EQ(o.result, result) << describe(o);
  EXPECT_NE(o.error.find(reason), std::string::npos) << o.error;
  EXPECT_GE(took, 380ms);
  EXPECT_LT(took, 4s);
}

TEST(HttpsTimeouts, SlowOrSilentResponseTimesOutAsSentNoResponse) {
  for (auto fault : {t::Fault::None, t::Fault::Hang}) {
    t::TlsReceiver receiver;
    auto reply = t::Reply::with_fault(fault);
    if (fault == t::Fault::None) reply.delay = 5s;
    receiver.script(reply);
    auto cfg = config_for(receiver);
    cfg.request_timeout = 400ms;
    d::HttpsClient client(cfg);
    expect_times_out(client, HttpResult::SentNoResponse, "request_timeout");
    // The connection was given up; the next request gets a fresh one.
    EXPECT_EQ(post(client).result, HttpResult::Response);
    EXPECT_EQ(receiver.connections(), 2u);
  }
}

TEST(HttpsTimeouts, SilentHandshakeTimesOutAsOffline) {
  t::TlsReceiver receiver;
  receiver.script_connection(t::ConnectionFault::SilentOnAccept);
  auto cfg = config_for(receiver);
  cfg.handshake_timeout = 400ms;
  d::HttpsClient client(cfg);
  expect_times_out(client, HttpResult::Offline, "timed out");
}

TEST(HttpsTimeouts, BlackholedConnectTimesOutAsOffline) {
  t::BlackholeListener blackhole;
  if (!blackhole.saturated()) GTEST_SKIP() << "this network stack answers every SYN";
  d::HttpClientConfig cfg;
  cfg.endpoint = d::parse_endpoint("https://127.0.0.1:" + std::to_string(blackhole.port()), false);
  cfg.ca_pem = t::test_certs().ca_pem;
  cfg.connect_timeout = 400ms;
  d::HttpsClient client(cfg);
  expect_times_out(client, HttpResult::Offline, "timed out");
}

// close()/destruction while a request is stuck: must return promptly, with Cancelled.
void expect_prompt_close(d::HttpClientConfig cfg, const std::function<void()>& wait_stuck) {
  cfg.connect_timeout = 30s;
  cfg.handshake_timeout = 30s;
  cfg.request_timeout = 30s;
  cfg.shutdown_timeout = 1s;
  auto client = std::make_unique<d::HttpsClient>(cfg);
  std::promise<d::HttpOutcome> stuck, queued;
  client->async_post(make_request(), [&](d::HttpOutcome o) { stuck.set_value(std::move(o)); });
  client->async_post(make_request(), [&](d::HttpOutcome o) { queued.set_value(std::move(o)); });
  wait_stuck();
  auto start = Clock::now();
  client.reset();
  auto took = Clock::now() - start;
  EXPECT_LT(took, 2500ms);
  auto a = stuck.get_future().get();
  auto b = queued.get_future().get();
  EXPECT_EQ(a.result, HttpResult::Cancelled) << describe(a);
  EXPECT_EQ(b.result, HttpResult::Cancelled) << describe(b);
}

TEST(HttpsTimeouts, DestructorIsPromptWhileTheServerNeverAnswers) {
  t::TlsReceiver receiver;
  receiver.script(t::Reply::with_fault(t::Fault::Hang));
  expect_prompt_close(config_for(receiver),
                      [&] { ASSERT_TRUE(receiver.wait_for_requests(1, 10s)); });
}

TEST(HttpsTimeouts, DestructorIsPromptDuringASilentHandshake) {
  t::TlsReceiver receiver;
  receiver.script_connection(t::ConnectionFault::SilentOnAccept);
  expect_prompt_close(config_for(receiver),
                      [&] { ASSERT_TRUE(receiver.wait_for_connections(1, 10s)); });
}

TEST(HttpsTimeouts, DestructorIsPromptDuringABlackholedConnect) {
  t::BlackholeListener blackhole;
  if (!blackhole.saturated()) GTEST_SKIP() << "this network stack answers every SYN";
  d::HttpClientConfig cfg;
  cfg.endpoint = d::parse_endpoint("https://127.0.0.1:" + std::to_string(blackhole.port()), false);
  cfg.ca_pem = t::test_certs().ca_pem;
  expect_prompt_close(cfg, [] { std::this_thread::sleep_for(200ms); });
}

TEST(HttpsTimeouts, CloseWithAnIdleConnectionIsBounded) {
  t::TlsReceiver receiver;
  d::HttpsClient client(config_for(receiver));
  ASSERT_EQ(post(client).result, HttpResult::Response);
  auto start = Clock::now();
  client.close();
  EXPECT_LT(Clock::now() - start, 2500ms);
  client.close();  // idempotent
  // After close: Cancelled at once, on the calling thread.
  auto o = client.post(make_request());
  EXPECT_EQ(o.result, HttpResult::Cancelled);
  bool called = false;
  client.async_post(make_request(), [&](d::HttpOutcome x) {
    called = true;
    EXPECT_EQ(x.result, HttpResult::Cancelled);
  });
  EXPECT_TRUE(called);
  EXPECT_EQ(receiver.request_count(), 1u);
}

// ---- TLS refusals ---------------------------------------------------------------------------

struct TlsCase {
  t::ServedCert cert;
  bool tls_1_1_only;
  const char* host;
  bool trust_test_ca;
  std::vector<std::string> any_of;  // the error names the reason
};

void expect_tls_failure(const TlsCase& c) {
  t::ReceiverOptions opts;
  opts.cert = c.cert;
  opts.tls_1_1_only = c.tls_1_1_only;
  t::TlsReceiver receiver(opts);
  auto cfg = config_for(receiver, c.host);
  if (!c.trust_test_ca) cfg.ca_pem.clear();
  d::HttpsClient client(cfg);
  auto o = post(client);
  EXPECT_EQ(o.result, HttpResult::TlsFailure) << describe(o);
  bool named = false;
  for (const auto& s : c.any_of) named = named || o.error.find(s) != std::string::npos;
  EXPECT_TRUE(named) << o.error;
  EXPECT_EQ(receiver.request_count(), 0u);
  EXPECT_EQ(client.stats().requests_sent, 0u);
}

TEST(HttpsTls, WrongHostIsRefused) {
  expect_tls_failure({t::ServedCert::WrongHost, false, "127.0.0.1", true, {"IP address mismatch"}});
  expect_tls_failure({t::ServedCert::WrongHost, false, "localhost", true, {"hostname mismatch"}});
}

TEST(HttpsTls, ExpiredCertificateIsRefused) {
  expect_tls_failure({t::ServedCert::Expired, false, "localhost", true, {"expired"}});
}

TEST(HttpsTls, UntrustedCertificateIsRefused) {
  expect_tls_failure(
      {t::ServedCert::Untrusted, false, "127.0.0.1", true, {"self-signed", "self signed"}});
  // The test CA is not among the system's CAs.
  expect_tls_failure({t::ServedCert::Trusted, false, "localhost", false, {"local issuer"}});
}

TEST(HttpsTls, ServerLimitedToTls11IsRefused) {
  expect_tls_failure({t::ServedCert::Trusted, true, "localhost", true, {"protocol", "version"}});
}

TEST(HttpsTls, Tls11ReceiverDoesServeATls11Client) {
  // The control for the test above: the receiver really speaks TLS 1.1, so the refusal
  // there comes from the client's TLS 1.2 minimum, not from a broken server.
  t::ReceiverOptions opts;
  opts.tls_1_1_only = true;
  t::TlsReceiver receiver(opts);
  net::io_context ioc;
  ssl::context ctx(ssl::context::tls_client);
  SSL_CTX_set_security_level(ctx.native_handle(), 0);
  SSL_CTX_set_cipher_list(ctx.native_handle(), "DEFAULT:@SECLEVEL=0");
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_VERSION);
  SSL_CTX_set_max_proto_version(ctx.native_handle(), TLS1_1_VERSION);
  ctx.set_verify_mode(ssl::verify_none);
  ssl::stream<net::ip::tcp::socket> stream(ioc, ctx);
  stream.next_layer().connect({net::ip::make_address("127.0.0.1"), receiver.port()});
  boost::system::error_code ec;
  stream.handshake(ssl::stream_base::client, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(SSL_version(stream.native_handle()), TLS1_1_VERSION);
  stream.shutdown(ec);
}

TEST(HttpsTls, VerifyPeerOffAcceptsAnyCertificate) {
  t::ReceiverOptions opts;
  opts.cert = t::ServedCert::Untrusted;
  t::TlsReceiver receiver(opts);
  auto cfg = config_for(receiver, "localhost");
  cfg.verify_peer = false;
  cfg.ca_pem.clear();
  d::HttpsClient client(cfg);
  EXPECT_EQ(post(client).result, HttpResult::Response);
}

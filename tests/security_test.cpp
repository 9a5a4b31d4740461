// The security review, as tests:
// - the api_key leaves memory only in its request header: not in any file the client
//   writes, not in flightlog-dump's output, not in a status text, not in an error;
// - TLS refusals (expired certificate, wrong host name, untrusted CA, a server that
//   speaks only TLS 1.0/1.1): nothing sent, no attempt counted, and the status says why;
// - the journal directory: links and directories others can write refused, created 0700
//   with files 0600 whatever the umask.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "flightlog/flightlog.hpp"
#include "support/checks.hpp"
#include "support/journal_read.hpp"
#include "support/process.hpp"
#include "support/strings.hpp"
#include "support/temp_dir.hpp"
#include "support/test_certs.hpp"
#include "support/test_options.hpp"
#include "support/tls_receiver.hpp"

namespace fl = flightlog;
namespace ft = flightlog::test;
using ft::cat;
using ft::contains;
using ft::error_of;
using ft::mode_of;
using namespace std::chrono_literals;

namespace {

// Distinctive, and made of letters a record id or a hex journal id never holds, so any
// 8-byte piece of it found somewhere is a leak, not a coincidence.
constexpr std::string_view kApiKey = "flk_QzRwMnXpVtLsKjHgYfDcBq_7Wm2Zr9Tu4Ny";
constexpr std::size_t kPiece = 8;

// "" when `text` holds no piece of the key, else where the first piece is, with what
// surrounds it (printable bytes only: `text` may be a binary file). Pieces, not only the
// whole key: a text cut short in the middle of the key leaks its start.
std::string leak_in(std::string_view text) {
  for (std::size_t at = 0; at + kPiece <= kApiKey.size(); ++at) {
    const std::size_t found = text.find(kApiKey.substr(at, kPiece));
    if (found == std::string_view::npos) continue;
    const std::size_t from = found < 60 ? 0 : found - 60;
    std::string context(text.substr(from, 120 + kPiece));
    for (char& c : context) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7E) c = '.';
    }
    return cat("key bytes ", std::to_string(at), "..", std::to_string(at + kPiece), " at offset ",
               std::to_string(found), ": ", context);
  }
  return {};
}

#define EXPECT_NO_KEY(text, where) EXPECT_EQ(leak_in(text), "") << "in " << (where)

// flightlog-dump on `dir` in every form it prints (records as NDJSON, a table and CSV;
// --stats as text and JSON; --verify): no piece of the key in any of it. Returns the
// NDJSON records.
std::string dump_without_key(const std::filesystem::path& dir) {
  const std::vector<std::vector<std::string>> forms = {
      {},          {"--format", "table"},           {"--format", "csv"},
      {"--stats"}, {"--stats", "--format", "json"}, {"--verify"}};
  std::string ndjson;
  for (const auto& args : forms) {
    const auto r = ft::run_dump(dir, args);
    std::string form = "flightlog-dump";
    for (const auto& a : args) form = cat(form, " ", a);
    EXPECT_EQ(r.exit_code, 0) << form << ": " << r.err;
    EXPECT_NO_KEY(r.out, form);
    EXPECT_NO_KEY(r.err, cat(form, " (stderr)"));
    if (args.empty()) ndjson = r.out;
  }
  return ndjson;
}

class Security : public ::testing::Test {
 protected:
  std::filesystem::path ca_file() { return ft::ca_file_in(tmp_.path()); }

  fl::Options options_for(const std::string& url, const std::filesystem::path& dir) {
    fl::Options o = ft::blocking_options(dir);
    o.endpoint = url;
    o.api_key = std::string(kApiKey);
    o.ca_file = ca_file();
    o.offline_auto_sync = false;
    o.backoff_base = 20ms;
    o.backoff_cap = 200ms;
    o.request_timeout = 2000ms;
    o.connect_timeout = 1000ms;
    o.handshake_timeout = 1000ms;
    return o;
  }

  // Logs `count` records; those with n % 10 == 3 carry "bad": true.
  static void log_records(fl::Client& c, int count) {
    for (int n = 0; n < count; ++n) {
      ASSERT_EQ(c.log_prediction({{"n", n}, {"bad", n % 10 == 3}}, {{"p", 0.25}},
                                 n % 2 == 0 ? fl::Priority::High : fl::Priority::Normal),
                fl::LogResult::Ok);
    }
    c.flush();
  }

  // Every text field of the status.
  void keep_status(const fl::Client& c) {
    const auto st = c.get_offline_status();
    texts_.push_back(cat("last_error: ", st.last_error));
    texts_.push_back(cat("connection_state: ", st.connection_state));
    texts_.push_back(cat("journal_id: ", st.journal_id));
  }

  ft::TempDir tmp_;
  std::vector<std::string> texts_;  // every status and error text seen
};

// ---- The api_key --------------------------------------------------------------------------

TEST_F(Security, ApiKeyIsSentInItsHeaderAndAppearsNowhereElse) {
  const auto dir = tmp_ / "journal";
  // A server that echoes the credential back in its error bodies, as some do.
  const std::string echo = cat("invalid credentials 'Bearer ", kApiKey, "' for this request");
  {
    ft::TlsReceiver rx;
    ft::Reply server_error = ft::Reply::status_only(500);
    server_error.body = echo;
    rx.script(server_error);  // retryable: an attempt on each record
    ft::Reply unauthorized = ft::Reply::status_only(401);
    unauthorized.body = echo;
    rx.script(unauthorized);  // misconfigured: no attempt
    rx.set_responder([&](const ft::ReceivedRequest& req) -> std::optional<ft::Reply> {
      if (!contains(req.body, "\"bad\":true")) return std::nullopt;
      ft::Reply rejected = ft::Reply::status_only(400);
      rejected.body = cat("bad record; key ", kApiKey);
      return rejected;
    });
    fl::Client c(options_for(rx.url(), dir));
    log_records(c, 40);
    for (int pass = 0; pass < 3; ++pass) {
      (void)c.sync_offline_queue();
      keep_status(c);
    }
    const auto st = c.get_offline_status();
    EXPECT_EQ(st.failed_count, 4u);  // n = 3, 13, 23, 33
    EXPECT_EQ(st.queue_size, 0u);
    EXPECT_GE(st.failed_total, 4u);

    // The receiver did get the key, in the Authorization header: the searches below
    // look for something that was really there.
    const auto requests = rx.requests();
    ASSERT_GE(requests.size(), 3u);
    for (const auto& req : requests) {
      EXPECT_EQ(req.header("Authorization"), cat("Bearer ", kApiKey));
      EXPECT_NO_KEY(req.target, "the request target");
      EXPECT_NO_KEY(req.body, "a request body");
    }
  }
  // The failed records are kept with the server's answer as their reason: masked.
  const std::string failed = dump_without_key(dir);
  EXPECT_EQ(ft::split_lines(failed).size(), 4u) << failed;
  EXPECT_TRUE(contains(failed, "\"state\":\"failed\"")) << failed;
  EXPECT_TRUE(contains(failed, "bad record; key ***")) << failed;

  // Restarted, the failed records back in the queue, shipped to a server whose
  // certificate names another host, then to nothing at all, then as ClickHouse rows to a
  // server that echoes the key in its 500s.
  {
    ft::ReceiverOptions wrong;
    wrong.cert = ft::ServedCert::WrongHost;
    ft::TlsReceiver rx(wrong);
    fl::Client c(options_for(rx.url(), dir));
    EXPECT_EQ(c.retry_failed(), 4u);
    (void)c.sync_offline_queue();
    keep_status(c);
    EXPECT_EQ(c.get_offline_status().connection_state, "tls-failure");
  }
  {
    std::string gone_url;
    {
      ft::TlsReceiver gone;
      gone_url = gone.url();
    }
    fl::Client c(options_for(gone_url, dir));
    (void)c.sync_offline_queue();
    keep_status(c);
  }
  {
    ft::TlsReceiver rx;
    ft::Reply server_error = ft::Reply::status_only(500);
    server_error.body = cat("Code: 516. DB::Exception: ", kApiKey, ": Authentication failed");
    rx.script(server_error);
    fl::Options o = options_for(rx.url(), dir);
    o.upload_format = fl::UploadFormat::ClickHouse;
    fl::Client c(o);
    (void)c.sync_offline_queue();
    keep_status(c);
    const auto requests = rx.requests();
    ASSERT_FALSE(requests.empty());
    EXPECT_EQ(requests[0].header("X-ClickHouse-Key"), kApiKey);
  }

  // Every file the client wrote, byte for byte.
  std::size_t files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    ++files;
    EXPECT_NO_KEY(ft::read_whole_file(e.path()), e.path().string());
  }
  EXPECT_GE(files, 3u);  // data.mdb, lock.mdb, flightlog.lock

  // The dump of it: the records carry the last answer (ClickHouse's 500), masked.
  const std::string last = dump_without_key(dir);
  EXPECT_EQ(ft::split_lines(last).size(), 4u) << last;
  EXPECT_TRUE(contains(last, "DB::Exception: ***")) << last;

  // Every status text seen on the way. The servers' echoes did reach the status, masked:
  // the 500 and the 401 of the first receiver, and ClickHouse's 500.
  const auto seen = [&](const std::string& text) {
    return std::find(texts_.begin(), texts_.end(), text) != texts_.end();
  };
  EXPECT_TRUE(seen("last_error: HTTP 500: invalid credentials 'Bearer ***' for this request"));
  EXPECT_TRUE(seen("last_error: HTTP 401: invalid credentials 'Bearer ***' for this request"));
  EXPECT_TRUE(seen("last_error: HTTP 500: Code: 516. DB::Exception: ***: Authentication failed"));
  for (const auto& text : texts_) EXPECT_NO_KEY(text, "a status field");
}

TEST_F(Security, AnEchoedKeyCutByTheReasonsLengthLimitIsStillMasked) {
  // The reason kept with a failed record is the first 200 characters of the server's
  // answer. Wherever the echoed key falls, even across that cut, none of it is kept.
  const auto dir = tmp_ / "journal";
  ft::TlsReceiver rx;
  std::vector<std::string> answers;
  for (std::size_t pad : {150, 170, 180, 185, 190, 195, 200}) {
    answers.push_back(cat(std::string(pad, '.'), kApiKey));
  }
  // Twice: masking the first moves the second forward.
  answers.push_back(cat(kApiKey, std::string(170, '.'), kApiKey, std::string(100, '.')));
  for (const auto& body : answers) {
    ft::Reply rejected = ft::Reply::status_only(400);
    rejected.body = body;
    rx.script(rejected);
  }
  fl::Options o = options_for(rx.url(), dir);
  o.upload_batch_max_records = 1;  // one request, and one scripted answer, per record
  fl::Client c(o);
  log_records(c, static_cast<int>(answers.size()));
  EXPECT_EQ(c.sync_offline_queue().failed, answers.size());
  EXPECT_EQ(rx.request_count(), answers.size());
  c.flush();
  (void)dump_without_key(dir);
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    EXPECT_NO_KEY(ft::read_whole_file(e.path()), e.path().string());
  }
}

TEST_F(Security, AKeyOfAsterisksIsMaskedOnceAndTheUploaderGoesOn) {
  // The mask is "***": a key of one to three asterisks is found again inside its own
  // mask, which must not keep the uploader replacing it forever.
  const auto dir = tmp_ / "journal";
  ft::TlsReceiver rx;
  ft::Reply rejected = ft::Reply::status_only(400);
  rejected.body = "rejected: ** *** *";
  rx.script(rejected, 3);
  // Each occurrence of the key, left to right, is replaced by one "***", and the search
  // goes on after that mask, never inside it: so "*" makes each of the six asterisks
  // three, "**" masks the first pair and the first two of "***", and "***" stays itself.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"*", "HTTP 400: rejected: ****** ********* ***"},
      {"**", "HTTP 400: rejected: *** **** *"},
      {"***", "HTTP 400: rejected: ** *** *"}};
  for (const auto& [key, reason] : cases) {
    ft::TempDir journal;
    fl::Options o = options_for(rx.url(), journal / "j");
    o.api_key = key;
    {
      fl::Client c(o);
      log_records(c, 1);
      EXPECT_EQ(c.sync_offline_queue().failed, 1u) << key;
    }
    // The failed record keeps the masked answer as its reason.
    const auto dump = ft::run_dump(journal / "j", {"--state", "failed"});
    EXPECT_EQ(dump.exit_code, 0) << dump.err;
    const auto lines = ft::split_lines(dump.out);
    ASSERT_EQ(lines.size(), 1u) << key << ": " << dump.out;
    EXPECT_TRUE(contains(lines[0], cat("\"reason\":\"", reason, "\""))) << key << ": " << lines[0];
  }
}

TEST_F(Security, ErrorsAboutBadOptionsDoNotQuoteTheKey) {
  std::vector<std::string> errors;
  const auto dir = tmp_ / "journal";
  const auto refused = [&](const std::function<void(fl::Options&)>& spoil) {
    fl::Options o = options_for("https://127.0.0.1:9/ingest", dir);
    spoil(o);
    errors.push_back(error_of([&] { fl::Client c(o); }));
  };
  // The key itself refused (it would break the header).
  refused([](fl::Options& o) { o.api_key = cat(kApiKey, "\r\nX-Injected: 1"); });
  refused([](fl::Options& o) { o.api_key = cat("\t", kApiKey); });
  // The key pasted into the endpoint instead.
  refused([](fl::Options& o) { o.endpoint = cat("https://user:", kApiKey, "@127.0.0.1/x"); });
  refused([](fl::Options& o) { o.endpoint = cat("ftp://127.0.0.1/x?token=", kApiKey); });
  refused([](fl::Options& o) { o.endpoint = cat("http://127.0.0.1/x?token=", kApiKey); });
  refused([](fl::Options& o) { o.endpoint = cat("https://127.0.0.1:99999/x?token=", kApiKey); });
  // Other options wrong while the key is set.
  refused([](fl::Options& o) { o.max_attempts = 0; });
  refused([](fl::Options& o) { o.clickhouse_table = "no such table!"; });
  refused([](fl::Options& o) {
    o.enable_offline = false;
    o.endpoint.clear();
  });
  refused([&](fl::Options& o) {
    std::filesystem::create_directory(tmp_ / "real");
    std::filesystem::create_directory_symlink(tmp_ / "real", tmp_ / "link");
    o.offline_dir = tmp_ / "link";
  });
  {
    fl::Client owner(options_for("https://127.0.0.1:9/ingest", dir));
    refused([](fl::Options&) {});  // the directory is taken
  }
  for (const auto& e : errors) {
    EXPECT_FALSE(e.empty());
    EXPECT_NO_KEY(e, "an error");
  }
}

// ---- TLS refusals -------------------------------------------------------------------------

struct RefusalCase {
  const char* name;
  ft::ServedCert cert;
  bool tls_1_1_only;
  const char* host;
  bool trust_test_ca;               // else the system's CAs only
  std::vector<std::string> any_of;  // one of these says why
};

void PrintTo(const RefusalCase& c, std::ostream* os) {
  *os << c.name;
}

class TlsRefusal : public Security, public ::testing::WithParamInterface<RefusalCase> {};

TEST_P(TlsRefusal, NothingIsSentNoAttemptIsCountedAndTheStatusSaysWhy) {
  const RefusalCase& c = GetParam();
  ft::ReceiverOptions ro;
  ro.cert = c.cert;
  ro.tls_1_1_only = c.tls_1_1_only;
  ft::TlsReceiver rx(ro);
  const auto dir = tmp_ / "journal";
  fl::Options o = options_for(rx.url(c.host), dir);
  if (!c.trust_test_ca) o.ca_file.clear();
  fl::Client client(o);
  log_records(client, 6);
  for (int pass = 0; pass < 2; ++pass) {
    const auto r = client.sync_offline_queue();
    EXPECT_EQ(r.synced, 0u);
    EXPECT_EQ(r.failed, 0u);
  }
  const auto st = client.get_offline_status();
  EXPECT_EQ(st.connection_state, "tls-failure");
  EXPECT_TRUE(contains(st.last_error, "TLS")) << st.last_error;
  bool says_why = false;
  for (const auto& reason : c.any_of) says_why = says_why || contains(st.last_error, reason);
  EXPECT_TRUE(says_why) << st.last_error;
  EXPECT_NO_KEY(st.last_error, "last_error");
  EXPECT_EQ(st.queue_size, 6u);
  EXPECT_EQ(st.failed_count, 0u);
  EXPECT_GE(st.consecutive_failures, 2);
  EXPECT_EQ(rx.request_count(), 0u);  // nothing reached an unverified peer
  client.flush();
  for (const auto& rec : ft::read_journal(dir)) EXPECT_EQ(rec.attempts, 0) << rec.seq;
}

INSTANTIATE_TEST_SUITE_P(
    Security, TlsRefusal,
    ::testing::Values(RefusalCase{"ExpiredCertificate",
                                  ft::ServedCert::Expired,
                                  false,
                                  "localhost",
                                  true,
                                  {"certificate has expired"}},
                      RefusalCase{"WrongHostName",
                                  ft::ServedCert::WrongHost,
                                  false,
                                  "localhost",
                                  true,
                                  {"hostname mismatch"}},
                      RefusalCase{"WrongIpAddress",
                                  ft::ServedCert::WrongHost,
                                  false,
                                  "127.0.0.1",
                                  true,
                                  {"IP address mismatch"}},
                      RefusalCase{"SelfSigned",
                                  ft::ServedCert::Untrusted,
                                  false,
                                  "localhost",
                                  true,
                                  {"self-signed", "self signed"}},
                      RefusalCase{"CaNotAmongTheSystems",
                                  ft::ServedCert::Trusted,
                                  false,
                                  "localhost",
                                  false,
                                  {"unable to get local issuer certificate"}},
                      RefusalCase{"ServerSpeaksOnlyTls10And11",
                                  ft::ServedCert::Trusted,
                                  true,
                                  "localhost",
                                  true,
                                  {"protocol version", "unsupported protocol"}}),
    [](const ::testing::TestParamInfo<RefusalCase>& info) { return info.param.name; });

// ---- The journal directory ----------------------------------------------------------------

TEST(JournalDirectorySecurity, LinksAreRefusedWhereverTheyPoint) {
  ft::TempDir tmp;
  std::filesystem::create_directory(tmp / "real");
  std::filesystem::permissions(tmp / "real", std::filesystem::perms::owner_all);
  std::filesystem::create_directory_symlink(tmp / "real", tmp / "to-dir");
  std::filesystem::create_directory_symlink(tmp / "missing", tmp / "dangling");
  std::filesystem::create_symlink("loop", tmp / "loop");
  for (const char* name : {"to-dir", "dangling", "loop"}) {
    for (const std::string& path : {(tmp / name).string(), cat((tmp / name).string(), "/"),
                                    cat((tmp / name).string(), "//")}) {
      const std::string err = error_of([&] { fl::Client c(ft::test_options(path)); });
      EXPECT_TRUE(contains(err, "symbolic link")) << path << ": " << err;
    }
  }
  // Nothing was made where the links point.
  EXPECT_TRUE(std::filesystem::is_empty(tmp / "real"));
  EXPECT_FALSE(std::filesystem::exists(tmp / "missing"));
}

TEST(JournalDirectorySecurity, DirectoriesOthersCanWriteAreRefusedEvenSticky) {
  ft::TempDir tmp;
  // 1777 is how /tmp is: sticky, but anyone may still add files to it.
  for (unsigned mode : {01777u, 01770u, 0722u, 0730u, 0703u}) {
    const auto dir = tmp / cat("d", std::to_string(mode));
    std::filesystem::create_directory(dir);
    ASSERT_EQ(chmod(dir.c_str(), mode), 0);
    const std::string err = error_of([&] { fl::Client c(ft::test_options(dir)); });
    EXPECT_TRUE(contains(err, "writable by group or others")) << mode << ": " << err;
    EXPECT_TRUE(std::filesystem::is_empty(dir)) << mode;
  }
}

TEST(JournalDirectorySecurity, PrivateModesWhateverTheUmaskAndAcrossUseAndReopen) {
  ft::TempDir tmp;
  const auto dir = tmp / "journal";
  const mode_t old_umask = umask(0);
  for (int round = 0; round < 2; ++round) {
    fl::Client c(ft::test_options(dir));
    for (int i = 0; i < 2000; ++i) ASSERT_EQ(c.log_event("e", {{"i", i}}), fl::LogResult::Ok);
    c.flush();
    (void)c.cleanup_offline_queue(std::chrono::days{0});
    c.flush();
  }
  umask(old_umask);
  EXPECT_EQ(mode_of(dir), 0700u);
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    ++files;
    EXPECT_TRUE(e.is_regular_file()) << e.path();
    EXPECT_EQ(mode_of(e.path()), 0600u) << e.path();
  }
  EXPECT_EQ(files, 3u);  // data.mdb, lock.mdb, flightlog.lock: nothing else
  // An existing directory that others may read but not write is accepted, and what
  // flightlog creates in it is still private.
  const auto readable = tmp / "readable";
  std::filesystem::create_directory(readable);
  ASSERT_EQ(chmod(readable.c_str(), 0755), 0);
  { fl::Client c(ft::test_options(readable)); }
  for (const auto& e : std::filesystem::directory_iterator(readable)) {
    EXPECT_EQ(mode_of(e.path()), 0600u) << e.path();
  }
}

}  // namespace

// Full disk and unresponsive networks.
//
// The journal's filesystem running out of space is stood in for by a small
// journal_max_bytes: mounting a size-limited tmpfs or a loop device needs root, which the
// test machine does not give. LMDB reports both the same way to flightlog (the map
// cannot hold the batch), so the paths under test are the same.
//
// The network cases run a Client against a listener that accepts TCP connections and
// never says anything, a TLS receiver that answers each request an hour late, and a host
// name that cannot resolve: repeated sync attempts leave memory and threads bounded, and
// the destructor returns within the configured timeouts.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>

#include "flightlog/flightlog.hpp"
#include "support/journal_read.hpp"
#include "support/temp_dir.hpp"
#include "support/test_certs.hpp"
#include "support/test_options.hpp"
#include "support/tls_receiver.hpp"

namespace fl = flightlog;
namespace ft = flightlog::test;
using namespace std::chrono_literals;

namespace {

void log_numbered(fl::Client& c, std::int64_t from, std::int64_t to) {
  const std::string pad(300, 'p');
  for (std::int64_t n = from; n < to; ++n) {
    ASSERT_EQ(c.log_prediction({{"n", n}, {"pad", std::string_view(pad)}}, {{"p", 1.0}}),
              fl::LogResult::Ok);
    if ((n + 1) % 500 == 0) c.flush();  // batches of about 500: most fit, a few do not
  }
  c.flush();
}

constexpr std::int64_t kFirst = 20'000;  // ~8 MB of records for a 2 MiB map
constexpr std::int64_t kSecond = 1'000;

std::uint64_t other_drops(const fl::DropCounts& d) {
  std::uint64_t sum = d.too_large + d.invalid + d.closed + d.journal_error + d.cleaned_up;
  for (auto q : d.queue_full) sum += q;
  for (auto e : d.evicted) sum += e;
  return sum;
}

// Fills the journal to journal_max_bytes: what does not fit is dropped and counted as
// journal_full, and what was committed decodes, once each.
void fill_journal(fl::Client& c, const fl::Options& o, std::uint64_t& committed) {
  log_numbered(c, 0, kFirst);
  const auto s = c.get_offline_status();
  EXPECT_GT(s.dropped.journal_full, 0u) << "the journal never filled: the test proves nothing";
  EXPECT_GT(s.committed_total, 0u);
  EXPECT_EQ(s.committed_total + s.dropped.journal_full, static_cast<std::uint64_t>(kFirst));
  EXPECT_EQ(other_drops(s.dropped), 0u);
  EXPECT_LE(s.journal_map_bytes, o.journal_max_bytes);
  EXPECT_EQ(s.last_journal_error, "journal is full at journal_max_bytes (2097152 bytes)");
  committed = s.committed_total;
}

// Every record in the journal decodes, none twice; returns their n.
std::set<std::int64_t> journal_ns(const std::filesystem::path& dir) {
  std::set<std::int64_t> ns;
  for (const auto& r : ft::read_journal(dir)) {
    EXPECT_TRUE(r.error.empty()) << "record " << r.seq << ": " << r.error;
    std::int64_t n = -1;
    for (const auto& f : r.inputs)
      if (f.name == "n") n = f.i;
    EXPECT_TRUE(ns.insert(n).second) << "n=" << n << " twice";
  }
  return ns;
}

// A field of /proc/self/status, in its unit (kB for VmRSS and VmSize).
long proc_status(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
  }
  return -1;
}

fl::Options small_journal(const std::filesystem::path& dir) {
  fl::Options o = ft::blocking_options(dir);
  o.journal_initial_bytes = std::size_t{1} << 20;
  o.journal_max_bytes = std::size_t{2} << 20;
  o.offline_max_queue_size = 0;  // only the map limit bounds the journal
  return o;
}

}  // namespace

TEST(FullDisk, JournalFullDropsAreCountedAndCommittedRecordsStayIntact) {
  ft::TempDir tmp;
  const auto dir = tmp / "journal";
  const fl::Options o = small_journal(dir);
  std::uint64_t committed = 0;
  {
    fl::Client c(o);
    fill_journal(c, o, committed);
  }
  EXPECT_EQ(journal_ns(dir).size(), committed);
}

// Once cleanup_offline_queue empties a journal that reached journal_max_bytes, logging
// goes on by itself: the next records are committed, none dropped. (The journal keeps
// 1/8 of the map free of records, so deletes always find pages to copy into.)
TEST(FullDisk, RecoversOnItsOwnOnceSpaceReturns) {
  ft::TempDir tmp;
  const auto dir = tmp / "journal";
  const fl::Options o = small_journal(dir);
  std::uint64_t committed = 0;
  {
    fl::Client c(o);
    fill_journal(c, o, committed);
    const auto s = c.get_offline_status();
    EXPECT_EQ(c.cleanup_offline_queue(0s), committed);
    log_numbered(c, kFirst, kFirst + kSecond);
    const auto after = c.get_offline_status();
    EXPECT_EQ(after.committed_total, committed + kSecond);
    EXPECT_EQ(after.dropped.journal_full, s.dropped.journal_full);
    EXPECT_EQ(after.queue_size, static_cast<std::size_t>(kSecond));
  }
  const auto ns = journal_ns(dir);
  EXPECT_EQ(ns.size(), static_cast<std::size_t>(kSecond));
  if (!ns.empty()) {
    EXPECT_EQ(*ns.begin(), kFirst);
    EXPECT_EQ(*ns.rbegin(), kFirst + kSecond - 1);
  }
}

// An address-space limit (ulimit -v, a container's) can refuse the larger map a
// journal grows into. LMDB unmaps the journal before it maps it again larger, so a
// failed growth would leave it without a map; the journal maps it again at its old size
// and goes on as a full journal: what does not fit is dropped and counted, the status
// says why, and nothing committed is lost. The limit is set in a child process, where it
// binds alone; the sanitizers reserve terabytes of address space and cannot run under one.
TEST(FullDisk, AMapThatCannotGrowIsAFullJournal) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizers' shadow memory does not fit under an address-space limit";
#endif
  ft::TempDir tmp;
  const auto dir = tmp / "journal";
  const auto report = tmp / "report";
  fl::Options o = small_journal(dir);
  o.journal_initial_bytes = std::size_t{32} << 20;
  o.journal_max_bytes = std::size_t{1} << 30;
  constexpr std::int64_t kLogged = 120'000;  // ~40 MB of records: more than 32 MiB holds
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int code = 2;
    try {
      fl::Client c(o);
      log_numbered(c, 0, 100);  // threads and buffers exist before the limit
      // Growing to 64 MiB needs 32 MiB more than the process has; mapping the old 32 MiB
      // again fits in the room the unmapping gave back. The margins are wide both ways:
      // the process's own allocations come and go by a few MiB.
      const rlim_t limit = static_cast<rlim_t>(proc_status("VmSize")) * 1024 + (8u << 20);
      rlimit lim{};
      if (::getrlimit(RLIMIT_AS, &lim) == 0 && lim.rlim_max != RLIM_INFINITY &&
          lim.rlim_max < limit) {
        std::_Exit(4);  // a lower hard limit is already in force
      }
      lim = {limit, limit};
      if (::setrlimit(RLIMIT_AS, &lim) != 0) std::_Exit(3);
      log_numbered(c, 100, kLogged);
      const auto s = c.get_offline_status();
      // The map keeps 1/8 free, as at journal_max_bytes: deletes still work, and what
      // they free takes records again (growing is tried again only 10 s later).
      const std::size_t cleaned = c.cleanup_offline_queue(std::chrono::seconds{0});
      log_numbered(c, kLogged, kLogged + 1000);
      const auto after = c.get_offline_status();
      std::ofstream(report) << s.committed_total << ' ' << s.dropped.journal_full << ' '
                            << other_drops(s.dropped) << ' ' << s.journal_map_bytes << ' '
                            << cleaned << ' ' << after.committed_total << ' '
                            << after.dropped.journal_full << ' ' << after.journal_map_bytes << '\n'
                            << s.last_journal_error << '\n';
      code = 0;
    } catch (...) {
    }
    std::_Exit(code);
  }
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  ASSERT_FALSE(WIFSIGNALED(wstatus)) << "the child died of signal " << WTERMSIG(wstatus);
  if (WEXITSTATUS(wstatus) == 4) GTEST_SKIP() << "a lower hard RLIMIT_AS is in force here";
  ASSERT_EQ(WEXITSTATUS(wstatus), 0) << "2: an exception, 3: setrlimit failed";
  std::uint64_t committed = 0, full = 0, other = 0, map_bytes = 0;
  std::uint64_t cleaned = 0, committed_after = 0, full_after = 0, map_bytes_after = 0;
  std::string error;
  {
    std::ifstream in(report);
    in >> committed >> full >> other >> map_bytes >> cleaned >> committed_after >> full_after >>
        map_bytes_after;
    in.ignore();
    std::getline(in, error);
  }
  EXPECT_GT(full, 0u) << "the map grew: the limit did not bind, the test proves nothing";
  EXPECT_EQ(committed + full, static_cast<std::uint64_t>(kLogged));
  EXPECT_EQ(other, 0u);
  EXPECT_EQ(map_bytes, o.journal_initial_bytes);
  EXPECT_NE(error.find("its map cannot grow from 33554432 to 67108864 bytes"), std::string::npos)
      << error;
  EXPECT_EQ(cleaned, committed);
  EXPECT_EQ(committed_after, committed + 1000);
  EXPECT_EQ(full_after, full);
  EXPECT_EQ(map_bytes_after, o.journal_initial_bytes);
  EXPECT_EQ(journal_ns(dir).size(), 1000u);

  // Without the limit, the same journal grows again.
  fl::Client c(o);
  log_numbered(c, kLogged + 1000, 2 * kLogged + 1000);
  const auto s = c.get_offline_status();
  EXPECT_EQ(s.dropped.journal_full, 0u);
  EXPECT_GT(s.journal_map_bytes, o.journal_initial_bytes);
}

namespace {

// Accepts TCP connections in the kernel's backlog and never reads or answers.
class SilentListener {
 public:
  SilentListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fd_, 64) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("cannot open a loopback listener");
    port_ = ntohs(a.sin_port);
  }
  ~SilentListener() { ::close(fd_); }
  SilentListener(const SilentListener&) = delete;
  SilentListener& operator=(const SilentListener&) = delete;
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

// Many sync attempts against `endpoint`: memory and threads stay bounded, and the
// destructor returns within the configured timeouts.
void check_bounded(const std::string& endpoint, const std::filesystem::path& ca) {
  ft::TempDir tmp;
  fl::Options o = ft::blocking_options(tmp / "journal");
  o.endpoint = endpoint;
  o.api_key = "full-disk-key";
  o.ca_file = ca;
  o.connect_timeout = 300ms;
  o.handshake_timeout = 300ms;
  o.request_timeout = 500ms;
  o.shutdown_timeout = 300ms;
  o.offline_sync_interval = 1s;
  o.backoff_base = 10ms;
  o.backoff_cap = 50ms;
  const auto worst_request = o.connect_timeout + o.handshake_timeout + o.request_timeout;
  auto c = std::make_unique<fl::Client>(o);
  log_numbered(*c, 0, 500);
  c->sync_offline_queue();  // warm up: threads and buffers of a first attempt
  const long rss_before = proc_status("VmRSS");
  const long threads_before = proc_status("Threads");
  for (int i = 0; i < 10; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    c->sync_offline_queue();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, worst_request * 3) << endpoint;
    log_numbered(*c, 1000 + i * 100, 1000 + i * 100 + 100);
  }
  const long rss_after = proc_status("VmRSS");
  const long threads_after = proc_status("Threads");
  EXPECT_LE(threads_after, threads_before + 1) << endpoint;
  EXPECT_LT(rss_after - rss_before, 32 * 1024)
      << endpoint << ": VmRSS grew by " << (rss_after - rss_before) << " kB";
  EXPECT_EQ(c->get_offline_status().synced_total, 0u) << endpoint;

  const auto t0 = std::chrono::steady_clock::now();
  c.reset();
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, worst_request + o.shutdown_timeout + 1s)
      << endpoint << ": the destructor took "
      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
}

}  // namespace

TEST(Unresponsive, ListenerThatNeverAnswers) {
  ft::TempDir tmp;
  const auto ca = tmp / "ca.pem";
  std::ofstream(ca) << ft::test_certs().ca_pem;
  SilentListener l;
  check_bounded("https://127.0.0.1:" + std::to_string(l.port()) + "/ingest", ca);
}

TEST(Unresponsive, ReceiverThatAnswersAnHourLate) {
  ft::TempDir tmp;
  const auto ca = tmp / "ca.pem";
  std::ofstream(ca) << ft::test_certs().ca_pem;
  ft::TlsReceiver rx;
  rx.set_responder([](const ft::ReceivedRequest&) -> std::optional<ft::Reply> {
    ft::Reply r;
    r.delay = std::chrono::hours(1);
    return r;
  });
  check_bounded(rx.url(), ca);
  rx.stop();
}

TEST(Unresponsive, HostNameThatDoesNotResolve) {
  ft::TempDir tmp;
  const auto ca = tmp / "ca.pem";
  std::ofstream(ca) << ft::test_certs().ca_pem;
  check_bounded("https://does-not-exist.invalid/ingest", ca);
}

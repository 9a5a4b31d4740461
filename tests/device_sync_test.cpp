// Device flushes in Durability::Periodic: when the writer flushes the device, and what
// flush() reports when the device fails.
//
// A device that fails its flushes cannot be made here (no root for a dm-error or
// faulty loop device), so this test binary defines its own fdatasync(), which the
// LMDB library's mdb_env_sync() calls (the journal does not use MDB_WRITEMAP, whose
// sync is msync): it counts the calls and, while a FailingDeviceFlushes is alive,
// fails them with EIO as a failing disk would, without flushing. Everything else, LMDB
// included, is real. The override is confined to this file, and so to this binary.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <functional>
#include <thread>

#include "flightlog/flightlog.hpp"
#include "support/strings.hpp"
#include "support/temp_dir.hpp"
#include "support/test_options.hpp"

namespace fl = flightlog;
using fl::test::contains;
using namespace std::chrono_literals;

namespace {

std::atomic<long> g_fdatasyncs{0};
std::atomic<bool> g_fail_fdatasync{false};

// While alive, every fdatasync in the process fails with EIO.
class FailingDeviceFlushes {
 public:
  FailingDeviceFlushes() { g_fail_fdatasync.store(true); }
  ~FailingDeviceFlushes() { g_fail_fdatasync.store(false); }
  FailingDeviceFlushes(const FailingDeviceFlushes&) = delete;
  FailingDeviceFlushes& operator=(const FailingDeviceFlushes&) = delete;
};

// Generous: sanitizer builds on a loaded 2-core machine are 5-20x slower. Only a
// broken writer waits this long.
constexpr auto kWait = 60s;

// Polls `done` until it holds or kWait passes; returns whether it held.
bool eventually(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

fl::Options periodic_options(const std::filesystem::path& dir,
                             std::chrono::milliseconds sync_interval) {
  auto o = fl::test::test_options(dir);
  o.durability = fl::Durability::Periodic;
  o.periodic_sync_interval = sync_interval;
  o.min_commit_interval = 0us;  // every record that trickles in gets its own commit
  return o;
}

void log_one(fl::Client& c, std::int64_t n) {
  ASSERT_EQ(c.log_prediction({{"n", n}}, {{"p", 0.5}}), fl::LogResult::Ok);
}

}  // namespace

extern "C" int fdatasync(int fd) {
  using Fn = int (*)(int);
  static const Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "fdatasync"));
  g_fdatasyncs.fetch_add(1);
  if (g_fail_fdatasync.load()) {
    errno = EIO;
    return -1;
  }
  return real(fd);
}

// The README promises Periodic no device flush per batch. Each flush() asks for one,
// for the records logged before it; the batches committed after it has returned must
// not keep asking.
TEST(DeviceSync, PeriodicCommitsAfterAFlushDoNotEachFlushTheDevice) {
  fl::test::TempDir tmp;
  fl::Client c(periodic_options(tmp / "j", 1h));  // no periodic flush during the test
  log_one(c, 0);
  ASSERT_TRUE(c.flush_for(kWait));  // also makes the sequence reservation durable

  constexpr std::uint64_t kCommits = 20;
  const auto before = c.get_offline_status();
  const long syncs_before = g_fdatasyncs.load();
  for (std::uint64_t i = 1; i <= kCommits; ++i) {
    log_one(c, static_cast<std::int64_t>(i));
    // Waiting for each record's commit gives every record a commit of its own.
    ASSERT_TRUE(eventually([&] { return c.get_offline_status().committed_total == 1 + i; }))
        << "record " << i << " was not committed";
  }
  const auto after = c.get_offline_status();
  EXPECT_EQ(after.commits_total - before.commits_total, kCommits);
  EXPECT_EQ(g_fdatasyncs.load() - syncs_before, 0)
      << "device flushes during " << kCommits << " commits after one flush()";

  // A flush still reaches the device.
  log_one(c, 100);
  const long syncs_before_flush = g_fdatasyncs.load();
  ASSERT_TRUE(c.flush_for(kWait));
  EXPECT_GE(g_fdatasyncs.load() - syncs_before_flush, 1);
}

// A device flush that fails leaves the records committed but maybe not on the device:
// the flush that waited for it must not report success, and the status says why.
TEST(DeviceSync, PeriodicFlushDoesNotAcknowledgeRecordsWhoseDeviceFlushFailed) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  {
    fl::Client c(periodic_options(dir, 1h));  // only flush() flushes the device
    log_one(c, 1);
    ASSERT_TRUE(c.flush_for(kWait));
    {
      FailingDeviceFlushes failing;
      const long syncs_before = g_fdatasyncs.load();
      log_one(c, 2);
      EXPECT_FALSE(c.flush_for(kWait));
      EXPECT_GE(g_fdatasyncs.load() - syncs_before, 1) << "the flush did not try the device";
      auto s = c.get_offline_status();
      EXPECT_EQ(s.device_sync_failures, 1u);
      EXPECT_TRUE(contains(s.last_journal_error, "device flush failed")) << s.last_journal_error;
      EXPECT_TRUE(contains(s.last_journal_error, "Input/output error")) << s.last_journal_error;

      // flush() cannot report it; it returns rather than wait for a failing device, and
      // the failure is counted.
      log_one(c, 3);
      c.flush();
      s = c.get_offline_status();
      EXPECT_EQ(s.device_sync_failures, 2u);
      EXPECT_EQ(s.committed_total, 3u);
      EXPECT_EQ(s.dropped.journal_error, 0u);  // nothing was dropped: the records are there
    }
    // The device works again: the next flush is acknowledged.
    log_one(c, 4);
    EXPECT_TRUE(c.flush_for(kWait));
    EXPECT_EQ(c.get_offline_status().committed_total, 4u);
  }
  // A new Client sees all four records in the journal.
  fl::Client c(fl::test::test_options(dir));
  EXPECT_EQ(c.get_offline_status().queue_size, 4u);
}

// A periodic device flush that fails while no flush() waits is reported by the next
// flush(): records it covered were logged before that flush, and a later successful
// fdatasync does not bring back pages the failed one may have marked clean.
TEST(DeviceSync, FailedPeriodicDeviceFlushIsReportedByTheNextFlush) {
  fl::test::TempDir tmp;
  fl::Client c(periodic_options(tmp / "j", 5ms));
  log_one(c, 1);
  ASSERT_TRUE(c.flush_for(kWait));
  {
    FailingDeviceFlushes failing;
    log_one(c, 2);
    ASSERT_TRUE(eventually([&] { return c.get_offline_status().device_sync_failures >= 1; }))
        << "no periodic device flush failed";
  }
  EXPECT_FALSE(c.flush_for(kWait));
  const auto s = c.get_offline_status();
  EXPECT_TRUE(contains(s.last_journal_error, "device flush failed")) << s.last_journal_error;
  EXPECT_EQ(s.committed_total, 2u);
  // Reported once: the device works again, so the next flush is acknowledged.
  log_one(c, 3);
  EXPECT_TRUE(c.flush_for(kWait));
}
